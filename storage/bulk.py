"""Many links at once: imports in, a user's whole collection out (export, /stats).

Imports are recorded before anything slow happens, in batches, each batch by unique
`_id` inserts only (keys, work entries, links, texts, one journal entry): a URL the
user already has is refused by its `link_keys` `_id`, on MongoDB as on FerretDB, so an
import run twice (or cut short and sent again) never doubles a link.

Reading a collection goes through the derived SQLite index (storage/catalog.py), newest
first, in pages keyed by (created, id) so that each page is an index range however far
in the export is: FerretDB v1 would read every document of `links` for an owner filter.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import bson
from bson import ObjectId
from bson.codec_options import CodecOptions

from storage.catalog import Catalog
from storage.keys import WORK_STATES, key_id
from storage.models import LinkRecord
from storage.repository import LinkStore, insert_many_new, light_doc, text_doc
from storage.search import entry_of
from storage.terms import terms_for

Doc = dict[str, Any]
PAGE = 500
_CODEC: CodecOptions[Doc] = CodecOptions(tz_aware=True, tzinfo=UTC)  # as the catalog stores


def _ms(when: datetime) -> datetime:
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


async def record_imported(
    store: LinkStore, records: list[LinkRecord], *, prio: int, turn: float
) -> int:
    """Record new links marked `imported: true`, queued at `prio` (after every link sent
    by hand; see storage/claims.py); returns how many were new (the rest the owner had)."""
    keys = [
        {"_id": key_id(r.owner_id, r.url_key), "link_id": r.id, "owner_id": r.owner_id}
        for r in records
    ]
    for r in records:  # as stored (BSON keeps milliseconds), so the index matches a replay
        r.created_at = _ms(r.created_at)
        r.updated_at = _ms(r.updated_at)
    refused = await insert_many_new(store.keys, keys)
    fresh = [r for i, r in enumerate(records) if i not in refused]
    if not fresh:
        return 0
    # Work entries before the links, as repository.py does: a crash leaves an entry
    # without a link (skipped when read), never a link that nothing would pick up.
    await insert_many_new(
        store.work,
        [
            {
                "_id": r.id,
                "owner_id": r.owner_id,
                "status": str(r.status),
                "updated_at": r.updated_at,
                "prio": prio,
                "turn": turn,
            }
            for r in fresh
            if str(r.status) in WORK_STATES
        ],
    )
    docs = []
    for r in fresh:
        r.terms = r.terms or terms_for(r.title, r.note, r.description, r.site_name, r.text)
        doc = light_doc(r)
        doc["imported"] = True
        docs.append(doc)
    await insert_many_new(store.links, docs)
    await insert_many_new(store.texts, [text_doc(r) for r in fresh])
    seq = await store.journal.append([r.id for r in fresh])
    # The /find index takes these as written: reading thousands back by `_id` (or the
    # rebuild that many pending changes trigger) costs far more than the import itself.
    await store.index.apply_written(
        seq, [entry_of(d, r.terms) for d, r in zip(docs, fresh, strict=True)]
    )
    return len(fresh)


def _page(
    catalog: Catalog, owner_id: int, after: tuple[int, str] | None
) -> list[tuple[int, str, Doc]]:
    sql = "SELECT created, id, doc FROM links WHERE owner = ?"
    args: list[Any] = [owner_id]
    if after is not None:
        sql += " AND (created < ? OR (created = ? AND id < ?))"
        args += [after[0], after[0], after[1]]
    sql += " ORDER BY created DESC, id DESC LIMIT ?"
    rows = catalog.conn.execute(sql, [*args, PAGE])
    return [(int(c), str(i), bson.decode(d, codec_options=_CODEC)) for c, i, d in rows]


async def owner_docs(store: LinkStore, owner_id: int) -> AsyncIterator[list[Doc]]:
    """The owner's links (listing fields: everything but page text), newest first, a page
    at a time."""
    after: tuple[int, str] | None = None
    while True:
        rows = await store.index.query(functools.partial(_page, owner_id=owner_id, after=after))
        if not rows:
            return
        yield [doc for _, _, doc in rows]
        after = rows[-1][0], rows[-1][1]
        if len(rows) < PAGE:
            return


def _counts(catalog: Catalog, owner_id: int) -> tuple[int, int]:
    links = catalog.conn.execute("SELECT count(*) FROM links WHERE owner = ?", (owner_id,))
    tags = catalog.conn.execute("SELECT count(*) FROM tag_counts WHERE owner = ?", (owner_id,))
    return int(links.fetchone()[0]), int(tags.fetchone()[0])


async def owner_counts(store: LinkStore, owner_id: int) -> tuple[int, int]:
    """(links, distinct tags) of one owner."""
    return await store.index.query(lambda c: _counts(c, owner_id))


async def image_bytes(store: LinkStore, image_ids: set[ObjectId]) -> int:
    """Bytes of these screenshots: one pass over the (light) image headers, cheaper on
    FerretDB v1 than one look-up per image once a user has more than a few hundred."""
    if not image_ids:
        return 0
    total = 0
    for coll in (store.images.headers, store.db["screenshots.files"]):
        async for header in coll.find({}, {"length": 1}):
            if header["_id"] in image_ids:
                total += int(header.get("length") or 0)
    return total

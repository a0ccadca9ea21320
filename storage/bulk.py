"""Many links at once: imports in, a user's whole collection out (export, /stats).

Imports are recorded before anything slow happens, in batches, each batch by unique
`_id` inserts only (keys, work entries, one journal entry, links, texts): a URL the
user already has is refused by its `link_keys` `_id`, on MongoDB as on FerretDB, so an
import run twice (or cut short and sent again) never doubles a link.

Reading a collection goes through the listing (storage/listing.py), newest first, in
pages keyed by (created_at, _id) so that each page is an index range however far in the
export is: FerretDB v1 would read every document of `links` for an owner filter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from bson import ObjectId

from storage.keys import WORK_STATES, key_id
from storage.listing import After
from storage.models import LinkRecord
from storage.repository import LinkStore, insert_many_new, light_doc
from storage.terms import terms_for

Doc = dict[str, Any]
PAGE = 500


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
    # Links and texts, announced in the journal first (storage/writes.py); the listing
    # takes them as written.
    await store.insert_links(docs, fresh)
    return len(fresh)


async def owner_docs(store: LinkStore, owner_id: int) -> AsyncIterator[list[Doc]]:
    """The owner's links (listing fields: everything but page text), newest first, a page
    at a time (each an index range however deep: storage/listing.py)."""
    after: After | None = None
    while True:
        docs = await store.listing.owner_page(owner_id, after, PAGE)
        if not docs:
            return
        yield docs
        last = docs[-1]
        after = After(last["created_at"], last["_id"])
        if len(docs) < PAGE:
            return


async def owner_counts(store: LinkStore, owner_id: int) -> tuple[int, int]:
    """(links, distinct tags) of one owner."""
    return await store.listing.owner_counts(owner_id)


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

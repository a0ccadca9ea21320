"""Many links at once: imports in, a user's whole collection out (export, /stats).

Imports are recorded before anything slow happens, in batches, each batch by inserts
only (one journal entry announcing the links, links, texts, work entries, keys): a URL the user already has
is refused by the unique (owner_id, url_key) index of `links`, on MongoDB as on
FerretDB, so an import run twice (or cut short and sent again) never doubles a link.

Reading a collection goes through the listing (storage/index/listing.py), newest first, in
pages keyed by (created_at, _id) so that each page is an index range however far in the
export is: FerretDB v1 would read every document of `links` for an owner filter.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from storage.index.listing import After
from storage.keys import WORK_STATES, key_id
from storage.models import LinkRecord, utcnow
from storage.queue.claims import PRIO_BY_HAND
from storage.repository import LinkStore, light_doc
from storage.upserts import insert_many_new, set_by_id

log = logging.getLogger(__name__)
Doc = dict[str, Any]
PAGE = 500
BATCHES = "import_batches"
REPAIR_AFTER = timedelta(minutes=2)  # a batch's writes take seconds; older ones were cut off


def _ms(when: datetime) -> datetime:
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


async def record_imported(
    store: LinkStore,
    records: list[LinkRecord],
    *,
    prio: int,
    turn: float,
    imported: bool = True,
) -> int:
    """Record new links marked `imported: true`, queued at `prio` (after every link sent
    by hand; see storage/queue/claims.py); returns how many were new (the rest the owner had).
    The one way links are written in bulk: tests and benches seed with it too
    (`imported=False`, `prio` of a link sent by hand).

    All or nothing per batch, and resumable. The unique (owner_id, url_key) index on
    `links` decides what is new, so a key left without its link (by an earlier bug, or a
    cut-off write) is no duplicate: its link is written and the key made to name it.
    A note of intent (`import_batches`) is written first; then the links, their texts,
    their work entries and last their keys, so no moment leaves a key without its link.
    A batch that fails takes back what it wrote; one cut off by a kill is finished from
    its note (work entries and keys for the links it wrote, nothing left of the rest) by
    the owner's next import or the sweep (`repair_imports`), whichever comes first.
    """
    if not records:
        return 0
    for r in records:  # as stored (BSON keeps milliseconds), so the index matches a replay
        r.created_at = _ms(r.created_at)
        r.updated_at = _ms(r.updated_at)
    batches = store.db[BATCHES]
    ids = [r.id for r in records]
    note = await batches.insert_one(
        {"owner_id": records[0].owner_id, "ids": ids, "prio": prio, "turn": turn, "at": utcnow()}
    )
    try:
        fresh = await _write_links(store, records, prio=prio, turn=turn, imported=imported)
    except BaseException:
        if await _take_back(store, ids):
            await batches.delete_one({"_id": note.inserted_id})
        raise
    await batches.delete_one({"_id": note.inserted_id})
    return len(fresh)


async def _write_links(
    store: LinkStore, records: list[LinkRecord], *, prio: int, turn: float, imported: bool
) -> list[LinkRecord]:
    """Links, page texts, work entries, then keys; the records that were new (only these
    get a work entry: a duplicate costs one refused insert)."""
    docs = []
    for r in records:
        r.terms = r.terms or r.page_terms()
        doc = light_doc(r)
        if imported:
            doc["imported"] = True
        docs.append(doc)
    # Announced in the journal first (storage/writes.py); the listing takes them as
    # written: reading thousands back by `_id` costs far more than the import itself.
    fresh, _ = await store.insert_links(docs, records)
    await _queue(store, fresh, prio=prio, turn=turn)
    await _key(store, fresh)
    return fresh


async def _queue(store: LinkStore, links: list[LinkRecord], *, prio: int, turn: float) -> None:
    """Work entries for the unfinished ones (one already there is kept as it is); an
    import's wait in the queue's backlog, out of the collection every claim reads."""
    entries = [
        {
            "_id": r.id,
            "owner_id": r.owner_id,
            "status": str(r.status),
            "updated_at": r.updated_at,
            "prio": prio,
            "turn": turn,
        }
        for r in links
        if str(r.status) in WORK_STATES
    ]
    if prio == PRIO_BY_HAND:
        await insert_many_new(store.work, entries)
    else:
        await store.queue.wait_later(entries)


async def _key(store: LinkStore, links: list[LinkRecord]) -> None:
    """Keys naming these links. A key already there names no link of this page (the
    unique index let this one in): left by an earlier failure, it is pointed here."""
    keys = [
        {"_id": key_id(r.owner_id, r.url_key), "link_id": r.id, "owner_id": r.owner_id}
        for r in links
    ]
    refused = [keys[i] for i in await insert_many_new(store.keys, keys)]
    if not refused:
        return
    names = {k["_id"]: k["link_id"] for k in refused}
    async for found in store.keys.find({"_id": {"$in": list(names)}}):
        if found.get("link_id") == names[found["_id"]]:
            del names[found["_id"]]  # already this link's (a cut-off batch written again)
    for key in refused:
        if key["_id"] in names:
            await set_by_id(
                store.keys, key["_id"], {"link_id": key["link_id"], "owner_id": key["owner_id"]}
            )


async def _take_back(store: LinkStore, ids: list[ObjectId]) -> bool:
    """Undo a failed batch, keys first so that no key is left without its link; False
    when the database did not let it (the owner's next import finishes it then)."""
    try:
        await store.keys.delete_many({"link_id": {"$in": ids}})
        await store.writes.delete_many(ids)
        for coll in (store.texts, store.work, store.queue.backlog):
            await _forget(coll, ids)
    except PyMongoError as exc:
        log.warning("could not take back a failed import batch: %s", type(exc).__name__)
        return False
    return True


async def _forget(coll: AsyncCollection[Doc], ids: list[ObjectId]) -> None:
    if ids:
        await coll.delete_many({"_id": {"$in": ids}})


async def repair_imports(
    store: LinkStore, owner_id: int | None = None, now: datetime | None = None
) -> int:
    """Finish the import batches a kill cut off (the owner's, or everyone's): a work entry
    and a key for each link that was written, nothing left (text, key) of the rest.
    Returns the links kept. Idempotent: two processes may run it at once."""
    batches = store.db[BATCHES]
    query: Doc = {"at": {"$lt": (now or utcnow()) - REPAIR_AFTER}}
    if owner_id is not None:
        query["owner_id"] = owner_id
    kept = 0
    async for note in batches.find(query):
        ids: list[ObjectId] = note["ids"]
        written = [LinkRecord.from_doc(d) async for d in store.links.find({"_id": {"$in": ids}})]
        await _queue(store, written, prio=int(note.get("prio", 1)), turn=float(note.get("turn", 0)))
        await _key(store, written)
        found = {r.id for r in written}
        gone = [i for i in ids if i not in found]
        await store.keys.delete_many({"link_id": {"$in": gone}})
        await _forget(store.texts, gone)
        # The written links were announced before they landed (storage/writes.py): every
        # listing reads them from the journal; nothing to add here.
        await batches.delete_one({"_id": note["_id"]})
        kept += len(written)
    return kept


async def owner_docs(store: LinkStore, owner_id: int) -> AsyncIterator[list[Doc]]:
    """The owner's links (listing fields: everything but page text), newest first, a page
    at a time (each an index range however deep: storage/index/listing.py)."""
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

"""Every write to the `links` collection, each announced in the journal before it lands.

A write first appends its journal entry (storage/index/journal.py), then changes the link
carrying the entry's number in `rev`. So whatever reaches `links` is named by an entry,
whatever crashes in between: a listing index replaying entry n reads the link and knows
the write has landed when `rev >= n`, and otherwise looks again shortly
(storage/index/search.py). Nothing else in the repository writes `links`
(tests/test_index_upkeep.py checks the source for it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bson import ObjectId
from cachetools import LRUCache
from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from storage.index.journal import Journal
from storage.upserts import insert_many_new

Doc = dict[str, Any]
REV = "rev"
# A write of the same change to another collection (the link's text), made after the
# announcement and before the link's own write, so that it has landed when `rev` has.
Before = Callable[[], Awaitable[None]] | None


class LinkWrites:
    def __init__(self, links: AsyncCollection[Doc], journal: Journal) -> None:
        self.links = links
        self.journal = journal
        # Whose link is this: journal entries name owners, so a listing restoring one
        # owner's part reads only that owner's changes. Links are read by the stages
        # just before they are written, so this is nearly always a hit.
        self._owners: LRUCache[ObjectId, int] = LRUCache(maxsize=50_000)

    def remember(self, link_id: ObjectId, owner_id: int) -> None:
        self._owners[link_id] = owner_id

    async def owner_of(self, link_id: ObjectId) -> int | None:
        owner = self._owners.get(link_id)
        if owner is None:
            doc = await self.links.find_one({"_id": link_id}, {"owner_id": 1})
            if doc is None:
                return None
            owner = int(doc["owner_id"])
            self._owners[link_id] = owner
        return owner

    async def _announce(self, link_id: ObjectId, owner_id: int | None, gone: bool = False) -> int:
        owner = owner_id if owner_id is not None else await self.owner_of(link_id)
        return await self.journal.append([link_id], [] if owner is None else [owner], gone=gone)

    async def insert(self, doc: Doc, first: Before = None) -> None:
        """Insert a new link; DuplicateKeyError when its owner has its URL already.
        `first` runs between the announcement and the insert (the link's text: a reader
        that sees the link's `rev` must find its text written too)."""
        link_id, owner = doc["_id"], int(doc["owner_id"])
        doc[REV] = await self._announce(link_id, owner)
        if first is not None:
            await first()
        try:
            await self.links.insert_one(doc)
        except DuplicateKeyError:
            await self.settle([link_id], [owner])  # it will never land: say so
            raise
        self.remember(link_id, owner)

    async def insert_many(self, docs: list[Doc], first: Before = None) -> tuple[int, set[int]]:
        """Insert new links at once (one journal entry); returns the entry's number and
        the positions refused as duplicates."""
        seq = await self.journal.append(
            [d["_id"] for d in docs], sorted({int(d["owner_id"]) for d in docs})
        )
        for doc in docs:
            doc[REV] = seq
        if first is not None:
            await first()
        refused = await insert_many_new(self.links, docs)
        if refused:  # they will never land: readers waiting for them stop waiting
            gone = [docs[i] for i in sorted(refused)]
            await self.settle([d["_id"] for d in gone], sorted({int(d["owner_id"]) for d in gone}))
        for doc in docs:
            self.remember(doc["_id"], int(doc["owner_id"]))
        return seq, refused

    async def update(
        self, link_id: ObjectId, change: Doc, owner_id: int | None = None, first: Before = None
    ) -> bool:
        """Apply an update document to one link; False when there is no such link."""
        seq = await self._announce(link_id, owner_id)
        if first is not None:
            await first()
        done = await self.links.update_one({"_id": link_id}, _with_rev(change, seq))
        if not done.matched_count:
            await self.settle([link_id], [])
        return bool(done.matched_count)

    async def update_and_get(self, link_id: ObjectId, change: Doc, owner_id: int) -> Doc | None:
        """Apply an update and return the link as it is after it (None: no such link)."""
        seq = await self._announce(link_id, owner_id)
        doc = await self.links.find_one_and_update(
            {"_id": link_id}, _with_rev(change, seq), return_document=ReturnDocument.AFTER
        )
        if doc is None:
            await self.settle([link_id], [owner_id])
        return doc

    async def delete(self, link_id: ObjectId, owner_id: int | None) -> bool:
        await self._announce(link_id, owner_id, gone=True)
        done = await self.links.delete_one({"_id": link_id})
        return bool(done.deleted_count)

    async def delete_many(self, link_ids: Sequence[ObjectId]) -> int:
        """Delete these links (a failed import batch taken back); returns how many were."""
        if not link_ids:
            return 0
        owners = {o for o in [self._owners.get(i) for i in link_ids] if o is not None}
        await self.journal.append(link_ids, sorted(owners), gone=True)
        done = await self.links.delete_many({"_id": {"$in": list(link_ids)}})
        return int(done.deleted_count)

    async def set_many(self, changes: Sequence[tuple[ObjectId, int, Doc]]) -> int:
        """Set fields on many links at once (a migration), one journal entry announcing
        them all: (link id, owner id, fields) each. Returns how many links matched."""
        if not changes:
            return 0
        seq = await self.journal.append(
            [i for i, _, _ in changes], sorted({o for _, o, _ in changes})
        )
        ops = [UpdateOne({"_id": i}, {"$set": {**fields, REV: seq}}) for i, _, fields in changes]
        done = await self.links.bulk_write(ops, ordered=False)
        return int(done.matched_count)

    async def restore(self, doc: Doc) -> None:
        """Put a deleted link's document back (an undo); it may be there already."""
        doc = dict(doc)
        doc[REV] = await self._announce(doc["_id"], int(doc["owner_id"]))
        try:
            await self.links.insert_one(doc)
        except DuplicateKeyError:
            await self.links.replace_one({"_id": doc["_id"]}, doc)

    async def settle(self, ids: Sequence[ObjectId], owners: Sequence[int]) -> None:
        """An announced write that will not land (the link is not there): readers waiting
        for it stop waiting."""
        await self.journal.append(ids, owners, gone=True)


def _with_rev(change: Doc, seq: int) -> Doc:
    out = dict(change)
    out["$set"] = {**out.get("$set", {}), REV: seq}
    return out

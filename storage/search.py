"""Keeping the derived listing index (storage/catalog.py) current with MongoDB.

Before it answers, the index replays the change journal (storage/journal.py) from the
position it last applied: for each link named there it reads the link's *current* state
by `_id` and stores it (or drops a deleted link). Applying the latest state makes the
replay idempotent and order-free, so it is correct with any number of writers, on this
machine or others. Processes sharing one index file serialise their replays on SQLite's
write lock, taken before they read the journal, so a later replay never stores an older
state than an earlier one. A file from another database, another schema, or too far
behind is rebuilt from the collections.

When the index is up to date, the check costs one `_id` look-up.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from storage.catalog import Catalog, Entry
from storage.journal import Journal
from storage.keys import HEAVY_FIELDS
from storage.models import Status

log = logging.getLogger(__name__)
Doc = dict[str, Any]
T = TypeVar("T")

# Entries (or links named by them) behind: one pass over the collections is then cheaper
# than an `_id` look-up per link.
REBUILD_AFTER = 2000
_BATCH = 1000


def entry_of(doc: Doc, terms: list[str]) -> Entry:
    listing = {k: v for k, v in doc.items() if k not in HEAVY_FIELDS}
    return Entry(
        id=str(doc["_id"]),
        owner_id=int(doc["owner_id"]),
        created_at=doc["created_at"],
        status=str(doc.get("status", Status.PENDING)),
        checked_at=doc.get("checked_at"),
        tags=[str(t) for t in doc.get("tags", [])],
        terms=terms,
        doc=listing,
    )


def split_terms(value: object) -> list[str]:
    """Terms as stored: one space-joined string (lists from before the migration too)."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


class SearchIndex:
    """The process's view of the derived index; opened on first use."""

    def __init__(
        self,
        links: AsyncCollection[Doc],
        texts: AsyncCollection[Doc],
        journal: Journal,
        path: Path | str,
    ) -> None:
        self.links = links
        self.texts = texts
        self.journal = journal
        self.path = path
        self._catalog: Catalog | None = None
        self._epoch: str | None = None
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        async with self._lock:
            if self._catalog is not None:
                self._catalog.close()
                self._catalog = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def query(self, fn: Callable[[Catalog], T]) -> T:
        """Bring the index up to date, then run `fn` on it."""
        async with self._lock:
            catalog = await self._sync()
            return await self._run(fn, catalog)

    async def sync(self) -> None:
        async with self._lock:
            await self._sync()

    async def _sync(self) -> Catalog:
        if self._catalog is None:
            self._catalog = await self._run(Catalog, self.path)
        catalog = self._catalog
        if self._epoch is None:
            self._epoch = await self.journal.epoch()
        epoch = self._epoch
        pos = await self._run(catalog.position, epoch)
        if pos is not None and await self.journal.entry(pos + 1) is None:
            return catalog  # up to date: the common case, one look-up
        try:
            await self._run(catalog.begin)
        except sqlite3.OperationalError as exc:
            # Another process holds the file (a long rebuild): answer from what is there.
            log.warning("search index busy, answering without the newest changes: %s", exc)
            return catalog
        try:
            await self._replay_locked(catalog, epoch)
        except BaseException:
            await self._run(catalog.rollback)
            raise
        return catalog

    async def apply_written(self, seq: int, written: list[Entry]) -> None:
        """Journal entry `seq` names exactly the links in `written`, just written by this
        process (a bulk import): store them without reading them back by `_id`.

        Entries before `seq` are replayed as usual; entries after it (say a worker moved
        one of these links on meanwhile) are replayed by the next sync, so the index still
        ends at every link's current state. When the file is new, foreign or held by
        another process, this falls back to the ordinary sync.
        """
        async with self._lock:
            catalog = await self._open()
            epoch = await self._epoch_of()
            pos = await self._run(catalog.position, epoch)
            if pos is None or pos >= seq:
                await self._sync()
                return
            try:
                await self._run(catalog.begin)
            except sqlite3.OperationalError:
                return  # another process is rebuilding: it reads these links itself
            try:
                pos = await self._run(catalog.position, epoch)  # again, under the lock
                if pos is None or pos >= seq:
                    await self._run(catalog.rollback)
                    return
                ids, last = await self.journal.read(pos, seq - 1)
                if last != seq - 1 or len(ids) > REBUILD_AFTER:
                    await self._run(catalog.rollback)
                    await self._sync()  # a gap, or far behind: the ordinary way
                    return
                upserts, deletes = await self._states(ids)
                # One transaction: the entries before ours as read now, then ours as written.
                await self._run(catalog.commit_applied, epoch, seq, [*upserts, *written], deletes)
            except BaseException:
                await self._run(catalog.rollback)
                raise

    async def _open(self) -> Catalog:
        if self._catalog is None:
            self._catalog = await self._run(Catalog, self.path)
        return self._catalog

    async def _epoch_of(self) -> str:
        if self._epoch is None:
            self._epoch = await self.journal.epoch()
        return self._epoch

    async def _replay_locked(self, catalog: Catalog, epoch: str) -> None:
        pos = await self._run(catalog.position, epoch)  # again: another process may have moved it
        if pos is not None and pos > 0 and await self.journal.entry(pos) is None:
            pos = None  # the journal was dropped: positions mean nothing now
        if pos is None:
            await self._rebuild_locked(catalog, epoch, await self.journal.head(), reason="new")
            return
        # Read on until the first missing entry: each look-up is one needed anyway.
        ids, last = await self.journal.read(pos, pos + REBUILD_AFTER)
        if last == pos + REBUILD_AFTER or len(ids) > REBUILD_AFTER:
            head = await self.journal.head(last)
            await self._rebuild_locked(catalog, epoch, head, reason="far behind")
            return
        upserts, deletes = await self._states(ids)
        await self._run(catalog.commit_applied, epoch, last, upserts, deletes)

    async def _states(self, ids: list[ObjectId]) -> tuple[list[Entry], list[str]]:
        upserts: list[Entry] = []
        deletes: list[str] = []
        for link_id in ids:
            # One `_id` look-up each: `$in` is not pushed down by FerretDB v1.
            doc = await self.links.find_one({"_id": link_id})
            if doc is None:
                deletes.append(str(link_id))
                continue
            text = await self.texts.find_one({"_id": link_id}, {"terms": 1})
            upserts.append(entry_of(doc, split_terms((text or {}).get("terms"))))
        return upserts, deletes

    async def _rebuild_locked(self, catalog: Catalog, epoch: str, head: int, reason: str) -> None:
        """Everything from the collections. Entries after `head` are replayed later."""
        started = time.monotonic()
        log.info("search index: rebuilding from the database (%s)", reason)
        await self._run(catalog.clear)
        batch: list[tuple[str, str]] = []
        async for doc in self.texts.find({}, {"terms": 1}, batch_size=_BATCH):
            batch.append((str(doc["_id"]), " ".join(split_terms(doc.get("terms")))))
            if len(batch) >= _BATCH:
                await self._run(catalog.stage_terms, batch)
                batch = []
        await self._run(catalog.stage_terms, batch)
        entries: list[Entry] = []
        count = 0
        async for doc in self.links.find({}, batch_size=_BATCH):
            # Links from before the migration still carry their terms in the document.
            entries.append(entry_of(doc, split_terms(doc.get("terms"))))
            if len(entries) >= _BATCH:
                await self._run(catalog.put_staged, entries)
                count += len(entries)
                entries = []
        await self._run(catalog.put_staged, entries)
        count += len(entries)
        await self._run(catalog.drop_staged)
        await self._run(catalog.commit_applied, epoch, head, [], [])
        log.info(
            "search index: %d links indexed in %.1f s (journal position %d)",
            count,
            time.monotonic() - started,
            head,
        )

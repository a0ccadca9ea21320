"""Buckets of the listing index built from the collections: when no shelf can restore
them (a new database, a dropped journal, shelves lost or too old).

One pass over `link_texts` and one over `links`, side by side (each is a full read on
FerretDB v1, tens of seconds at 100 000 links, and FerretDB runs them on both cores),
into a staging file; once every text is read, the links go into the index a batch at a
time while `links` is still being read, each batch a short hold of the index's lock, so
owners of the buckets already held are answered meanwhile. Last, under the lock, the
journal entries written since the pass began are applied to these buckets and they are
held. The pass starts from the oldest entry whose write may still be landing (written
within SETTLE_LIMIT): its link may be missing from the pass, or read before the write; it
is read again by `_id` unless the pass already saw it written.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import bson
from bson import ObjectId

from storage.index.catalog import CODEC, Catalog, Entry, bucket_of
from storage.index.rows import (
    SETTLE_LIMIT,
    Wait,
    entry_of,
    in_thread,
    keeper,
    raw_id,
    split_terms,
    waits_of,
)
from storage.index.view import IndexView

log = logging.getLogger(__name__)
T = TypeVar("T")
_BATCH = 1000


class Staging:
    """A scratch SQLite file beside the index: what the passes read, before the join."""

    def __init__(self, path: str) -> None:
        self.path = path
        Path(path).unlink(missing_ok=True)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("CREATE TABLE terms(id TEXT PRIMARY KEY, terms TEXT NOT NULL)")
        self.conn.execute("CREATE TABLE links(n INTEGER PRIMARY KEY, id TEXT, raw BLOB)")
        self.conn.execute("CREATE INDEX links_id ON links(id)")

    def add_terms(self, rows: list[tuple[str, str]]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO terms(id, terms) VALUES (?, ?)", rows)

    def add_links(self, rows: list[tuple[str, bytes]]) -> None:
        self.conn.executemany("INSERT INTO links(id, raw) VALUES (?, ?)", rows)

    def batch(self, after: int) -> list[tuple[int, bytes, str | None]]:
        rows = self.conn.execute(
            "SELECT l.n, l.raw, t.terms FROM links l LEFT JOIN terms t ON t.id = l.id"
            " WHERE l.n > ? ORDER BY l.n LIMIT ?",
            (after, _BATCH),
        )
        return [(int(n), bytes(raw), terms) for n, raw, terms in rows]

    def revs(self, ids: list[str]) -> dict[str, int]:
        """The highest `rev` the pass read for each of these links (absent: not read)."""
        out: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for link_id, raw in self.conn.execute(
                f"SELECT id, raw FROM links WHERE id IN ({marks})", part
            ):
                rev = int(bson.decode(raw, codec_options=CODEC).get("rev") or 0)
                out[link_id] = max(rev, out.get(link_id, 0))
        return out

    def close(self) -> None:
        self.conn.close()
        Path(self.path).unlink(missing_ok=True)


class Built(enum.Enum):
    DONE = "done"
    AGAIN = "again"  # the index started again meanwhile: what was built is gone
    BUSY = "busy"  # another process sharing the file is building: wait for it


LEASE = 300.0  # seconds another process waits before it takes over a rebuild gone quiet


@dataclass
class _Build:
    token: str
    head: int  # the journal's head when the pass began
    since: int  # the oldest entry whose write may still be landing, minus one
    generation: str = ""


async def rebuild(listing: IndexView, buckets: set[int]) -> Built:
    """Build these buckets from the collections and hold them (those held meanwhile by a
    restore are left alone). One process at a time per file."""
    started = time.monotonic()
    listing.rebuilding |= buckets
    passes: _Passes | None = None
    try:
        head = await listing.journal.head()
        # Entries after `since` are applied at the end: those after `head`, and those
        # before it whose writes may still be landing while `links` is read.
        landing = datetime.fromtimestamp(listing.clock() - SETTLE_LIMIT, UTC)
        build = _Build(secrets.token_hex(6), head, await listing.journal.landing(head, landing))
        listing.pinned = build.since
        got = await listing.locked(lambda c: _drop(c, buckets, build, listing.clock()))
        if got is None:
            return Built.BUSY
        listing.rebuilding -= buckets - got
        buckets = got
        if not buckets:
            await listing.locked(lambda c: _end(c, build))
            return Built.DONE
        log.info("search index: building %d bucket(s) from the database", len(buckets))
        passes = _Passes(
            listing, await in_thread(Staging, f"{listing.path}.staging"), buckets, build
        )
        # The rows go in while `links` is still being read, once every text has been.
        count = await passes.run()
        unseen = await _unseen(passes)
        if unseen is None or not await _finish(listing, buckets, build, unseen):
            log.info("search index: started again during a rebuild; building again")
            return Built.AGAIN
        log.info(
            "search index: %d links of %d bucket(s) built in %.1f s",
            count,
            len(buckets),
            time.monotonic() - started,
        )
        return Built.DONE
    finally:
        listing.rebuilding -= buckets
        listing.pinned = None
        if passes is not None:
            async with passes.lock:  # no pass is still using the staging connection
                await in_thread(passes.staging.close)


class _Passes:
    """The two reads into the staging file, and the rows out of it into the index."""

    def __init__(
        self, listing: IndexView, staging: Staging, buckets: set[int], build: _Build
    ) -> None:
        self.listing = listing
        self.staging = staging
        self.buckets = buckets
        self.build = build
        self.texts_read = asyncio.Event()
        self.links_read = asyncio.Event()
        self.more = asyncio.Event()  # links staged since the rows last looked
        self.lock = asyncio.Lock()  # one user of the staging connection at a time

    async def run(self) -> int:
        """The three side by side; returns the rows put in the index. When one fails the
        others are cancelled and waited for before the failure goes on (the staging
        connection is closed after this: SQLite crashes on a close under a running call)."""
        rows = asyncio.ensure_future(self.rows())
        tasks = [asyncio.ensure_future(self.terms()), asyncio.ensure_future(self.links()), rows]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return rows.result()

    async def _staged(self, fn: Callable[..., T], *args: Any) -> T:
        async with self.lock:
            return await in_thread(fn, *args)

    async def terms(self) -> None:
        batch: list[tuple[str, str]] = []
        async for doc in self.listing.texts.find({}, {"terms": 1}, batch_size=_BATCH):
            batch.append((str(doc["_id"]), " ".join(split_terms(doc.get("terms")))))
            if len(batch) >= _BATCH:
                await self._staged(self.staging.add_terms, batch)
                batch = []
        await self._staged(self.staging.add_terms, batch)
        self.texts_read.set()

    async def links(self) -> None:
        batch: list[tuple[str, bytes]] = []
        try:
            async for raw in self.listing.links_raw.find({}, batch_size=_BATCH):
                data = bytes(raw.raw)
                batch.append((raw_id(data), data))
                if len(batch) >= _BATCH:
                    await self._staged(self.staging.add_links, batch)
                    batch = []
                    self.more.set()
            await self._staged(self.staging.add_links, batch)
        finally:
            self.links_read.set()
            self.more.set()

    async def rows(self) -> int:
        """Join each staged link with its terms and put it in the index, a batch at a
        time (each a short hold of the index's lock); returns how many."""
        await self.texts_read.wait()
        count = 0
        after = 0
        while True:
            self.more.clear()
            done = self.links_read.is_set()
            rows = await self._staged(self.staging.batch, after)
            if not rows:
                if done:
                    return count
                await self.more.wait()
                continue
            after = rows[-1][0]
            entries: list[Entry] = []
            for _, raw, terms in rows:
                doc = bson.decode(raw, codec_options=CODEC)
                if bucket_of(int(doc["owner_id"])) not in self.buckets:
                    continue
                words = split_terms(terms) if terms is not None else split_terms(doc.get("terms"))
                entries.append(entry_of(doc, words, raw))
            count += len(entries)
            now = self.listing.clock()
            await self.listing.locked(lambda c, e=entries, n=now: _put(c, e, self.build, n))  # type: ignore[misc]


def _drop(catalog: Catalog, buckets: set[int], build: _Build, now: float) -> set[int] | None:
    """Take the file's rebuild lease (None: another process holds it) and drop whatever a
    failed restore left of these buckets, except those held by now (an owner's ask
    restored one from a shelf written since the fill looked); returns those left."""
    catalog.begin()
    try:
        if not catalog.lease_rebuild(build.token, now, LEASE):
            catalog.rollback()
            return None
        held = keeper(catalog.ready())
        todo = {b for b in buckets if not held(b)}
        for bucket in todo:
            catalog.drop_bucket(bucket)
        build.generation = catalog.generation()
        catalog.commit()
    except BaseException:
        catalog.rollback()
        raise
    return todo


def _end(catalog: Catalog, build: _Build) -> None:
    catalog.begin()
    catalog.end_rebuild(build.token)
    catalog.commit()


def _put(catalog: Catalog, entries: list[Entry], build: _Build, now: float) -> None:
    """Rows of the pass, unless the file started again or another process took over the
    rebuild (its rows are not to be mixed with these), without the buckets a restore has
    brought back meanwhile (newer than the pass); the lease renewed."""
    catalog.begin()
    try:
        if catalog.generation() != build.generation or not catalog.lease_rebuild(
            build.token, now, LEASE
        ):
            catalog.rollback()
            return
        held = keeper(catalog.ready())
        catalog.apply([e for e in entries if not held(e.bucket)], [], 0, words=False)
        catalog.commit()
    except BaseException:
        catalog.rollback()
        raise


async def _unseen(passes: _Passes) -> dict[ObjectId, Wait] | None:
    """Links named by entries after `since` up to `head` (written before the pass began)
    whose write the pass did not see landed: read again at the end, held until they
    land. None when the journal no longer holds them all (trimmed: build again)."""
    since, head = passes.build.since, passes.build.head
    changes = await passes.listing.journal.read(since, head) if since < head else []
    if len(changes) != head - since:
        return None
    waits = waits_of(changes, lambda bucket: bucket in passes.buckets)
    if not waits:
        return {}
    revs = await passes._staged(passes.staging.revs, [str(i) for i in waits])
    return {i: w for i, w in waits.items() if w.gone or revs.get(str(i), -1) < w.seq}


async def _finish(
    listing: IndexView, buckets: set[int], build: _Build, unseen: dict[ObjectId, Wait]
) -> bool:
    """Apply what was written to these buckets during the pass (and read the `unseen`
    again), and hold them; False when the catalog was reset since the pass began, or
    another process took the rebuild over (this one went quiet past its lease)."""
    head, now = build.head, listing.clock()
    async with listing.lock:
        catalog = await listing.open()
        epoch = await listing.epoch()
        try:
            await in_thread(catalog.begin)
            state = await in_thread(catalog.state, epoch)
            if (
                state is None
                or await in_thread(catalog.generation) != build.generation
                or not await in_thread(catalog.lease_rebuild, build.token, now, LEASE)
            ):
                await in_thread(catalog.rollback)
                return False
            changes = await listing.journal.read(head, state[0]) if head < state[0] else []
            if len(changes) != max(0, state[0] - head):
                raise RuntimeError("the journal no longer reaches back to the rebuild's start")
            held = keeper(await in_thread(catalog.ready))
            todo = {b for b in buckets if not held(b)}  # not restored meanwhile
            await listing.catch_up(catalog, todo, changes, unseen, state[0])
            await in_thread(catalog.set_ready, todo)
            await in_thread(catalog.end_rebuild, build.token)
            await in_thread(catalog.commit)
            return True
        except BaseException:
            await in_thread(catalog.rollback)
            raise

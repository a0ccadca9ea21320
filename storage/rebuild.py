"""Buckets of the listing index built from the collections: when no shelf can restore
them (a new database, a dropped journal, shelves lost or too old).

One pass over `link_texts` and one over `links`, side by side (each is a full read on
FerretDB v1, tens of seconds at 100 000 links, and FerretDB runs them on both cores),
into a staging file; then the rows go into the index a batch at a time, each batch a
short hold of its lock, so owners of the buckets already held are answered meanwhile
(and owners of these buckets from MongoDB itself). Last, under the lock, the journal
entries written since the pass began are applied to these buckets and they are held.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bson

from storage.catalog import CODEC, Catalog, Entry, bucket_of
from storage.rows import entry_of, in_thread, raw_id, split_terms

if TYPE_CHECKING:
    from storage.search import IndexListing

log = logging.getLogger(__name__)
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

    def close(self) -> None:
        self.conn.close()
        Path(self.path).unlink(missing_ok=True)


async def rebuild(listing: IndexListing, buckets: set[int]) -> None:
    started = time.monotonic()
    listing._rebuilding |= buckets
    since = await listing.journal.head()  # entries after it are applied at the end
    listing.pinned = since
    log.info("search index: building %d bucket(s) from the database", len(buckets))
    staging = await in_thread(Staging, f"{listing.path}.staging")
    try:
        await listing.locked(lambda c: _drop(c, buckets))
        await asyncio.gather(_read_terms(listing, staging), _read_links(listing, staging, buckets))
        count = 0
        after = 0
        while rows := await in_thread(staging.batch, after):
            after = rows[-1][0]
            entries: list[Entry] = []
            for _, raw, terms in rows:
                doc = bson.decode(raw, codec_options=CODEC)
                words = split_terms(terms) if terms is not None else split_terms(doc.get("terms"))
                entries.append(entry_of(doc, words, raw))
            count += len(entries)
            await listing.locked(lambda c, e=entries: _put(c, e))  # type: ignore[misc]
        await _finish(listing, buckets, since)
        log.info(
            "search index: %d links of %d bucket(s) built in %.1f s",
            count,
            len(buckets),
            time.monotonic() - started,
        )
    finally:
        listing._rebuilding -= buckets
        listing.pinned = None
        await in_thread(staging.close)


def _drop(catalog: Catalog, buckets: set[int]) -> None:
    """Whatever a failed restore left of these buckets."""
    catalog.begin()
    for bucket in buckets:
        catalog.drop_bucket(bucket)
    catalog.commit()


def _put(catalog: Catalog, entries: list[Entry]) -> None:
    catalog.begin()
    try:
        catalog.apply(entries, [], 0)
        catalog.commit()
    except BaseException:
        catalog.rollback()
        raise


async def _read_terms(listing: IndexListing, staging: Staging) -> None:
    batch: list[tuple[str, str]] = []
    async for doc in listing.texts.find({}, {"terms": 1}, batch_size=_BATCH):
        batch.append((str(doc["_id"]), " ".join(split_terms(doc.get("terms")))))
        if len(batch) >= _BATCH:
            await in_thread(staging.add_terms, batch)
            batch = []
    await in_thread(staging.add_terms, batch)


async def _read_links(listing: IndexListing, staging: Staging, buckets: set[int]) -> None:
    batch: list[tuple[str, bytes]] = []
    async for raw in listing.links_raw.find({}, batch_size=_BATCH):
        data = bytes(raw.raw)
        owner = _owner(data)
        if owner is not None and bucket_of(owner) in buckets:
            batch.append((raw_id(data), data))
        if len(batch) >= _BATCH:
            await in_thread(staging.add_links, batch)
            batch = []
    await in_thread(staging.add_links, batch)


def _owner(raw: bytes) -> int | None:
    value: Any = bson.decode(raw, codec_options=CODEC).get("owner_id")
    return int(value) if isinstance(value, int) else None


async def _finish(listing: IndexListing, buckets: set[int], since: int) -> None:
    """Apply what was written to these buckets during the pass, and hold them."""
    async with listing._lock:
        catalog = await listing.open()
        epoch = await listing.epoch()
        await in_thread(catalog.begin)
        try:
            state = await in_thread(catalog.state, epoch)
            if state is None:
                raise RuntimeError("the index was reset during its rebuild")
            changes = await listing.journal.read(since, state[0]) if since < state[0] else []
            if len(changes) != max(0, state[0] - since):
                raise RuntimeError("the journal no longer reaches back to the rebuild's start")
            await listing.catch_up(catalog, buckets, changes, {}, state[0])
            await in_thread(catalog.set_ready, buckets)
            await in_thread(catalog.commit)
        except BaseException:
            await in_thread(catalog.rollback)
            raise

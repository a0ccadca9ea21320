"""The SQLite accelerator (storage/index/catalog.py) as a `Listing`, kept equal to MongoDB.

How it stays current:
- **Replay.** Before it answers, the index reads the journal entries after the position
  it last applied (storage/index/journal.py) and, for each link named there, stores the link's
  *current* state read by `_id` (or drops a deleted link). Applying the latest state
  makes the replay idempotent and order-free, with any number of writers. Processes
  sharing one index file serialise their replays on SQLite's write lock, taken before
  they read the journal, so a later replay never stores an older state. When nothing
  changed, the check is two `_id` look-ups (the next entry, and the applied one, whose
  nonce shows a dropped or restored journal).
- **Writes still landing.** An entry is written before its write (storage/writes.py),
  so a replay may read a link before the write lands: the link's `rev` then is below
  the entry's number, and the link is kept `unsettled` and read again on each sync until
  it is (or SETTLE_LIMIT has passed: the writer died). A lost journal entry cannot
  happen; only this short wait can.
- **Behind the journal's back** (a hand edit, a restored backup): storage/index/heal.py.
- **A new or lost file** answers at once: the asking user's bucket is restored from its
  shelf (storage/index/shelves.py) before the answer (its words indexed when a question
  has some, or by the upkeep later), the rest in the background; buckets
  without a usable shelf are rebuilt from the collections (storage/index/rebuild.py) while
  their owners are answered from MongoDB itself (storage/index/native.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import bson
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from storage.index.catalog import BUCKETS, CODEC, Catalog, Entry, bucket_of, micros
from storage.index.journal import Change, Journal
from storage.index.listing import After, Found
from storage.index.native import NativeListing
from storage.index.rebuild import Built, rebuild
from storage.index.rows import (
    SETTLE_LIMIT,
    Keep,
    Read,
    T,
    Wait,
    entry_of,
    in_thread,
    keeper,
    split_terms,
    waits_of,
)
from storage.index.shelves import Head, ShelfReplaced, Shelves

log = logging.getLogger(__name__)
Doc = dict[str, Any]

# Entries (or links named by them) behind: starting again (shelves, or one pass over the
# collections) is then cheaper than an `_id` look-up per link.
REBUILD_AFTER = 2000
_READERS = 8  # `_id` look-ups in flight while reading many links
FILL_RETRY = 60.0  # seconds before a fill that failed is tried again
# Links up to which an owner of a bucket being rebuilt is answered by MongoDB meanwhile.
NATIVE_UP_TO = 20_000
GIVE_WAY = 2.0  # seconds the background fill waits, at most, for owners being answered
BUSY_POLL = 2.0  # seconds between looks while another process sharing the file rebuilds
RAW: CodecOptions[RawBSONDocument] = CodecOptions(
    document_class=RawBSONDocument, tz_aware=True, tzinfo=UTC
)


class Restored(enum.Enum):
    HELD = "held"  # the bucket is held (restored now, or before)
    NO_SHELF = "no shelf"  # nothing usable to restore it from: rebuilt from the collections
    BUSY = "busy"  # another process held the file: tried again later


class IndexListing:
    """The process's view of the derived index; opened on first use."""

    def __init__(
        self,
        db: AsyncDatabase[Doc],
        journal: Journal,
        path: Path | str,
        native: NativeListing,
        *,
        clock: Callable[[], float] = time.time,
        heal_every: float | None = None,
    ) -> None:
        from storage.index.upkeep import HEAL_EVERY, Upkeep  # it drives this class (and imports it)

        self.db = db
        self.links = db["links"]
        self.links_raw: AsyncCollection[RawBSONDocument] = db.get_collection(  # type: ignore[assignment]
            "links", codec_options=RAW
        )
        self.texts = db["link_texts"]
        self.journal = journal
        self.path = path
        self.native = native
        self.shelves = Shelves(db)
        self.clock = clock
        self.upkeep = Upkeep(self, heal_every=heal_every or HEAL_EVERY)
        self._catalog: Catalog | None = None
        self._epoch: str | None = None
        self.lock = asyncio.Lock()
        self._bucket_locks = [asyncio.Lock() for _ in range(BUCKETS)]
        self._fill: asyncio.Task[None] | None = None
        self.rebuilding: set[int] = set()
        self._failed_at: float | None = None
        self._asking = 0  # owners waiting for their bucket's restore
        self._quiet = asyncio.Event()  # set when none is: the background fill may go on
        self._quiet.set()
        self._links_count: int | None = None
        self.pinned: int | None = None  # the oldest entry a rebuild under way still needs
        self._current_at: float | None = None  # when the catalog last matched the journal

    # -- life ------------------------------------------------------------------------

    async def start(self) -> None:
        self.upkeep.start()

    async def close(self) -> None:
        await self.upkeep.stop()
        if self._fill is not None:
            self._fill.cancel()
            await asyncio.gather(self._fill, return_exceptions=True)
        async with self.lock:
            if self._catalog is not None:
                await self._run(self._catalog.close)
                self._catalog = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await in_thread(fn, *args)

    async def _begin(self, catalog: Catalog) -> bool:
        """Take the file's write lock; False when another process held it past
        BUSY_TIMEOUT. A cancel that comes while the lock is awaited leaves no transaction
        open (it would hold the file against every other process)."""
        try:
            await self._run(catalog.begin)
        except sqlite3.OperationalError:
            return False
        except BaseException:
            await self._run(catalog.rollback)
            raise
        return True

    async def open(self) -> Catalog:
        if self._catalog is None:
            self._catalog = await self._run(Catalog, self.path)
        return self._catalog

    async def epoch(self) -> str:
        if self._epoch is None:
            self._epoch = await self.journal.epoch()
        return self._epoch

    async def locked(self, fn: Callable[[Catalog], T]) -> T:
        """Run `fn` on the catalog, alone (one connection: one user at a time)."""
        async with self.lock:
            return await self._run(fn, await self.open())

    async def holds(self) -> set[int] | None:
        """Buckets held now (None: all)."""
        return await self.locked(lambda c: c.ready())

    # -- the Listing interface ---------------------------------------------------------

    async def find(
        self, owner_id: int, tags: Sequence[str], terms: Sequence[str], offset: int, limit: int
    ) -> Found:
        got = await self._answer(
            owner_id, lambda c: c.find(owner_id, tags, terms, offset, limit), words=bool(terms)
        )
        if got is None:
            return await self.native.find(owner_id, tags, terms, offset, limit)
        return Found(*got)

    async def tag_counts(
        self, owner_id: int, limit: int, *, stale_up_to: float = 0.0
    ) -> list[tuple[str, int]]:
        def counts(c: Catalog) -> list[tuple[str, int]]:
            return c.tag_counts(owner_id, limit)

        got = await self._recent(owner_id, counts, stale_up_to) if stale_up_to > 0 else None
        got = got if got is not None else await self._answer(owner_id, counts)
        return got if got is not None else await self.native.tag_counts(owner_id, limit)

    async def owner_page(self, owner_id: int, after: After | None, limit: int) -> list[Doc]:
        key = (micros(after.created_at) or 0, str(after.id)) if after else None
        got = await self._answer(owner_id, lambda c: c.owner_page(owner_id, key, limit))
        return got if got is not None else await self.native.owner_page(owner_id, after, limit)

    async def owner_counts(self, owner_id: int) -> tuple[int, int]:
        got = await self._answer(owner_id, lambda c: c.owner_counts(owner_id))
        return got if got is not None else await self.native.owner_counts(owner_id)

    async def due_for_check(
        self, statuses: Sequence[str], checked_before: datetime, limit: int
    ) -> list[ObjectId]:
        await self.sync()
        if await self.holds() is not None:  # not all here yet: MongoDB knows
            return await self.native.due_for_check(statuses, checked_before, limit)
        ids = await self.locked(lambda c: c.due_for_check(statuses, checked_before, limit))
        return [ObjectId(i) for i in ids]

    async def gone(self, owner_id: int, offset: int, limit: int) -> Found:
        got = await self._answer(owner_id, lambda c: c.gone(owner_id, offset, limit))
        return Found(*got) if got is not None else await self.native.gone(owner_id, offset, limit)

    async def written(self, seq: int, docs: list[Doc], terms: list[list[str]]) -> None:
        """Take an import's links as written, without reading them back by `_id`.

        Entries before `seq` are replayed as usual; entries after it (say a worker moved
        one of these links on meanwhile) are replayed by the next sync. When this file
        is already past `seq`, its replay read these links (perhaps before they landed:
        they are unsettled and read again).
        """
        async with self.lock:
            catalog = await self.open()
            epoch = await self.epoch()
            state = await self._run(catalog.state, epoch)
            if state is None or state[0] >= seq:
                return
            if not await self._begin(catalog):
                return  # another process holds the file: its replay reads them
            try:
                await self._replay_locked(catalog, epoch, upto=seq - 1)
                state = await self._run(catalog.state, epoch)
                change = await self.journal.entry(seq)
                if state is not None and state[0] == seq - 1 and change is not None:
                    ready = await self._run(catalog.ready)
                    keep = keeper(ready)
                    rows = [_as_stored(d, t) for d, t in zip(docs, terms, strict=True)]
                    rows = [r for r in rows if keep(r.bucket)]
                    await self._run(catalog.apply, rows, [], seq)
                    await self._run(catalog.set_position, seq, change.nonce)
                await self._run(catalog.commit)
            except BaseException:
                await self._run(catalog.rollback)
                raise

    async def complete(self) -> None:
        """Wait until this file holds every bucket (restored or rebuilt)."""
        for _ in range(3):
            await self.sync()
            if await self.holds() is None:
                return
            self.fill()
            assert self._fill is not None
            await asyncio.shield(self._fill)
        raise RuntimeError("the index could not be filled (see the log)")

    # -- answering ---------------------------------------------------------------------

    async def _answer(
        self, owner_id: int, fn: Callable[[Catalog], T], *, words: bool = False
    ) -> T | None:
        """`fn` on the catalog once it is current and holds the owner's bucket (restored
        first, before the other buckets; its `words` indexed first when the question has
        some). None when the bucket has no shelf and MongoDB itself may be asked while it
        is rebuilt: only a small collection, as each such question reads all of it on
        FerretDB (and slows the rebuild); else this waits for the rebuild. Never from a
        file still behind the journal (another process holding it): MongoDB answers then,
        or, for a large collection, the next round waits for the file again."""
        bucket = bucket_of(owner_id)
        for _ in range(3):
            with self._asked():
                async with self.lock:
                    catalog = await self._sync_locked()
                    if catalog is not None:
                        ready = await self._run(catalog.ready)
                        if ready is None or bucket in ready:
                            if not words or await self._word(catalog, bucket):
                                return await self._run(fn, catalog)
                            continue  # another process holds the file: ask again
                if catalog is not None and await self.restore(bucket, words=words) is Restored.HELD:
                    continue
            if await self._small():
                return None
            if catalog is None:
                continue  # behind, and held by another process: wait for it again
            if self._fill is None:
                return None
            await asyncio.shield(self._fill)  # rebuilt: the next round answers
        return None

    async def _recent(
        self, owner_id: int, fn: Callable[[Catalog], T], stale_up_to: float
    ) -> T | None:
        """`fn` on the catalog as this process last brought it up to the journal (the
        upkeep does every TICK), when that was at most `stale_up_to` seconds ago and the
        owner's bucket is held; else None. No database command: a read that a few seconds'
        lag does not hurt (the ＋#tag suggestions) skips the catch-up each new asker would
        make, a third of a link's commands in a burst from many users."""
        if not self._recent_enough(stale_up_to):
            return None
        async with self.lock:
            catalog = self._catalog
            if catalog is None or not self._recent_enough(stale_up_to):
                return None
            ready = await self._run(catalog.ready)
            if ready is not None and bucket_of(owner_id) not in ready:
                return None
            return await self._run(fn, catalog)

    def _recent_enough(self, stale_up_to: float) -> bool:
        if self._current_at is None:
            return False
        return 0 <= self.clock() - self._current_at <= stale_up_to  # a clock set back: ask

    async def _word(self, catalog: Catalog, bucket: int) -> bool:
        """Index the words of the bucket's rows stored without them (a restore or a
        rebuild leaves them for later), under the index's lock; False when another
        process holds the file."""
        if await self._run(catalog.unworded, bucket) is None:
            return True
        if not await self._begin(catalog):
            return False
        try:
            await self._run(catalog.word, bucket)
            await self._run(catalog.commit)
        except BaseException:
            await self._run(catalog.rollback)
            raise
        return True

    async def word_all(self) -> None:
        """Index the words left for later, a bucket at a time, giving way to owners
        being answered."""
        while True:
            await self._give_way()
            async with self.lock:
                catalog = await self.open()
                bucket = await self._run(catalog.unworded)
                if bucket is None or not await self._word(catalog, bucket):
                    return

    async def checkpoint(self) -> None:
        """Copy the index's write-ahead log into its file, beside answers and writes."""
        if self._catalog is not None:
            await self._run(self._catalog.checkpoint)

    @contextlib.contextmanager
    def _asked(self) -> Iterator[None]:
        """An owner is being answered: the background fill gives way meanwhile."""
        self._asking += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._asking -= 1
            if not self._asking:
                self._quiet.set()

    async def _give_way(self) -> None:
        """The background fill waits while owners are being answered (a moment at most:
        on a busy front they never all stop at once)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), GIVE_WAY)

    async def _small(self) -> bool:
        """Whether `links` is small enough to ask MongoDB directly while rebuilding."""
        if self._links_count is None:
            try:
                stats = await self.db.command("collStats", "links")
                self._links_count = int(stats.get("count", 0))
            except PyMongoError:
                self._links_count = NATIVE_UP_TO + 1
        return self._links_count <= NATIVE_UP_TO

    async def sync(self) -> None:
        async with self.lock:
            await self._sync_locked()

    async def _sync_locked(self) -> Catalog | None:
        """The catalog brought up to the journal's head; None when it is behind and
        another process holds its write lock past BUSY_TIMEOUT (a long replay, restore
        or rebuild step, storage/index/catalog.py): what it holds may lack the newest writes,
        the asker's own included (an import whose rows the busy file could not take)."""
        catalog = await self.open()
        epoch = await self.epoch()
        asked_at = self.clock()  # the journal as read from here on is at least this recent
        state = await self._run(catalog.state, epoch)
        if (
            state is not None
            and await self._current(*state)
            and not await self._run(catalog.unsettled)
        ):
            self._current_at = asked_at
            return catalog  # the common case
        if not await self._begin(catalog):
            log.warning("search index busy and behind the journal")
            return None
        try:
            await self._replay_locked(catalog, epoch)
            await self._run(catalog.commit)
        except BaseException:
            await self._run(catalog.rollback)
            raise
        self._current_at = asked_at
        return catalog

    async def _current(self, position: int, nonce: str) -> bool:
        """Nothing after `position`, and the entry at it is the one applied. The entry
        after is looked at first: when there is one, the replay that follows reads the
        entry at the position itself, after taking the file's lock (a journal dropped or
        restored meanwhile must show there), so it is not read here too."""
        if position == 0:
            after, tail = await asyncio.gather(self.journal.entry(1), self.journal.tail())
            return after is None and tail == 0
        if await self.journal.entry(position + 1) is not None:
            return False
        here = await self.journal.entry(position)
        return here is not None and here.nonce == nonce

    async def _replay_locked(self, catalog: Catalog, epoch: str, upto: int | None = None) -> None:
        """Bring the catalog to the journal's head (or `upto`), in the open transaction."""
        state = await self._run(catalog.state, epoch)
        if state is not None and state[0] > 0:
            here = await self.journal.entry(state[0])
            if here is None or here.nonce != state[1]:
                state = None  # the journal was dropped, restored or trimmed past us
        if state is None:
            await self._reset_locked(catalog, epoch)
            return
        position = state[0]
        limit = position + REBUILD_AFTER if upto is None else min(upto, position + REBUILD_AFTER)
        changes = await self.journal.read(position, limit)
        if len(changes) == REBUILD_AFTER or sum(len(c.ids) for c in changes) > REBUILD_AFTER:
            await self._reset_locked(catalog, epoch)
            return
        keep = keeper(await self._run(catalog.ready))
        waits = waits_of(changes, keep)
        for link_id, seq, gone, since, bucket in await self._run(catalog.unsettled):
            oid = ObjectId(link_id)
            if oid in waits:
                continue  # named again since: wait for the newer entry
            # Past the limit the writer is gone: take what is there.
            dead = self.clock() - since > SETTLE_LIMIT
            waits[oid] = Wait(0, False) if dead else Wait(seq, gone, bucket)
        last = changes[-1] if changes else None
        await self.settle(catalog, waits, keep, last.seq if last else position)
        if last is not None:
            await self._run(catalog.set_position, last.seq, last.nonce)

    async def settle(
        self,
        catalog: Catalog,
        waits: dict[ObjectId, Wait],
        keep: Keep,
        position: int,
        leave: Keep = lambda bucket: False,
    ) -> None:
        """Store the current state of these links (in the open transaction); those whose
        announced write has not landed yet are held to be read again. Links of buckets to
        `leave` (held, but not being caught up) are not touched, their waits included:
        the replay that holds those buckets stores them."""
        reads = await self.read_links(waits)
        upserts: list[Entry] = []
        deletes: list[str] = []
        hold: dict[str, tuple[int, bool, int | None]] = {}
        done: list[str] = []
        for link_id, wait in waits.items():
            got = reads.get(link_id)
            bucket = wait.bucket if got is None else bucket_of(int(got.doc["owner_id"]))
            if bucket is not None and not keep(bucket) and leave(bucket):
                continue
            if got is None:
                deletes.append(str(link_id))
                landed = wait.gone or wait.seq == 0
            else:
                entry = entry_of(got.doc, got.terms, got.raw)
                if keep(entry.bucket):
                    upserts.append(entry)
                landed = wait.seq == 0 or (
                    not wait.gone and int(got.doc.get("rev") or 0) >= wait.seq
                )
            if landed:
                done.append(str(link_id))
            else:
                hold[str(link_id)] = (wait.seq, wait.gone, bucket)
        await self._run(catalog.apply, upserts, deletes, position)
        await self._run(catalog.release, done)
        await self._run(catalog.hold, hold, self.clock())

    async def read_links(self, ids: Iterable[ObjectId]) -> dict[ObjectId, Read]:
        """Current state of these links (absent: deleted), a few `_id` look-ups at a time
        (`$in` is not pushed down by FerretDB v1)."""
        out: dict[ObjectId, Read] = {}
        gate = asyncio.Semaphore(_READERS)

        async def one(link_id: ObjectId) -> None:
            async with gate:
                raw = await self.links_raw.find_one({"_id": link_id})
                if raw is None:
                    return
                doc = bson.decode(raw.raw, codec_options=CODEC)
                text = await self.texts.find_one({"_id": link_id}, {"terms": 1})
                # Links from before the split still carry their terms in the document.
                terms = split_terms((text or {}).get("terms") or doc.get("terms"))
                out[link_id] = Read(doc, bytes(raw.raw), terms)

        await asyncio.gather(*(one(i) for i in ids))
        return out

    # -- starting again ------------------------------------------------------------------

    async def _reset_locked(self, catalog: Catalog, epoch: str) -> None:
        """Hold nothing, at the journal's head; buckets come back from shelves (or one
        pass over the collections) in the background, the asking owner's first."""
        self._epoch = None  # a dropped journal gets a new one
        self._links_count = None
        epoch = await self.epoch()
        head = await self.journal.head()
        change = await self.journal.entry(head) if head else None
        log.info("search index: starting again at journal position %d", head)
        await self._run(catalog.reset, epoch, head, change.nonce if change else "")
        self.fill()

    async def _fill_all(self) -> None:
        try:
            again = 0
            while True:
                missing: set[int] = set()
                busy = False
                for bucket in range(BUCKETS):
                    await self._give_way()  # an owner waiting for their bucket goes first
                    restored = await self.restore(bucket, background=True)
                    busy |= restored is Restored.BUSY
                    if restored is Restored.NO_SHELF:
                        missing.add(bucket)
                if busy:  # another process held the file: restore them later, not rebuild
                    await asyncio.sleep(BUSY_POLL)
                    continue
                built = await rebuild(self, missing) if missing else Built.DONE
                if built is Built.DONE:
                    return
                if built is Built.BUSY:  # another process builds them: look again soon
                    await asyncio.sleep(BUSY_POLL)
                    continue
                again += 1  # a start again during a rebuild undoes it: build again
                if again == 3:
                    raise RuntimeError("the index started again during each of three rebuilds")
        except asyncio.CancelledError:
            raise
        except Exception:
            # Owners of the missing buckets are answered from MongoDB meanwhile.
            self._failed_at = self.clock()
            log.exception("search index: could not fill the index; upkeep tries again")

    def fill(self) -> None:
        """Restore (or rebuild) the buckets not held, unless that is under way (or failed
        less than FILL_RETRY seconds ago)."""
        if self._failed_at is not None and self.clock() - self._failed_at < FILL_RETRY:
            return
        if self._fill is None or self._fill.done():
            self._failed_at = None
            self._fill = asyncio.create_task(self._fill_all())

    async def restore(
        self, bucket: int, *, background: bool = False, words: bool = False
    ) -> Restored:
        """Hold `bucket`: from its shelf, caught up with the journal. NO_SHELF when it has
        no usable shelf (or is being rebuilt from the collections), BUSY when another
        process held the file past BUSY_TIMEOUT. In the `background`, it gives way to
        owners being answered before it takes the index's lock. Its rows' `words` are
        indexed now when the asker's question has some, else later (`word_all`)."""
        async with self._bucket_locks[bucket]:
            ready = await self.holds()
            if ready is None or bucket in ready:
                return Restored.HELD
            if bucket in self.rebuilding:
                return Restored.NO_SHELF
            epoch = await self.epoch()
            for _ in range(2):  # a shelf replaced while read: read the new one
                head = await self.shelves.head(bucket)
                if head is None or head.epoch != epoch:
                    return Restored.NO_SHELF
                if background:
                    await self._give_way()
                try:
                    return await self._restore_from(head, epoch, words)
                except ShelfReplaced:
                    continue
            return Restored.NO_SHELF

    async def _restore_from(self, head: Head, epoch: str, words: bool) -> Restored:
        async with self.lock:
            catalog = await self.open()
            if not await self._begin(catalog):
                # Another process holds the file (a long step): answered meanwhile as a
                # bucket without a shelf is; a later ask or the fill restores it.
                log.warning("search index busy; bucket %d not restored now", head.bucket)
                return Restored.BUSY
            try:
                done = await self._restore_locked(catalog, epoch, head, words)
                await self._run(catalog.commit if done else catalog.rollback)
            except BaseException:
                await self._run(catalog.rollback)
                raise
        return Restored.HELD if done else Restored.NO_SHELF

    async def _restore_locked(self, catalog: Catalog, epoch: str, head: Head, words: bool) -> bool:
        state = await self._run(catalog.state, epoch)
        if state is None:
            return False
        position, bucket = state[0], head.bucket
        since = head.position
        changes = await self.journal.read(since, position) if since < position else []
        if len(changes) != max(0, position - since):
            return False  # the journal no longer reaches back to the shelf
        await self._run(catalog.drop_bucket, bucket)
        waits: dict[ObjectId, Wait] = {}
        rows = 0
        async for piece in self.shelves.pieces(head):
            await self._run(partial(catalog.put_rows, piece.rows, words=words))
            waits.update((ObjectId(i), Wait(s, False, bucket)) for i, s in piece.waits)
            rows += len(piece.rows)
        await self.catch_up(catalog, {bucket}, changes, waits, position)
        await self._run(catalog.set_ready, [bucket])
        log.info("search index: bucket %d restored (%d links)", bucket, rows)
        return True

    async def catch_up(
        self,
        catalog: Catalog,
        buckets: set[int],
        changes: list[Change],
        waits: dict[ObjectId, Wait],
        position: int,
    ) -> None:
        """Apply `changes` (which end at the catalog's position) to these buckets only."""

        def keep(bucket: int) -> bool:
            return bucket in buckets

        held = keeper(await self._run(catalog.ready))
        await self.settle(catalog, {**waits, **waits_of(changes, keep)}, keep, position, held)


def _as_stored(doc: Doc, terms: list[str]) -> Entry:
    """The row of a document as MongoDB keeps it (BSON: dates to the millisecond), so the
    row equals what a replay would read back, fingerprint and all."""
    raw = bson.encode(doc, codec_options=CODEC)
    return entry_of(bson.decode(raw, codec_options=CODEC), terms, raw)

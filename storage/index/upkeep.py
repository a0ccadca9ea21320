"""What keeps the listing index true while the bot runs, on one (injectable) clock.

Every TICK seconds, or when poked, the index replays the journal and reads again the
links whose announced write has not landed (storage/index/search.py), and copies its
write-ahead log into its file (commits leave that to this). Then the words a restore or a
rebuild left for later are indexed, and, when due:

- a **heal pass** (storage/index/heal.py) every `heal_every` seconds (so what reached MongoDB
  behind the journal's back shows within that time and one pass), but one that took t
  seconds is not followed by the next before 4t after it began: at most a quarter of the
  time goes to it, however large the collection;
- **shelves** (storage/index/shelves.py) every SHELF_EVERY: buckets without a shelf, then up to
  SHELVES_PER_ROUND changed ones (oldest first); an unchanged one only gets its position
  moved on;
- its position **registered** in the journal, and the journal **trimmed** below every
  live index's position and every shelf's.

A file not holding every bucket keeps being filled (restored, or rebuilt) instead.
Processes sharing one index file take turns at the heal and the shelves (`claim_job`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sqlite3
from datetime import timedelta
from pathlib import Path

from pymongo.errors import PyMongoError

from storage.index.catalog import BUCKETS
from storage.index.heal import Healed, heal
from storage.index.view import IndexView
from storage.models import utcnow

log = logging.getLogger(__name__)

TICK = 2.0
HEAL_EVERY = 45.0
HEAL_SHARE = 4  # a pass of t seconds: the next begins HEAL_SHARE * t after it began, at least
SHELF_EVERY = 60.0
SHELVES_PER_ROUND = 4
REGISTER_EVERY = 30.0
TRIM_EVERY = 60.0
LIVE = timedelta(minutes=10)  # an index not heard from for this long no longer holds the journal


class Upkeep:
    def __init__(self, listing: IndexView, *, heal_every: float = HEAL_EVERY) -> None:
        self.listing = listing
        self.heal_every = heal_every
        self.heal_gap = heal_every
        self.heals = 0  # passes done: a test waits for this to move
        self.last_heal: Healed | None = None
        self.ticks = 0
        self._last: dict[str, float] = {}  # this process's own jobs
        self._poke = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._moved = asyncio.Condition()

    @property
    def index_id(self) -> str:
        """Processes sharing one index file share its place in the journal's registry."""
        return f"{socket.gethostname()}:{Path(self.listing.path).resolve()}"

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def poke(self) -> None:
        """Tick now (a test moved the clock on)."""
        self._poke.set()

    async def ticked(self, after: int) -> None:
        """Wait until more than `after` ticks have run."""
        async with self._moved:
            await self._moved.wait_for(lambda: self.ticks > after)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), TICK)
            self._poke.clear()
            try:
                await self.tick()
            except (PyMongoError, sqlite3.Error, OSError) as exc:
                log.warning("search index upkeep failed (%s); trying again", type(exc).__name__)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("search index upkeep failed; trying again")

    def _due(self, job: str, every: float) -> bool:
        last = self._last.get(job)
        return last is None or self.listing.clock() - last >= every

    def _done(self, job: str) -> None:
        self._last[job] = self.listing.clock()

    async def _claim(self, job: str, every: float) -> bool:
        """Due, and ours: of the processes sharing the index file, one does it."""
        now = self.listing.clock()
        return await self.listing.locked(lambda c: c.claim_job(job, every, now))

    async def tick(self) -> None:
        listing = self.listing
        await listing.sync()
        await listing.checkpoint()
        if await listing.holds() is not None:
            listing.fill()
        else:
            await listing.word_all()
            if await self._claim("heal", self.heal_gap):
                self.last_heal = await heal(listing)
                self.heals += 1
                self.heal_gap = max(self.heal_every, HEAL_SHARE * self.last_heal.seconds)
            if await self._claim("shelves", SHELF_EVERY):
                await self.shelve()
        if self._due("register", REGISTER_EVERY):
            await self.register()
            self._done("register")
        if self._due("trim", TRIM_EVERY):
            await self.trim()
            self._done("trim")
        async with self._moved:
            self.ticks += 1
            self._moved.notify_all()

    async def register(self) -> None:
        listing = self.listing
        epoch = await listing.epoch()
        state = await listing.locked(lambda c: c.state(epoch))
        if state is None:
            return
        position = state[0] if listing.pinned is None else min(state[0], listing.pinned)
        await listing.journal.register(self.index_id, position, utcnow())

    async def trim(self) -> int:
        """Trim the journal below what every live index and every shelf still needs."""
        listing = self.listing
        await self.register()
        floor = await listing.journal.floor(utcnow(), LIVE)
        if floor is None:
            return await listing.journal.tail()
        epoch = await listing.epoch()
        heads = [h for h in (await listing.shelves.all_heads()).values() if h.epoch == epoch]
        # An index needs the entry at its position (its nonce) and all after; a shelf all
        # after its position.
        upto = min([floor - 1, *(h.position for h in heads)])
        return await listing.journal.trim(upto)

    async def shelve(self) -> int:
        """Write the shelves due; returns how many were written."""
        listing = self.listing
        epoch = await listing.epoch()
        heads = await listing.shelves.all_heads()
        got = await listing.locked(lambda c: (c.state(epoch), c.changed()))
        state, changed = got
        if state is None:
            return 0
        position = state[0]
        missing = [b for b in range(BUCKETS) if b not in heads or heads[b].epoch != epoch]
        ours = sorted((h for b, h in heads.items() if b not in missing), key=lambda h: h.position)
        dirty = [h.bucket for h in ours if changed.get(h.bucket, 0) > h.position]
        for bucket in [*missing, *dirty[:SHELVES_PER_ROUND]]:
            rows, waits, at = await listing.locked(
                lambda c, b=bucket: c.bucket_shelf(b, epoch)  # type: ignore[misc]
            )
            if at is None:
                return 0
            await listing.shelves.write(bucket, epoch, at[0], rows, waits)
        for head in ours:
            if head.bucket in dirty or head.position >= position:
                continue
            waits = await listing.locked(lambda c, b=head.bucket: c.bucket_waits(b))  # type: ignore[misc]
            if not waits:
                await listing.shelves.restamp(head, position)
        return len(missing) + len(dirty[:SHELVES_PER_ROUND])

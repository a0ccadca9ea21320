"""The change journal: which links a write is about to change, in one order every
process agrees on.

Every write to a link first appends an entry `{_id: "<16-digit seq>", ids, o: owners,
g: gone, n: nonce}` and then makes the write carrying that number (`rev`, see
storage/writes.py). A crash between the two leaves an entry naming a link that did not
change, which costs a reader one look-up; the reverse (a change no entry names) cannot
happen. Entries are numbered without gaps: a writer inserts at the number after one it
knows exists, and on a duplicate-key error (another writer took it) tries the next. The
unique `_id` index makes each insert atomic, on MongoDB as on FerretDB, so no
read-modify-write (which FerretDB v1 does not make atomic) is involved.

The journal is bounded: entries every listing index has applied, and every shelf has
passed (storage/index/shelves.py), are trimmed (`trim`), and the `tail` document says up to
where. A number trimmed is free again, so an append that lands on one must be taken back:
it reads the tail after each insert, except within FRESH_FOR of its own last append. That
read is needed only when the number could have been trimmed, and a trimmer takes only
entries that existed TRIM_AGE ago by its own clock, while every number above this
process's last append was written after it: an append sooner than TRIM_AGE after that
cannot meet a trimmed one. Durations only, each on its own host's clock, never two
clocks compared. Entries are present exactly for tail < seq <= head, so "entry n exists" is
monotone above the tail and the head is found by galloping from there in O(log n) `_id`
look-ups: the one query FerretDB answers from an index. A dropped journal gets a new
epoch; a restored one shows as a missing or different entry at an index's position.
Either makes that index start again (restore or rebuild), never skip a change.

String ids, because FerretDB's SQLite backend pushes down `_id` equality only for strings
and ObjectIds, not numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from storage.models import utcnow
from storage.upserts import set_by_id

Doc = dict[str, Any]
EPOCH_ID = "epoch"
TAIL_ID = "tail"
_PROBES_BEFORE_RESYNC = 8
# Above this many entries to read, one pass over the (bounded) collection is cheaper than
# a look-up each on FerretDB.
_SCAN_ABOVE = 64
# An entry is trimmed only once it existed this many seconds ago, as its trimmer saw it.
TRIM_AGE = 30.0
# An append this soon after this process's previous one skips the tail's read (half
# TRIM_AGE: a margin, not a need).
FRESH_FOR = TRIM_AGE / 2
_SAMPLE_EVERY = 1.0  # seconds between the numbers a trimmer keeps for TRIM_AGE


def since_boot() -> float:
    """Seconds on a clock that also runs while the host sleeps (CLOCK_BOOTTIME; elsewhere
    the monotonic clock): a host suspended for minutes must not find its last append
    "moments ago" while other processes wrote and trimmed meanwhile."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.monotonic()


def key(seq: int) -> str:
    return f"{seq:016d}"


@dataclass(frozen=True)
class Change:
    """One journal entry: links about to change (`gone`: about to be deleted)."""

    seq: int
    ids: list[ObjectId]
    owners: list[int]  # their owners where the writer knew them (empty: unknown)
    gone: bool
    nonce: str
    heal: bool = False  # found changed behind the journal (storage/index/heal.py): no write follows
    at: datetime | None = None  # when it was written (the writer's clock)


def _change(doc: Doc) -> Change:
    return Change(
        seq=int(doc["_id"]),
        ids=list(doc.get("ids", [])),
        owners=[int(o) for o in doc.get("o", [])],
        gone=bool(doc.get("g", False)),
        nonce=str(doc.get("n", "")),
        heal=bool(doc.get("h", False)),
        at=doc.get("at") if isinstance(doc.get("at"), datetime) else None,
    )


class Journal:
    def __init__(
        self,
        entries: AsyncCollection[Doc],
        positions: AsyncCollection[Doc],
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.entries = entries
        # Where each live listing index is (for trimming): {_id: index id, position, at}.
        self.positions = positions
        self._clock = clock or since_boot  # durations only
        self._head: int | None = None  # newest entry this process knows to exist
        # When this process's last append was made (before its insert): every number
        # above it was written since. None: not known (none yet, or the journal moved).
        self._appended_at: float | None = None
        # (first seen, last seen, a number existing then): what `trim` may take once old.
        self._seen: deque[tuple[float, float, int]] = deque()
        # One append at a time in this process: its writers would otherwise all try the
        # same next number and retry one another's (k writers, k² inserts).
        self._appending = asyncio.Lock()

    async def epoch(self) -> str:
        """A random id made once per journal, kept in it: a derived index built from another
        database, or from a journal since dropped, is recognised and rebuilt."""
        doc = await self.entries.find_one({"_id": EPOCH_ID})
        if doc is None:
            with contextlib.suppress(DuplicateKeyError):  # another process made it first
                await self.entries.insert_one({"_id": EPOCH_ID, "epoch": uuid.uuid4().hex})
            doc = await self.entries.find_one({"_id": EPOCH_ID})
        assert doc is not None
        return str(doc["epoch"])

    async def entry(self, seq: int) -> Change | None:
        doc = await self.entries.find_one({"_id": key(seq)})
        return _change(doc) if doc is not None else None

    async def tail(self) -> int:
        """Entries up to this number were trimmed (0: none)."""
        doc = await self.entries.find_one({"_id": TAIL_ID})
        return int(doc["seq"]) if doc else 0

    async def head(self, known: int = 0) -> int:
        """The newest entry's number (the tail for an empty journal); `known` must exist."""
        low = max(known, self._head or 0)
        if low and await self.entry(low) is None:
            low = 0  # dropped or trimmed under us: what was seen of it says nothing now
            self._appended_at = None
            self._seen.clear()
        if not low:
            low = await self._first()
        step = 1
        while await self.entry(low + step) is not None:
            low += step
            step *= 2
        high = low + step  # absent
        while high - low > 1:
            mid = (low + high) // 2
            if await self.entry(mid) is not None:
                low = mid
            else:
                high = mid
        self._head = low
        self._saw(low)
        return low

    async def _first(self) -> int:
        """The oldest entry's number, or the tail when there is none. The tail document is
        a hint (trimmers racing may leave it low), so this asks the (bounded) collection."""
        tail = await self.tail()
        if await self.entry(tail + 1) is not None:
            return tail + 1
        query = {"_id": {"$gt": key(tail), "$lt": key(10**16 - 1)}}
        first = await self.entries.find(query, {"_id": 1}).sort("_id", 1).limit(1).to_list()
        return int(first[0]["_id"]) if first else tail

    async def append(
        self,
        ids: Sequence[ObjectId],
        owners: Sequence[int] = (),
        *,
        gone: bool = False,
        heal: bool = False,
    ) -> int:
        """Record that these links are about to change (`heal`: have changed already, behind
        the journal's back); returns the entry's number."""
        doc: Doc = {"ids": list(ids), "o": sorted(set(owners))}
        if gone:
            doc["g"] = True
        if heal:
            doc["h"] = True
        async with self._appending:
            seq = (self._head if self._head is not None else await self.head()) + 1
            misses = 0
            while True:
                began = self._clock()
                try:
                    await self.entries.insert_one(
                        {"_id": key(seq), "n": secrets.token_hex(6), "at": utcnow(), **doc}
                    )
                except DuplicateKeyError:
                    misses += 1
                    # Busy with other processes: look the head up again rather than walk.
                    seq = (await self.head(seq) if misses % _PROBES_BEFORE_RESYNC == 0 else seq) + 1
                    continue
                if not self._fresh() and seq <= await self.tail():
                    # A number trimmed since this process last knew the head (another one
                    # wrote and trimmed meanwhile): no index reads below the tail, so the
                    # write would never reach one. Take it back and append at the head.
                    await self.entries.delete_one({"_id": key(seq)})
                    self._head = self._appended_at = None
                    seq = await self.head() + 1
                    continue
                self._head, self._appended_at = seq, began
                self._saw(seq)
                return seq

    def _fresh(self) -> bool:
        """Whether no number above this process's last append can have been trimmed yet."""
        if self._appended_at is None:
            return False
        return 0.0 <= self._clock() - self._appended_at < FRESH_FOR

    def _saw(self, seq: int) -> None:
        """Entry `seq` exists now: a trim TRIM_AGE from now may take it. One sample a
        second, each kept at the latest time it stood for (a trim then waits longer)."""
        now = self._clock()
        if self._seen and 0.0 <= now - self._seen[-1][0] < _SAMPLE_EVERY:
            first, _, highest = self._seen[-1]
            self._seen[-1] = (first, now, max(highest, seq))
        else:
            self._aged()  # those old enough become one: at most ~TRIM_AGE samples kept
            self._seen.append((now, now, seq))

    def _aged(self) -> int:
        """The highest number that existed TRIM_AGE ago, as this process saw (0: none)."""
        now, aged = self._clock(), 0
        while self._seen and now - self._seen[0][1] >= TRIM_AGE:
            aged = max(aged, self._seen.popleft()[2])
        if aged:  # still the bound of the next trim, until a later sample ages
            self._seen.appendleft((now - TRIM_AGE, now - TRIM_AGE, aged))
        return aged

    async def read(self, after: int, upto: int) -> list[Change]:
        """Entries after `after` up to the first missing one (at most `upto`), in order:
        one `_id` look-up each while they are few, one pass over the (bounded)
        collection for the rest when there turn out to be many."""
        out: list[Change] = []
        seq = after + 1
        while seq <= upto and len(out) < _SCAN_ABOVE:
            change = await self.entry(seq)
            if change is None:
                return out
            out.append(change)
            seq += 1
        if seq <= upto:
            out += await self._scan(seq - 1, upto)
        return out

    async def _scan(self, after: int, upto: int) -> list[Change]:
        found: dict[int, Change] = {}
        query = {"_id": {"$gt": key(after), "$lte": key(upto)}}
        async for doc in self.entries.find(query):
            if str(doc["_id"]).isdigit():
                found[int(doc["_id"])] = _change(doc)
        out = []
        for seq in range(after + 1, upto + 1):
            if seq not in found:
                break
            out.append(found[seq])
        return out

    async def landing(self, head: int, since: datetime) -> int:
        """The position before the oldest entry up to `head` written at or after `since`
        (`head` when there is none): the writes those entries announce may still be
        landing, so a pass over `links` made now may miss them."""
        tail = await self.tail()
        query = {"_id": {"$gt": key(tail), "$lte": key(head)}, "at": {"$gte": since}}
        first = await self.entries.find(query, {"_id": 1}).sort("_id", 1).limit(1).to_list()
        return int(first[0]["_id"]) - 1 if first else head

    # -- bounding it -----------------------------------------------------------------

    async def register(self, index_id: str, position: int, now: datetime) -> None:
        """A listing index says it has applied everything up to `position`."""
        await set_by_id(self.positions, index_id, {"position": position, "at": now})

    async def floor(self, now: datetime, live: timedelta) -> int | None:
        """The lowest position of the indexes heard from within `live` (None: none)."""
        lowest: int | None = None
        async for doc in self.positions.find({}):
            at = doc.get("at")
            if isinstance(at, datetime) and at >= now - live:
                pos = int(doc.get("position") or 0)
                lowest = pos if lowest is None else min(lowest, pos)
        return lowest

    async def trim(self, upto: int) -> int:
        """Delete the entries up to `upto` (never the head, nor any that did not exist
        TRIM_AGE ago as this process saw); returns the new tail."""
        head = await self.head()
        upto = min(upto, head - 1, self._aged())
        tail = await self.tail()
        if upto <= tail:
            return tail
        # The tail first: a reader that finds it never gallops into the hole below. Only
        # ever raised: a trimmer racing with a lower bound must not set it back.
        with contextlib.suppress(DuplicateKeyError):  # it exists, at or above `upto`
            await self.entries.update_one(
                {"_id": TAIL_ID, "seq": {"$lt": upto}}, {"$set": {"seq": upto}}, upsert=True
            )
        await self.entries.delete_many({"_id": {"$gt": key(tail), "$lte": key(upto)}})
        return upto

    async def size(self) -> int:
        return await self.entries.count_documents({})

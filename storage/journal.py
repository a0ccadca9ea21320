"""The change journal: which links changed, in one order every process agrees on.

Every write to a link appends an entry `{_id: "<16-digit seq>", ids: [link ids]}` after the
write itself. Entries are numbered 1, 2, 3 … without gaps: a writer inserts at the number
after one it knows exists, and on a duplicate-key error (another writer took it) tries the
next. The unique `_id` index makes each insert atomic, on MongoDB as on FerretDB, so no
read-modify-write (which FerretDB v1 does not make atomic) is involved. Because there are
no gaps, "entry n exists" is monotone in n and the newest entry is found by galloping and
bisection in O(log n) `_id` look-ups: the one query FerretDB answers from an index.

String ids, because FerretDB's SQLite backend pushes down `_id` equality only for strings
and ObjectIds, not numbers.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from storage.models import utcnow

Doc = dict[str, Any]
EPOCH_ID = "epoch"
_PROBES_BEFORE_RESYNC = 8


def key(seq: int) -> str:
    return f"{seq:016d}"


class Journal:
    def __init__(self, entries: AsyncCollection[Doc]) -> None:
        self.entries = entries
        self._head: int | None = None  # newest entry this process knows to exist

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

    async def entry(self, seq: int) -> Doc | None:
        return await self.entries.find_one({"_id": key(seq)})

    async def head(self, known: int = 0) -> int:
        """The newest entry's number (0 for an empty journal); `known` must exist or be 0."""
        low = max(known, self._head or 0)
        if low and await self.entry(low) is None:
            low = 0  # the journal was dropped under us
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
        return low

    async def append(self, ids: list[ObjectId]) -> int:
        """Record that these links changed; returns the entry's number."""
        seq = (self._head if self._head is not None else await self.head()) + 1
        misses = 0
        while True:
            try:
                await self.entries.insert_one({"_id": key(seq), "ids": ids, "at": utcnow()})
            except DuplicateKeyError:
                misses += 1
                # Busy with other writers: look the head up again rather than walk.
                seq = (await self.head(seq) if misses % _PROBES_BEFORE_RESYNC == 0 else seq) + 1
                continue
            self._head = seq
            return seq

    async def read(self, after: int, upto: int) -> tuple[list[ObjectId], int]:
        """Link ids of the entries after `after` up to the first missing one (at most
        `upto`), each once, and the number of the last entry read."""
        seen: dict[ObjectId, None] = {}
        last = after
        for seq in range(after + 1, upto + 1):
            doc = await self.entry(seq)
            if doc is None:
                break
            seen.update(dict.fromkeys(doc.get("ids", [])))
            last = seq
        return list(seen), last

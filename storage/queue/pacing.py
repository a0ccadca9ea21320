"""Telegram pacing shared by every process of one bot, through MongoDB.

Each process paces its own calls (bot/chat/outbound.py); with several processes writing to
one chat (workers, fronts) their paces would add up. So a counted call first takes the
chat's next free time slot here: `send_slots/{chat}:{interval}:{n}` for the n-th slot
of `interval` seconds, a unique insert that exactly one process wins (atomic on MongoDB
and FerretDB alike). A RetryAfter one process meets is written down for the others.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.models import utcnow
from storage.upserts import set_by_id

Doc = dict[str, Any]
MAX_PROBES = 600  # slots looked at before giving up on sharing (then local pace only)


class SendLedger:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.slots: AsyncCollection[Doc] = db["send_slots"]

    async def reserve(self, chat: int | str, interval: float) -> float:
        """Seconds to wait until this chat's next free slot, which is now ours."""
        now = time.time()
        first = int(now / interval)
        for n in range(first, first + MAX_PROBES):
            try:
                await self.slots.insert_one({"_id": f"{chat}:{interval:.3f}:{n}", "at": utcnow()})
            except DuplicateKeyError:
                continue
            return max(0.0, n * interval - now)
        return 0.0

    async def hold(self, chat: int | str, until: float) -> None:
        """Telegram said RetryAfter to one process: every process waits."""
        await set_by_id(self.slots, f"hold:{chat}", {"until": until, "at": utcnow()})

    async def held_for(self, chat: int | str) -> float:
        doc = await self.slots.find_one({"_id": f"hold:{chat}"})
        return max(0.0, float(doc["until"]) - time.time()) if doc else 0.0

    async def holds(self) -> dict[str, float]:
        """Every chat still held (its key as written, without `hold:`): seconds left."""
        now = time.time()
        out = {}
        async for doc in self.slots.find({"until": {"$gt": now}}):
            if str(doc["_id"]).startswith("hold:"):
                out[str(doc["_id"])[5:]] = float(doc["until"]) - now
        return out

    async def forget(self, older_than: datetime) -> None:
        """Slots written before `older_than`, and holds that have run out (a 429's window
        may be longer than the slots are kept)."""
        live_hold = {"until": {"$gt": time.time()}}
        with contextlib.suppress(Exception):
            await self.slots.delete_many({"at": {"$lt": older_than}, "$nor": [live_hold]})

"""A 429's window, written down (storage/queue/pacing.py), outlives the process that met
it: the slots' cleanup keeps a window still running, and a new process holds that chat
until it ends (Outbound.restore_holds)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from pymongo import AsyncMongoClient

from bot.chat.outbound import Outbound
from storage.models import utcnow
from storage.queue.pacing import SendLedger


async def test_a_running_window_survives_the_cleanup_and_holds_a_new_process(
    mongodb_uri: str,
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    try:
        ledger = SendLedger(client.get_default_database())
        long_ago = utcnow() - timedelta(minutes=20)
        now = time.time()
        await ledger.slots.insert_many(
            [
                {"_id": "hold:42", "until": now + 3600, "at": long_ago},  # a long ban
                {"_id": "hold:-1001", "until": now - 5, "at": long_ago},  # over
                {"_id": "42:1.100:123", "at": long_ago},  # a pacing slot
            ]
        )
        await ledger.forget(utcnow() - timedelta(minutes=10))
        left = {doc["_id"] async for doc in ledger.slots.find({})}
        assert left == {"hold:42"}
        assert 3500 < (await ledger.holds())["42"] <= 3600

        outbound = Outbound()
        outbound.holds = ledger
        assert outbound.free_now(42)
        await outbound.restore_holds()
        assert not outbound.free_now(42) and outbound.free_now(43)
    finally:
        await client.close()

"""A worker's claim loops survive what goes wrong around them: a stage whose lease another
worker took over, and a work entry that disagrees with its link."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from typing import Any

from bot.pipeline.worker import Kind
from storage.models import LinkRecord, utcnow
from tests.harness import BotHarness


async def test_a_slot_goes_on_after_its_lease_is_taken_over(harness_factory: Any) -> None:
    """One takeover must not cost a worker a browser slot for good."""
    bot: BotHarness = await harness_factory(capture_concurrency="1")
    opened = bot.pages.hits.get("/slow", 0)  # the page server is shared by the session
    stuck = bot.send(71, bot.pages.url("/slow"))  # never answers (the shared capturer waits 20 s)
    await bot.api.wait_until(lambda: bot.pages.hits.get("/slow", 0) > opened, timeout=20)
    # The page may open while its link is queued (bot/pipeline/ahead.py): wait for its lease.
    record = await _leased(bot, 71)
    # What another worker does when it takes a lease over: the next lease number. The
    # renewal (every 5 s) finds the lease no longer ours and stops this copy.
    await bot.store.queue.leases.update_one({"_id": record.id}, {"$inc": {"lease": 1}})
    after = bot.send(72, bot.pages.url("/article/after-takeover"))
    assert await bot.finished(after, timeout=40) == "👌"  # the one capture slot took it
    assert bot.photos_for(stuck) == []


async def _leased(bot: BotHarness, owner_id: int) -> LinkRecord:
    """The user's one link, once a worker holds its lease."""
    async with asyncio.timeout(20):
        while True:
            records = await bot.records(owner_id)
            if records and await bot.store.queue.leases.find_one({"_id": records[0].id}):
                return records[0]
            await asyncio.sleep(0.02)


async def test_a_work_entry_left_by_a_half_written_update_is_cleared(bot: BotHarness) -> None:
    """The database went away between writing a link `done` and deleting its work entry:
    the entry still says `captured`. It is claimed once, found finished, and dropped,
    not claimed again and again (once, 12 806 claims in two minutes)."""
    sent = bot.send(81, bot.pages.url("/article/half-written"))
    assert await bot.finished(sent) == "👌"
    [record] = await bot.records(81)
    entry = {"owner_id": 81, "status": "captured", "updated_at": utcnow(), "prio": 0}
    await bot.store.work.insert_one({"_id": record.id, **entry, "turn": 1.0})
    bot.services.wake_workers()
    for _ in range(100):
        if await bot.store.work.find_one({"_id": record.id}) is None:
            break
        await asyncio.sleep(0.1)
    assert await bot.store.work.find_one({"_id": record.id}) is None
    lease = await bot.store.queue.leases.find_one({"_id": record.id})
    assert lease is not None and lease["lease"] <= 3, lease
    assert len(bot.photos_for(sent)) == 1


async def test_an_idle_bot_asks_once_a_poll_for_each_kind_of_work(bot: BotHarness) -> None:
    """An idle bot looks for unannounced work (another process's, a lapsed lease, a retry
    come due) with one claim query a poll for each kind of slot, not one for each of its
    ten slots: those queries were most of what an idle bot cost its database."""
    assert bot.services.worker is not None
    queue = bot.services.store.queue
    real = queue.claim
    asked: list[str] = []

    async def claim(worker: str, statuses: Iterable[str], *args: Any, **kwargs: Any) -> Any:
        asked.append("capture" if "pending" in set(statuses) else "delivery")
        return await real(worker, statuses, *args, **kwargs)

    queue.claim = claim  # type: ignore[method-assign,assignment]
    try:
        await bot.api.wait_until(lambda: asked.count("capture") >= 6, timeout=30)
    finally:
        queue.claim = real  # type: ignore[method-assign]
    assert asked.count("delivery") <= asked.count("capture") + 2, asked
    # Still found by the poll: a link recorded without a wake (as another process's is).
    services = bot.services
    services.wake_workers = lambda **_: None  # type: ignore[method-assign]
    sent = bot.send(91, bot.pages.url("/article/unannounced"))
    assert await bot.finished(sent) == "👌"


async def test_a_new_link_sets_one_capture_slot_looking(bot: BotHarness) -> None:
    """A message with a new link sets one capture slot looking, once: handed to an idle
    one (claimed by its id), or else one woken. Each wake sets one more idle slot
    querying, and two for the same link raced to claim it (one claim lost, two more
    queries) on the way to every photo, ~15 ms of a 185 ms link → photo. A link saved
    before wakes a delivery slot too (its stored screenshot may be owed)."""
    worker = bot.services.worker
    assert worker is not None
    wake, hand = worker.wake, worker.hand
    woken: list[str] = []

    def waking(kind: Kind | None = None) -> None:
        if sys._getframe(1).f_code.co_name == "wake_workers":  # the handler's, not a slot's
            woken.append(kind.value if kind is not None else "any")
        wake(kind)

    def handing(record: LinkRecord, turn: float) -> bool:
        handed = hand(record, turn)
        woken.append("handed" if handed else "not handed")
        return handed

    worker.wake = waking  # type: ignore[method-assign]
    worker.hand = handing  # type: ignore[method-assign]
    try:
        sent = bot.send(95, bot.pages.url("/article/woken-once"))
        assert await bot.finished(sent) == "👌"
        assert woken == ["handed"]  # the bot was idle
        woken.clear()
        again = bot.send(95, bot.pages.url("/article/woken-once"))
        assert await bot.finished(again) == "👌"
        assert woken == ["capture", "delivery"]
    finally:
        worker.wake, worker.hand = wake, hand  # type: ignore[method-assign]

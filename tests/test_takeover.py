"""A stage whose lease another worker took over stops in this worker; the slot that ran
it goes on claiming (one takeover must not cost a worker a browser slot for good)."""

from __future__ import annotations

from typing import Any

from tests.harness import BotHarness


async def test_a_slot_goes_on_after_its_lease_is_taken_over(harness_factory: Any) -> None:
    bot: BotHarness = await harness_factory(capture_concurrency="1")
    opened = bot.pages.hits.get("/slow", 0)  # the page server is shared by the session
    stuck = bot.send(71, bot.pages.url("/slow"))  # never answers; CAPTURE_TIMEOUT is 8 s
    await bot.api.wait_until(lambda: bot.pages.hits.get("/slow", 0) > opened, timeout=20)
    [record] = await bot.records(71)
    # What another worker does when it takes a lease over: the next lease number. The
    # renewal (every 5 s) finds the lease no longer ours and stops this copy.
    await bot.store.queue.leases.update_one({"_id": record.id}, {"$inc": {"lease": 1}})
    after = bot.send(72, bot.pages.url("/article/after-takeover"))
    assert await bot.finished(after, timeout=40) == "👌"  # the one capture slot took it
    assert bot.photos_for(stuck) == []

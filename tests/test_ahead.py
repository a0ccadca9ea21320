"""A lone link's page is opened once the link is written, while it is queued (issue 19):
the writes that queue it and its claim (15-50 ms) no longer stand before the browser's
work. The photo comes from that one visit; a head start nobody takes is let go; a link
saved before, or sent while the database is away, opens nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from bson import ObjectId

from bot.pipeline.ahead import ShotsAhead
from storage.queue.claims import Queued
from tests.harness import BotHarness


@asynccontextmanager
async def queueing_held(bot: BotHarness) -> AsyncIterator[None]:
    """Every new link is written, and its queueing waits until the block ends."""
    queue = bot.services.pipeline.store.queue
    real = queue.queue
    queued = asyncio.Event()

    async def held(*args: Any, **kwargs: Any) -> Queued:
        await queued.wait()
        return await real(*args, **kwargs)

    queue.queue = held  # type: ignore[method-assign]
    try:
        yield
    finally:
        queued.set()
        queue.queue = real  # type: ignore[method-assign]


async def _opened_while_written(bot: BotHarness, user: int, path: str) -> dict[str, Any]:
    worker = bot.services.worker
    assert worker is not None
    # Head starts are for a bot with a capture slot free (not running a stage).
    await bot.api.wait_until(lambda: worker.free_capture_slots() > 0, timeout=30)
    async with queueing_held(bot):
        sent = bot.send(user, bot.pages.url(path))
        # The page is asked for while the link is written but not yet queued.
        await bot.api.wait_until(lambda: bot.pages.hits.get(path, 0) == 1, timeout=30)
        [record] = await bot.records(user)
        assert not await bot.store.queue.queued(record.id)  # no turn in the queue yet
    return sent


async def test_a_lone_links_page_opens_while_the_link_is_written(bot: BotHarness) -> None:
    sent = await _opened_while_written(bot, 96, "/article/ahead")
    assert await bot.finished(sent) == "👌"
    assert len(bot.photos_for(sent)) == 1
    assert bot.pages.hits["/article/ahead"] == 1  # the photo came from the visit begun ahead


@pytest.mark.parametrize("pace_known", [True, False])
async def test_a_paced_link_opens_nothing_ahead(harness_factory: Any, pace_known: bool) -> None:
    """A link past its sender's pace waits its turn in the queue. When this process
    queued the sender's last link it knows the pace: the paced link's page is not opened
    ahead of its turn (the site would be asked for nothing, and earlier than the pace
    allows). When only another process knew it (here: the pace forgotten), the page
    opened meanwhile is let go at once. Either way the next user's new link gets its own
    head start (with one capture slot, a head start still held would leave it none)."""
    bot: BotHarness = await harness_factory(capture_concurrency="1", user_rate_per_minute="1")
    worker = bot.services.worker
    assert worker is not None and worker.ahead is not None
    path = f"/article/paced-ahead-{pace_known}"  # the page server is shared: a path a run
    first = bot.send(97, bot.pages.url(f"{path}-1"))
    assert await bot.finished(first) == "👌"
    if not pace_known:
        bot.services.pipeline.store.queue._paces.clear()
    started: list[ObjectId] = []
    start = worker.ahead.start

    def noted(link_id: ObjectId, *args: Any) -> bool:
        accepted = start(link_id, *args)
        if accepted:
            started.append(link_id)
        return accepted

    worker.ahead.start = noted  # type: ignore[method-assign,assignment]
    # A capture slot is free: a head start would be taken if nothing held it back.
    await bot.api.wait_until(lambda: worker.free_capture_slots() > 0, timeout=30)
    paced = bot.send(97, bot.pages.url(f"{path}-2"))
    await bot.wait_queued(97, bot.pages.url(f"{path}-2"))
    await bot.handled(paced)  # recorded, and what it holds let go
    [record] = [r for r in await bot.records(97) if r.url.endswith(f"{path}-2")]
    sent = await _opened_while_written(bot, 98, f"{path}-after")
    assert await bot.finished(sent) == "👌"
    assert bot.photos_for(paced) == []  # still waiting for its turn
    assert (record.id in started) is not pace_known
    if pace_known:
        assert f"{path}-2" not in bot.pages.hits  # its page never opened


async def test_a_link_not_handed_over_opens_its_page_again(bot: BotHarness) -> None:
    """No capture slot was idle to take the new link when it was queued: another process
    may claim it, or the queue hands it on later (a "capture again" within seconds, say).
    Its head start is let go then, and whoever claims the link opens the page afresh
    rather than taking a shot made for an earlier turn."""
    worker = bot.services.worker
    assert worker is not None
    hand = worker.hand
    worker.hand = lambda record, turn: False  # type: ignore[method-assign]
    try:
        sent = await _opened_while_written(bot, 99, "/article/not-handed")
        assert await bot.finished(sent) == "👌"
    finally:
        worker.hand = hand  # type: ignore[method-assign]
    assert bot.pages.hits["/article/not-handed"] == 2
    assert len(bot.photos_for(sent)) == 1


async def test_a_head_start_nobody_takes_ends_after_a_while() -> None:
    """A shot whose link another process claimed (or that waits for its pace) is let go
    after `keep` seconds, and then leaves room for the next."""
    cancelled = asyncio.Event()

    async def shoot(url: str, locale: str, ready: Callable[[], None]) -> Any:
        try:
            await asyncio.Event().wait()  # a page that never finishes loading
        finally:
            cancelled.set()

    ahead = ShotsAhead(shoot, keep=0.05)
    first, second = ObjectId(), ObjectId()
    assert ahead.start(first, "http://example.test/a", "en-US", room=1)
    assert not ahead.start(second, "http://example.test/b", "en-US", room=1)  # no room left
    async with asyncio.timeout(10):
        await cancelled.wait()
    assert ahead.take(first, "en-US", lambda: None) is None
    assert ahead.start(second, "http://example.test/b", "en-US", room=1)
    await ahead.close()

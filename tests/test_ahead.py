"""A lone link's page is opened while the link is being written (issue 19): the writes
that record and queue it (15-50 ms) no longer stand before the browser's work. The photo
comes from that one visit; a head start nobody takes is let go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.pipeline.ahead import ShotsAhead
from storage.models import LinkRecord
from tests.harness import BotHarness


@asynccontextmanager
async def recording_held(bot: BotHarness) -> AsyncIterator[None]:
    """Every link's first write waits until the block ends."""
    store = bot.services.pipeline.store
    real = store.add_pending
    written = asyncio.Event()

    async def held(record: LinkRecord) -> tuple[LinkRecord, bool]:
        await written.wait()
        return await real(record)

    store.add_pending = held  # type: ignore[method-assign]
    try:
        yield
    finally:
        written.set()
        store.add_pending = real  # type: ignore[method-assign]


async def _opened_while_written(bot: BotHarness, user: int, path: str) -> dict[str, Any]:
    async with recording_held(bot):
        sent = bot.send(user, bot.pages.url(path))
        # The page is asked for while the link is not yet written.
        await bot.api.wait_until(lambda: bot.pages.hits.get(path, 0) == 1, timeout=30)
        assert await bot.records(user) == []
    return sent


async def test_a_lone_links_page_opens_while_the_link_is_written(bot: BotHarness) -> None:
    sent = await _opened_while_written(bot, 96, "/article/ahead")
    assert await bot.finished(sent) == "👌"
    assert len(bot.photos_for(sent)) == 1
    assert bot.pages.hits["/article/ahead"] == 1  # the photo came from the visit begun ahead


async def test_a_link_saved_before_lets_its_head_start_go(harness_factory: Any) -> None:
    """Sent again, a saved link is answered from its stored photo; the page opened ahead
    for it is let go at once, so the next new link gets its own head start (with one
    capture slot, a head start still held would leave it none)."""
    bot: BotHarness = await harness_factory(capture_concurrency="1")
    first = bot.send(97, bot.pages.url("/article/saved-ahead"))
    assert await bot.finished(first) == "👌"
    again = bot.send(97, bot.pages.url("/article/saved-ahead"))
    assert await bot.finished(again) == "👌"
    sent = await _opened_while_written(bot, 98, "/article/after-saved-ahead")
    assert await bot.finished(sent) == "👌"
    assert bot.pages.hits["/article/after-saved-ahead"] == 1


async def test_a_head_start_nobody_takes_ends_after_a_while() -> None:
    """A shot whose link another process claimed (or that waits for its pace) is let go
    after `keep` seconds, and then leaves room for the next."""
    cancelled = asyncio.Event()

    async def shoot(url: str, locale: str) -> Any:
        try:
            await asyncio.Event().wait()  # a page that never finishes loading
        finally:
            cancelled.set()

    ahead = ShotsAhead(shoot, keep=0.05)
    assert ahead.start("http://example.test/a", "en-US", room=1)
    assert not ahead.start("http://example.test/b", "en-US", room=1)  # no room left
    async with asyncio.timeout(10):
        await cancelled.wait()
    assert ahead.take("http://example.test/a", "en-US") is None
    assert ahead.start("http://example.test/b", "en-US", room=1)
    await ahead.close()

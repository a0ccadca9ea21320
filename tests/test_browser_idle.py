"""An idle bot closes its browser (issue 19): after BROWSER_IDLE_CLOSE seconds without a
capture the worker's Chromium, its spare page, Playwright's driver and the text reader
(bot/browser/text_reader.py) go; the next link
starts them again and gets its photo, and nothing of the closed browser reaches it.

Time is the tests' own clock (`FakeClock`): the idle close is driven by advancing it,
never by sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.app import start_capturer
from bot.browser.capture import Capturer
from tests.clock import IDLE, FakeClock, closed
from tests.conftest import base_env, settings_for
from tests.fakes.pages import PageServer
from tests.harness import BotHarness


async def test_the_browser_closes_when_idle_and_the_next_link_still_gets_its_photo(
    idle_harness_factory: Callable[..., Awaitable[BotHarness]],
    idle_capturer: Capturer,
    clock: FakeClock,
) -> None:
    bot = await idle_harness_factory(BROWSER_IDLE_CLOSE=str(IDLE))
    first = bot.send(42, bot.pages.url("/remember?visit=1"))
    assert await bot.finished(first) == "👌"
    assert len(bot.photos_for(first)) == 1
    # The capture's context closes beside its photo, so its credential may outlive the
    # 👌 for a moment on a loaded machine (a fresh clone saw 2): wait for it to go,
    # leaving the spare page's, made after the capture.
    await bot.api.wait_until(lambda: idle_capturer.proxy.sessions == 1, timeout=30)
    assert idle_capturer.state.open
    assert idle_capturer.text_reader.pid is not None  # the page's text was read
    assert not await idle_capturer.close_if_idle()  # not idle long enough yet
    opened_at = idle_capturer.state.since

    await clock.advance(IDLE)
    await closed(idle_capturer)
    assert idle_capturer.state.since >= opened_at
    # The spare page went with the browser: no capture credential is left valid.
    assert idle_capturer.proxy.sessions == 0
    assert idle_capturer.text_reader.pid is None  # and the text reader with it

    second = bot.send(42, bot.pages.url("/remember?visit=2"))
    assert await bot.finished(second) == "👌"
    assert len(bot.photos_for(second)) == 1
    assert idle_capturer.state.open and idle_capturer.launches == 2
    assert idle_capturer.text_reader.started == 2
    records = await bot.records(42)
    # A fresh page in a fresh browser: no cookie or storage of the first visit.
    assert [r.title for r in records] == ["cookie-none storage-none lang-en-US"] * 2


async def test_a_capture_in_flight_keeps_the_browser_open(
    pages: PageServer, idle_capturer: Capturer, clock: FakeClock
) -> None:
    """The idle time passes while a page is still loading: that capture is not idle."""
    pending = pages.styles_pending
    shot = asyncio.create_task(idle_capturer.capture(pages.url("/blocked-css")))
    async with asyncio.timeout(30):  # the page is open, waiting for its stylesheet
        while pages.styles_pending == pending:  # noqa: ASYNC110 (the fake page server's counter)
            await asyncio.sleep(0.02)
    await clock.advance(IDLE * 2)
    assert not await idle_capturer.close_if_idle()
    snap = await shot
    assert snap.partial and snap.title == "Slow stylesheet"
    assert idle_capturer.state.open

    await clock.advance(IDLE)  # now idle since that capture ended
    await closed(idle_capturer)
    again = await idle_capturer.capture(pages.url("/remember"))
    assert again.title == "cookie-none storage-none lang-en-US"
    assert idle_capturer.launches == 2


async def test_a_zero_idle_close_never_closes(pages: PageServer, clock: FakeClock) -> None:
    env = base_env("http://127.0.0.1:1", "mongodb://127.0.0.1:1/x", BROWSER_IDLE_CLOSE="0")
    capturer = await start_capturer(settings_for(env), clock=clock)
    try:
        await capturer.capture(pages.url("/remember"))
        await clock.advance(10 * IDLE)
        assert not await capturer.close_if_idle()
        assert capturer.state.open
    finally:
        await capturer.stop()

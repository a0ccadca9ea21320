"""A clock the tests move by hand, and a capturer that closes its browser by it (issue 19)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot.app import start_capturer
from bot.browser.capture import Capturer
from tests.conftest import base_env, harnesses, settings_for
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.pages import PageServer
from tests.harness import BotHarness

IDLE = 300.0  # BROWSER_IDLE_CLOSE of `idle_capturer`


class FakeClock:
    """Seconds that move only when the test says so; sleepers wake when they are due."""

    def __init__(self) -> None:
        self.t = 1_000.0  # not 0: nothing may assume uptime
        self._moved = asyncio.Condition()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        until = self.t + seconds
        async with self._moved:
            await self._moved.wait_for(lambda: self.t >= until)

    async def advance(self, seconds: float) -> None:
        async with self._moved:
            self.t += seconds
            self._moved.notify_all()


# Imported by the tests that use them under these names (`clock`, `idle_capturer`,
# `idle_harness_factory`).
@pytest.fixture(name="clock")
def clock_fixture() -> FakeClock:
    return FakeClock()


@pytest.fixture(name="idle_capturer")
async def idle_capturer_fixture(clock: FakeClock) -> AsyncIterator[Capturer]:
    """A capturer of its own (the session's shared one must stay open for the others)."""
    env = base_env("http://127.0.0.1:1", "mongodb://127.0.0.1:1/x")
    env.update(BROWSER_IDLE_CLOSE=str(IDLE), CAPTURE_BUDGET="3")
    capturer = await start_capturer(settings_for(env), clock=clock)
    yield capturer
    await capturer.stop()


@pytest.fixture(name="idle_harness_factory")
async def idle_harness_factory_fixture(
    botapi: FakeBotAPI, mongodb_uri: str, pages: PageServer, idle_capturer: Capturer
) -> AsyncIterator[Callable[..., Awaitable[BotHarness]]]:
    """`harness_factory` whose bots capture with `idle_capturer`."""
    async with harnesses(botapi, mongodb_uri, pages, idle_capturer) as make:
        yield make


async def closed(capturer: Capturer) -> None:
    """The idle close runs in the capturer's own task: wait for it to say so."""
    async with asyncio.timeout(30):
        await capturer.wait_state(open=False)

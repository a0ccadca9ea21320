"""A clock the tests move by hand (the capturer that closes its browser by it, issue 19:
`idle_capturer` in conftest)."""

from __future__ import annotations

import asyncio

from bot.browser.capture import Capturer

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


async def closed(capturer: Capturer) -> None:
    """The idle close runs in the capturer's own task: wait for it to say so."""
    async with asyncio.timeout(30):
        await capturer.wait_state(open=False)

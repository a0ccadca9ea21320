"""When the browser has had no work for BROWSER_IDLE_CLOSE seconds, it is closed.

A Chromium with its spare page holds some 400 MiB while it waits; a bot that sits idle
most of the day should not. The capturer counts the visits in flight and notes when the
last one ended; `IdleWatch.run` wakes when that is `idle_close` seconds ago and asks the
capturer to close (it checks again under its own lock: a capture may have just begun).
Time comes from a `Clock`, so tests drive it without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

log = logging.getLogger(__name__)

MIN_WAIT = 1.0  # seconds: a watch never spins, whatever the clock says


class Clock(Protocol):
    """Monotonic seconds, and a sleep measured in them."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The event loop's own clock: what the bot uses."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class BrowserState:
    """Whether the browser is open, and since when (wall clock, for /stats)."""

    open: bool
    since: datetime


class IdleWatch:
    """Visits in flight and the end of the last one; `idle_close` 0 never closes."""

    def __init__(self, idle_close: float, clock: Clock) -> None:
        self.idle_close = idle_close
        self.clock = clock
        self.busy = 0
        self._last_used = clock.now()
        self._used = asyncio.Event()  # a visit began since the watch last closed

    def begin(self) -> None:
        self.busy += 1
        self._used.set()

    def end(self) -> None:
        self.busy -= 1
        self._last_used = self.clock.now()

    def due(self) -> bool:
        """No visit in flight, and none for `idle_close` seconds (never with 0)."""
        return self.idle_close > 0 and self.busy == 0 and self._remaining() <= 0

    def _remaining(self) -> float:
        return self.idle_close - (self.clock.now() - self._last_used)

    async def run(self, close: Callable[[], Awaitable[bool]]) -> None:
        """Sleep until the idle time may be up, then `close()` (True: it closed); once
        closed, nothing more until a visit begins. For ever: cancel it."""
        while True:
            wait = self._remaining() if self.busy == 0 else self.idle_close
            await self.clock.sleep(max(wait, MIN_WAIT))
            if not self.due():
                continue
            self._used.clear()  # before closing: a visit that begins meanwhile is seen
            try:
                closed = await close()
            except Exception:  # a failed close is tried again at the next wake
                log.warning("closing the idle browser failed", exc_info=True)
                continue
            if closed:
                await self._used.wait()

"""How often the link-rot check may ask one host: one request at a time, each sent at
least `gap` seconds after the host answered the previous one.

Spacing from the previous *answer* rather than from the previous start is what makes
the promise hold as the host sees it: the host received the earlier request before it
answered, so the next one reaches it more than `gap` later however long a connection
took to set up. (A token bucket such as aiolimiter spaces the starts: one slow
connection and one fast one can reach a host closer together than the bucket's rate.)
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

HOST_GAP = 1.0


class HostPacer:
    def __init__(
        self,
        gap: float = HOST_GAP,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.gap = gap
        self._clock = clock
        self._sleep = sleep
        self._locks: dict[str, asyncio.Lock] = {}
        self._answered: dict[str, float] = {}

    def wait(self, host: str) -> float:
        """Seconds until `host` may be asked again (0: now), if nobody else asks first."""
        return max(0.0, self._answered.get(host, -math.inf) + self.gap - self._clock())

    @asynccontextmanager
    async def turn(self, host: str) -> AsyncIterator[None]:
        """Hold `host` for one request: waits for the host's gap, and starts the next gap
        when the request has ended (answered, failed or given up)."""
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            wait = self._answered.get(host, -math.inf) + self.gap - self._clock()
            if wait > 0:
                await self._sleep(wait)
            try:
                yield
            finally:
                self._answered[host] = self._clock()

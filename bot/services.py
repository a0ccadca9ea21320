"""Shared resources built once at start-up, and the one typed way handlers reach them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiolimiter import AsyncLimiter
from cachetools import TTLCache
from telegram.ext import CallbackContext

from bot.capture import Capturer
from bot.config import Settings
from bot.outbound import Outbound
from bot.snapshots import SnapshotService
from bot.summarize import Summarizer
from storage.repository import LinkStore

SERVICES_KEY = "linksnap.services"
REFUSAL_EVERY = 600.0
log = logging.getLogger(__name__)


def clock() -> float:
    """Monotonic seconds, looked up at each call (so a test can start it near 0)."""
    return time.monotonic()


class UserLimits:
    """Per-user message pace: a burst waits behind its own limit, never other users'.

    Both maps expire, so they stay bounded however many users come and go.
    """

    def __init__(self, per_minute: int, *, max_users: int = 50_000) -> None:
        self.per_minute = per_minute
        # A limiter refills in a minute; an idle one past that holds nothing worth keeping.
        self._limiters: TTLCache[int, AsyncLimiter] = TTLCache(max_users, ttl=120, timer=clock)
        self._warned: TTLCache[int, bool] = TTLCache(max_users, ttl=60, timer=clock)

    def limiter(self, user_id: int) -> AsyncLimiter:
        limiter = self._limiters.get(user_id) or AsyncLimiter(self.per_minute, 60)
        self._limiters[user_id] = limiter  # re-set: the entry lives while the user is active
        return limiter

    def should_warn(self, user_id: int) -> bool:
        """Tell a fast sender once a minute, not once a message."""
        if user_id in self._warned:
            return False
        self._warned[user_id] = True
        return True


@dataclass
class Services:
    settings: Settings
    store: LinkStore
    capturer: Capturer
    summarizer: Summarizer | None
    snapshots: SnapshotService
    limits: UserLimits
    outbound: Outbound
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Strangers told "private bot" lately; they are told again once their entry expires.
    refused: TTLCache[int, bool] = field(
        default_factory=lambda: TTLCache(50_000, ttl=REFUSAL_EVERY, timer=clock)
    )

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Track fire-and-forget work so it is neither collected nor lost at shutdown."""
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def drain(self, grace: float) -> None:
        """Let work in flight finish for up to `grace` seconds, then cancel the rest
        (its links stay recorded as unfinished, for the next start)."""
        self.stopping.set()
        if self.background:
            _, late = await asyncio.wait(set(self.background), timeout=grace)
            for task in late:
                task.cancel()
            if late:
                log.info("stopping: %d task(s) left for the next start", len(late))
                await asyncio.wait(late, timeout=5)


def get_services(context: CallbackContext[Any, Any, Any, Any]) -> Services:
    """The Services of this Application (set in post_init)."""
    services = context.bot_data.get(SERVICES_KEY)
    if not isinstance(services, Services):
        raise RuntimeError("services are not initialised; post_init has not run")
    return services

"""Shared resources built once at start-up, and the one typed way handlers reach them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.ext import CallbackContext

from bot.capture import Capturer
from bot.config import Settings
from bot.snapshots import SnapshotService
from bot.summarize import Summarizer
from storage.repository import LinkStore

SERVICES_KEY = "linksnap.services"


@dataclass
class UserLimits:
    """Per-user message pace: a burst waits behind its own limit, never other users'."""

    per_minute: int
    _limiters: dict[int, AsyncLimiter] = field(default_factory=dict)
    _last_warned: dict[int, float] = field(default_factory=dict)

    def limiter(self, user_id: int) -> AsyncLimiter:
        return self._limiters.setdefault(user_id, AsyncLimiter(self.per_minute, 60))

    def should_warn(self, user_id: int) -> bool:
        """Tell a fast sender once a minute, not once a message."""
        now = time.monotonic()
        if now - self._last_warned.get(user_id, 0.0) < 60:
            return False
        self._last_warned[user_id] = now
        return True


@dataclass
class Services:
    settings: Settings
    store: LinkStore
    capturer: Capturer
    summarizer: Summarizer | None
    snapshots: SnapshotService
    limits: UserLimits
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Keep a reference to fire-and-forget work so it is neither collected nor lost."""
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task


def get_services(context: CallbackContext[Any, Any, Any, Any]) -> Services:
    """The Services of this Application (set in post_init)."""
    services = context.bot_data.get(SERVICES_KEY)
    if not isinstance(services, Services):
        raise RuntimeError("services are not initialised; post_init has not run")
    return services

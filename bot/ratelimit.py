"""Outgoing Bot API pacing: Telegram's limits respected up front, RetryAfter honoured per chat.

PTB's AIORateLimiter treats `rate_limit_args=0` as "use the default", so a caller that
wants to handle RetryAfter itself (the streaming editor, which would rather send the
latest text than a stale one) cannot opt out; and after its last retry it stops
holding the chat back. This limiter keeps each chat blocked until its retry_after has
passed, whoever made the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

JSON = bool | dict[str, Any] | list[dict[str, Any]]
# ExtBot drops a falsy rate_limit_args before it reaches the limiter, so "no retries" is -1.
NO_RETRY = -1


class ChatRateLimiter(BaseRateLimiter[int]):
    """30 calls/s overall, 20/min per group, and per-chat RetryAfter blocks.

    `rate_limit_args` is the number of retries after a RetryAfter (default `max_retries`;
    `NO_RETRY` to get the RetryAfter at once).
    """

    def __init__(self, max_retries: int = 3, group_per_minute: float = 20) -> None:
        self._max_retries = max_retries
        self._overall = AsyncLimiter(30, 1)
        self._group_rate = group_per_minute
        self._groups: dict[int | str, AsyncLimiter] = {}
        self._blocked_until: dict[int | str | None, float] = {}

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    def blocked_for(self, chat_id: int | str | None) -> float:
        """Seconds the chat (or, for None, every chat) must still wait."""
        now = time.monotonic()
        until = max(self._blocked_until.get(chat_id, 0.0), self._blocked_until.get(None, 0.0))
        return max(0.0, until - now)

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSON]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> JSON:
        chat_id = _chat_key(data.get("chat_id"))
        retries = self._max_retries if rate_limit_args is None else max(0, rate_limit_args)
        for attempt in range(retries + 1):
            await self._wait_turn(chat_id, endpoint)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                seconds = retry_seconds(exc)
                self._blocked_until[chat_id] = time.monotonic() + seconds + 0.05
                log.info("flood control: %s waits %.1f s", endpoint, seconds)
                if attempt == retries:
                    raise
        raise AssertionError("unreachable")

    async def _wait_turn(self, chat_id: int | str | None, endpoint: str) -> None:
        # A deadline, not an event: a later RetryAfter may extend it while we sleep.
        while (wait := self.blocked_for(chat_id)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        if endpoint in {"getUpdates", "getMe", "setMyCommands", "deleteWebhook", "setWebhook"}:
            return
        if (isinstance(chat_id, int) and chat_id < 0) or isinstance(chat_id, str):
            limiter = self._groups.setdefault(chat_id, AsyncLimiter(self._group_rate, 60))
            async with limiter:
                pass
        async with self._overall:
            pass


def _chat_key(raw: object) -> int | str | None:
    if raw is None:
        return None
    try:
        return int(str(raw))
    except ValueError:
        return str(raw)


def retry_seconds(exc: RetryAfter) -> float:
    """RetryAfter's delay in seconds, whether PTB gives an int or a timedelta."""
    delay = exc.retry_after
    return float(delay if isinstance(delay, int | float) else delay.total_seconds())

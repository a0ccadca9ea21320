"""Updates of one user are admitted in the order Telegram numbered them.

Updates are handled concurrently (a capture must not hold up another user), but each
update first passes a database check (handlers/dedupe.py) whose latency varies, so a
later update of the same user could overtake an earlier one: iOS shares a typed comment
as its own message just before the URL, and the link must find the comment already
there. Admission (the blocking handler groups, up to where the long handlers are spawned
as tasks) is therefore serialised per user, for a few seconds at most; different users
never wait for each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

from bot.chat.receipts import Receipts
from bot.keyed_lock import KeyedLocks

HOLD_AT_MOST = 3.0  # seconds an update holds the next one of the same user


class PerUserOrder(BaseUpdateProcessor):
    """Concurrent across users, in order within one user (or chat, when there is no user)."""

    def __init__(self, receipts: Receipts | None = None, max_concurrent_updates: int = 256) -> None:
        super().__init__(max_concurrent_updates)
        self._locks = KeyedLocks()
        self._receipts = receipts or Receipts()

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        try:
            await self._in_order(update, coroutine)
        finally:
            if isinstance(update, Update):
                self._receipts.handled(update.update_id)

    async def _in_order(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = _key(update)
        if key is None:
            await coroutine
            return
        task: asyncio.Future[Any] | None = None
        with self._locks.using(key) as lock:
            try:
                async with lock:
                    # The next update of this user waits for this one, but not for long:
                    # a slow handler (a button, /find while the database is away) must
                    # not hold the user's later messages.
                    task = asyncio.ensure_future(coroutine)
                    await asyncio.wait({task}, timeout=HOLD_AT_MOST)
            except asyncio.CancelledError:
                if task is not None:
                    task.cancel()
                raise
            finally:
                if task is None and inspect.iscoroutine(coroutine):
                    coroutine.close()  # never started: stopped while waiting its turn
        await task

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


def _key(update: object) -> int | None:
    if not isinstance(update, Update):
        return None
    if update.effective_user is not None:
        return update.effective_user.id
    return update.effective_chat.id if update.effective_chat is not None else None


class InOrder:
    """Per-key sections entered in the order they were asked for (asyncio's locks are
    FIFO). A handler that asks before its first await enters in its update's order. A
    section held longer than `hold` seconds (a database outage) no longer holds the next:
    like PerUserOrder, the order is kept for moments, never at the cost of waiting."""

    def __init__(self, hold: float = HOLD_AT_MOST) -> None:
        self.hold = hold
        self._locks = KeyedLocks()

    @contextlib.asynccontextmanager
    async def of(self, key: int) -> AsyncIterator[None]:
        with self._locks.using(key) as lock:
            held = False
            try:
                with contextlib.suppress(TimeoutError):
                    held = await asyncio.wait_for(lock.acquire(), self.hold)
                yield
            finally:
                if held:
                    lock.release()

"""Database calls that wait out an outage instead of losing work the user was promised.

A link that was acknowledged must not be lost because the database went away for a
while: the pipeline's reads and writes retry with backoff while MongoDB is unreachable,
and give up (raising) only after `patience` seconds. The start waits out a refusal the
database takes back by itself (`past_hiccups`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)
from tenacity.stop import stop_base

log = logging.getLogger(__name__)

T = TypeVar("T")


class _UntilSet(stop_base):
    """Stop retrying once the bot is stopping."""

    def __init__(self, event: asyncio.Event | None) -> None:
        self._event = event

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._event is not None and self._event.is_set()


PATIENCE = 600.0


async def durably(
    call: Callable[[], Awaitable[T]],
    *,
    on_wait: Callable[[], Awaitable[None]] | None = None,
    patience: float = PATIENCE,
    stopping: asyncio.Event | None = None,
) -> T:
    """`await call()`, retried while the database is unreachable; `on_wait` runs once,
    at the first failure (to tell the user). Gives up once `stopping` is set: what was
    recorded stays for the next start."""
    told = False
    lost = False  # an attempt met the outage: its writes may have been half done

    def worth_retrying(exc: BaseException) -> bool:
        # After a lost connection, a retry can meet the half of its own write that did
        # land (a unique key already there); the call is written to converge on retry.
        nonlocal lost
        if isinstance(exc, ConnectionFailure):
            lost = True
            return True
        return lost and isinstance(exc, DuplicateKeyError)

    async def before_sleep(state: RetryCallState) -> None:
        nonlocal told
        if not told:
            told = True
            log.warning("database not answering; waiting for it (up to %.0f s)", patience)
            if on_wait is not None:
                await on_wait()

    async for attempt in AsyncRetrying(
        retry=retry_if_exception(worth_retrying),
        wait=wait_exponential(multiplier=0.5, max=10),
        stop=stop_after_delay(patience) | _UntilSet(stopping),
        before_sleep=before_sleep,
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity re-raises the last error")


# FerretDB's SQLite answers "database is locked" (InternalError, code 1) while a new
# database's file is being set up; seen once at a bot's first start in the test suite.
INTERNAL_ERROR = 1
START_PATIENCE = 30.0


def transient(exc: BaseException) -> bool:
    """A refusal the database takes back by itself in a moment (not a wrong password or
    a malformed command, which no wait mends)."""
    if not isinstance(exc, OperationFailure):
        return False
    labels = ("RetryableWriteError", "TransientTransactionError")
    return exc.code == INTERNAL_ERROR or any(exc.has_error_label(label) for label in labels)


async def past_hiccups(call: Callable[[], Awaitable[T]], patience: float = START_PATIENCE) -> T:
    """`await call()`, again after a short wait while the database refuses it for a
    moment (`transient`); any other error, or the same one past `patience`, is raised."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(transient),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(patience),
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity re-raises the last error")

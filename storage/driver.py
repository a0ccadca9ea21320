"""One mend to PyMongo's async driver, for Python before 3.12.

PyMongo's server selection waits for a topology change with `asyncio.wait_for` around a
condition's `wait()` (`pymongo.lock._async_cond_wait`). Before Python 3.12 `wait_for` runs
that wait in a task of its own; a caller cancelled while that task takes the lock back
leaves without it, and the task then holds the client's topology lock for good: every
later operation of the client waits for ever (seen once in the test suite, during a
database outage; `tests/test_driver_locks.py`). `asyncio.timeout` (3.11+) keeps the wait
in the caller's task, where `Condition.wait` takes the lock back before the cancellation
goes on, as `wait_for` itself does from Python 3.12.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

import pymongo.lock

T = TypeVar("T")


async def _wait_for(aw: Awaitable[T], timeout: float | None) -> T:  # noqa: ASYNC109  (wait_for's own signature)
    async with asyncio.timeout(timeout):
        return await aw


if sys.version_info < (3, 12):
    pymongo.lock.wait_for = _wait_for  # type: ignore[assignment]

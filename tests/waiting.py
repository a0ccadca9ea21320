"""Waiting for a positive sign in tests: poll a predicate until it holds, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(predicate: Callable[[], bool], within: float, poll: float = 0.005) -> None:
    """Return once `predicate()` holds; fail the test if it does not within `within` s
    (the bound only turns a hang into a failure; no test waits for a speed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, f"the expected state did not come within {within} s"
        await asyncio.sleep(poll)

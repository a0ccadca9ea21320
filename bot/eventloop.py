"""The event loop everything runs on: uvloop's (libuv), not asyncio's own.

A link's way to its photo is hundreds of small awaits (database commands, the browser's
protocol, HTTP to Telegram); uvloop spends less of the process's CPU on each of them
(docs/BENCHMARKS.md, "uvloop"). The tests and the benches run on the same loop, so what
they measure and check is what runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def new_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on the loop above."""
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(main)

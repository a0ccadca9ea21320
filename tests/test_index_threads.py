"""SQLite calls run in worker threads (storage/index/rows.py `in_thread`); a cancel must
never let the caller go on (and close the connection) while SQLite still runs the call:
that crashed the whole process with SIGSEGV during a rebuild cancelled at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from storage.index.rows import in_thread


async def test_a_call_cancelled_twice_still_ends_before_its_caller() -> None:
    order: list[str] = []
    started, release = threading.Event(), threading.Event()

    def sqlite_call() -> int:
        started.set()
        release.wait(30)
        order.append("call ended")
        return 1

    task = asyncio.create_task(in_thread(sqlite_call))
    task.add_done_callback(lambda _: order.append("caller went on"))
    await asyncio.to_thread(started.wait, 30)
    # A gather cancelled, then each of its tasks cancelled again (rebuild.py `_Passes.run`).
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()
    for _ in range(20):
        await asyncio.sleep(0)
    release.set()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert order == ["call ended", "caller went on"]
    assert task.cancelled()

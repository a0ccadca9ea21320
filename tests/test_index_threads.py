"""The index's SQLite file under concurrency: calls run in worker threads (storage/index/rows.py `in_thread`); a cancel must
never let the caller go on (and close the connection) while SQLite still runs the call:
that crashed the whole process with SIGSEGV during a rebuild cancelled at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

import pytest

from storage.index.catalog import Catalog
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


def test_two_processes_upgrading_one_file_at_once_keep_what_the_first_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes open an index file of an older layout at once. The first drops it,
    makes the new one and starts using it; the second, which looked at the layout before
    that, must not drop it again under the first."""
    path = tmp_path / "old.sqlite"
    old = Catalog(path)
    old.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', 'older')")
    old.close()
    real = Catalog._schema_found
    looks: list[str | None] = []

    def first_looks_then_the_other_goes(self: Catalog) -> str | None:
        found = real(self)
        looks.append(found)
        if len(looks) == 1:  # the first process looked; the other one now opens and works
            other = Catalog(path)
            other.begin()
            other.reset("epoch-1", 7, "n7")
            other.commit()
            other.close()
        return found

    monkeypatch.setattr(Catalog, "_schema_found", first_looks_then_the_other_goes)
    first = Catalog(path)
    try:
        assert looks[0] == "older"  # it did see the old layout before the other went
        assert first.state("epoch-1") == (7, "n7")
    finally:
        first.close()

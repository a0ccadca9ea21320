"""A task cancelled while PyMongo waits for a server leaves the client usable.

PyMongo's async server selection waits on a condition with `asyncio.wait_for`
(`pymongo.lock._async_cond_wait`). Before Python 3.12, `wait_for` runs the wait in a task
of its own; when the waiting task is cancelled just as the lock is handed back, it leaves
without the lock ("Lock is not acquired"), and the inner task takes the lock later and
never gives it back: every later operation of that client waits for ever. Seen once in a
fresh-clone run, in `test_database_gone_during_a_burst_loses_nothing`: the bot's slots
died one after another and the burst never finished. `storage/driver.py` mends it.
"""

from __future__ import annotations

import asyncio

import pymongo.lock
from pymongo._asyncio_lock import Condition, Lock

import storage.driver  # noqa: F401  (the mend, as the store applies it)
from tests.waiting import until


async def test_a_cancelled_server_wait_leaves_the_lock_free() -> None:
    lock = Lock()
    cond = Condition(lock)

    async def selecting() -> None:  # as `Topology._select_servers_loop` waits
        async with lock:
            await pymongo.lock._async_cond_wait(cond, 0.01)

    waiter = asyncio.create_task(selecting())
    await until(lambda: len(cond._waiters) == 1, 10, poll=0.001)  # waiting, the lock let go
    await lock.acquire()  # someone else takes the lock (a topology update)
    # Its wait timed out; taking the lock back now waits for us.
    await until(lambda: lock._waiters is not None and len(lock._waiters) == 1, 10, poll=0.001)
    waiter.cancel()  # the slot is stopped...
    lock.release()  # ...just as the lock is handed back
    done, _ = await asyncio.wait([waiter], timeout=10)
    assert waiter in done
    assert waiter.cancelled(), waiter.exception()  # not "Lock is not acquired"
    # The next operation gets the lock.
    await asyncio.wait_for(lock.acquire(), 10)
    lock.release()
    assert not lock.locked()

"""One asyncio lock per key (a user, a link, a link's file), kept only while someone holds
or waits for it, so the map is bounded by what is in flight, not by the keys ever seen:
the second of two presses of one button waits for the first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable, Iterator
from contextlib import asynccontextmanager, contextmanager


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}  # lock, holders + waiters

    @contextmanager
    def using(self, key: Hashable) -> Iterator[asyncio.Lock]:
        """The key's lock, counted as in use (held or waited for) inside the block; how
        it is taken is the caller's (PerUserOrder and InOrder take it with a time limit)."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            yield lock
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        with self.using(key) as lock:
            async with lock:
                yield

    def __len__(self) -> int:
        return len(self._locks)

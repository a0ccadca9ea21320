"""What the index's helpers (rebuild.py, heal.py, upkeep.py) see of the process's index
(storage/index/search.py `IndexListing`): they are driven by it, so they know it only
through this, and the imports run one way."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bson import ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo.asynchronous.collection import AsyncCollection

from storage.index.catalog import Catalog
from storage.index.journal import Change, Journal
from storage.index.rows import Wait
from storage.index.shelves import Shelves

T = TypeVar("T")


class IndexView(Protocol):
    journal: Journal
    shelves: Shelves
    links_raw: AsyncCollection[RawBSONDocument]
    texts: AsyncCollection[dict[str, Any]]
    path: Path | str
    clock: Callable[[], float]
    lock: asyncio.Lock  # the one connection's: one user at a time
    rebuilding: set[int]  # buckets being rebuilt from the collections now
    pinned: int | None  # the oldest entry a rebuild under way still needs

    async def open(self) -> Catalog: ...

    async def epoch(self) -> str: ...

    async def locked(self, fn: Callable[[Catalog], T]) -> T: ...

    async def sync(self) -> None: ...

    async def holds(self) -> set[int] | None: ...

    def fill(self) -> None: ...

    async def checkpoint(self) -> None: ...

    async def word_all(self) -> None: ...

    async def catch_up(
        self,
        catalog: Catalog,
        buckets: set[int],
        changes: list[Change],
        waits: dict[ObjectId, Wait],
        position: int,
    ) -> None: ...

"""What lists a user's links: one small interface, two implementations.

`/find`, `/tags`, paging, inline results, exports, /stats, the web pages and the link-rot
order all read through a `Listing`:

- `storage.index.search.IndexListing`: the derived SQLite accelerator, for FerretDB v1, which
  filters and sorts in Go after reading every document (see docs/BENCHMARKS.md). Kept
  current from the change journal, healed from the collections, restored from shelves.
- `storage.index.native.NativeListing`: MongoDB's own indexes (multikey `owner_id`+`tags`+
  `created_at`, `owner_id`+`terms`), for a real MongoDB: nothing derived, nothing kept.

`choose` picks one from `buildInfo` at start (FerretDB names itself there).
Every call is scoped by `owner_id` except `due_for_check`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

Doc = dict[str, Any]


class ListingKind(StrEnum):
    AUTO = "auto"  # from buildInfo: FerretDB → index, anything else → native
    INDEX = "index"
    NATIVE = "native"


@dataclass(frozen=True)
class After:
    """Where an owner's newest-first walk stopped: the last (created_at, _id) returned."""

    created_at: datetime
    id: ObjectId


@dataclass(frozen=True)
class Found:
    """One page of listing documents (every field of a link but its page text) and how
    many match in all."""

    total: int
    docs: list[Doc]


class Listing(Protocol):
    async def find(
        self, owner_id: int, tags: Sequence[str], terms: Sequence[str], offset: int, limit: int
    ) -> Found:
        """The owner's links carrying every tag and every term, newest first."""
        ...

    async def tag_counts(
        self, owner_id: int, limit: int, *, stale_up_to: float = 0.0
    ) -> list[tuple[str, int]]:
        """(tag, links carrying it), most used first, then by name. `stale_up_to`: an
        answer as of a catch-up with the writes at most that many seconds ago will do."""
        ...

    async def owner_page(self, owner_id: int, after: After | None, limit: int) -> list[Doc]:
        """The owner's links after `after`, newest first: an index range however deep."""
        ...

    async def owner_counts(self, owner_id: int) -> tuple[int, int]:
        """(links, distinct tags) of the owner."""
        ...

    async def due_for_check(
        self, statuses: Sequence[str], checked_before: datetime, limit: int
    ) -> list[ObjectId]:
        """Links in `statuses` never checked (newest first, so a fresh import's latest
        links lead), then those checked before `checked_before`, oldest check first."""
        ...

    async def gone(self, owner_id: int, offset: int, limit: int) -> Found:
        """The owner's links whose last link-rot check found them gone (`alive` False),
        newest first."""
        ...

    async def written(self, seq: int, docs: list[Doc], terms: list[list[str]]) -> None:
        """Journal entry `seq` names exactly these links, just inserted by this process
        (an import) with these terms: an accelerator may take them as written."""
        ...

    async def start(self) -> None:
        """Begin whatever keeps the listing current (nothing, for the native one)."""
        ...

    async def close(self) -> None: ...


async def is_ferretdb(db: AsyncDatabase[Doc]) -> bool:
    """FerretDB reports `ferretdbVersion` in `buildInfo`; MongoDB does not."""
    info = await db.command("buildInfo")
    return "ferretdbVersion" in info or "ferretdb" in info


class ChosenListing:
    """A `Listing` that becomes the index or the native one at its first use, from the
    configured kind (auto: from `buildInfo`). Stores call it before knowing which."""

    def __init__(
        self, db: AsyncDatabase[Doc], kind: ListingKind, index: Listing, native: Listing
    ) -> None:
        self.db = db
        self.kind = kind
        self.index = index
        self.native = native
        self._chosen: Listing | None = None
        self._lock = asyncio.Lock()

    async def chosen(self) -> Listing:
        if self._chosen is None:
            async with self._lock:
                if self._chosen is None:
                    kind = self.kind
                    if kind is ListingKind.AUTO:
                        ferret = await is_ferretdb(self.db)
                        kind = ListingKind.INDEX if ferret else ListingKind.NATIVE
                    self._chosen = self.index if kind is ListingKind.INDEX else self.native
        return self._chosen

    async def is_native(self) -> bool:
        return await self.chosen() is self.native

    async def find(
        self, owner_id: int, tags: Sequence[str], terms: Sequence[str], offset: int, limit: int
    ) -> Found:
        return await (await self.chosen()).find(owner_id, tags, terms, offset, limit)

    async def tag_counts(
        self, owner_id: int, limit: int, *, stale_up_to: float = 0.0
    ) -> list[tuple[str, int]]:
        return await (await self.chosen()).tag_counts(owner_id, limit, stale_up_to=stale_up_to)

    async def owner_page(self, owner_id: int, after: After | None, limit: int) -> list[Doc]:
        return await (await self.chosen()).owner_page(owner_id, after, limit)

    async def owner_counts(self, owner_id: int) -> tuple[int, int]:
        return await (await self.chosen()).owner_counts(owner_id)

    async def due_for_check(
        self, statuses: Sequence[str], checked_before: datetime, limit: int
    ) -> list[ObjectId]:
        return await (await self.chosen()).due_for_check(statuses, checked_before, limit)

    async def gone(self, owner_id: int, offset: int, limit: int) -> Found:
        return await (await self.chosen()).gone(owner_id, offset, limit)

    async def written(self, seq: int, docs: list[Doc], terms: list[list[str]]) -> None:
        await (await self.chosen()).written(seq, docs, terms)

    async def start(self) -> None:
        await (await self.chosen()).start()

    async def close(self) -> None:
        await self.index.close()
        await self.native.close()

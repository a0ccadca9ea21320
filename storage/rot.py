"""What link-rot leaves for the digest: who had a page go offline, and what each owner was
last told. Both are small collections addressed by `_id`, the one query FerretDB v1
answers without reading everything (docs/BENCHMARKS.md), and only for a string or an
ObjectId `_id`: a number is compared after reading every document. So the key is the
owner id as text (`owner_key`). Each collection has one writer.

- `rot_news`: `{_id: "owner", at}`, written by the link-rot check *before* it marks a link
  gone, so a crash in between leaves news that the digest finds to be nothing (the
  link is still unmarked, and due again) rather than a gone link nobody hears of.
- `digests`: `{_id: "owner", through, period, items}`, written by the digest pass: the end
  of the window the owner's last digest covered, and the pages it named (for paging).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from storage.upserts import set_by_id

Doc = dict[str, Any]


def owner_key(owner_id: int) -> str:
    """An owner's `_id` in the per-owner collections (text: see the module docstring)."""
    return str(owner_id)


@dataclass(frozen=True)
class GoneItem:
    """A page as a digest names it."""

    id: ObjectId
    title: str
    url: str


@dataclass(frozen=True)
class Told:
    """An owner's last digest: the window it covered ended at `through` (period number
    `period`); the pages it named, most recently gone first."""

    through: datetime
    period: int
    items: list[GoneItem] = field(default_factory=list)


class RotNews:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.lost: AsyncCollection[Doc] = db["rot_news"]
        self.digests: AsyncCollection[Doc] = db["digests"]

    async def went_gone(self, owner_id: int, at: datetime) -> None:
        await set_by_id(self.lost, owner_key(owner_id), {"at": at})

    async def news(self) -> list[tuple[int, datetime]]:
        """(owner, when a page of theirs last went offline) for every owner who ever lost
        one: one small scan, a document per such owner."""
        return [(int(doc["_id"]), doc["at"]) async for doc in self.lost.find({})]

    async def told(self, owner_id: int) -> Told | None:
        doc = await self.digests.find_one({"_id": owner_key(owner_id)})
        if doc is None:
            return None
        items = [GoneItem(i["id"], i["title"], i["url"]) for i in doc.get("items", [])]
        return Told(doc["through"], int(doc.get("period", 0)), items)

    async def tell(self, owner_id: int, told: Told) -> None:
        items = [{"id": i.id, "title": i.title, "url": i.url} for i in told.items]
        fields = {"through": told.through, "period": told.period, "items": items}
        await set_by_id(self.digests, owner_key(owner_id), fields)

"""Files asked for where there is no browser (a front), made by whichever worker claims them.

One small document per (link, kind) in `file_orders`, keyed as `link_files` is; the asker
waits for the file to appear in `link_files` (storage/artifacts.py) or for the order to
say why it could not be made. A worker claims an order by inserting a marker into
`claims` (the unique `_id` makes one insert win, on MongoDB as on FerretDB v1; see
claims.py), then holds it for a lease: a worker that dies leaves it to the next one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.artifacts import file_key
from storage.models import utcnow
from storage.queue.claims import claim_number

Doc = dict[str, Any]


@dataclass(frozen=True)
class FileOrder:
    link_id: ObjectId
    owner_id: int
    kind: str
    locale: str
    asked_at: datetime
    tries: int = 0


@dataclass(frozen=True)
class OrderFailed:
    """Why the worker could not make the file (a capture failure's reason and detail)."""

    reason: str
    detail: str


class FileOrders:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.coll = db["file_orders"]
        self.claims = db["claims"]

    async def ask(self, link_id: ObjectId, owner_id: int, kind: str, locale: str) -> None:
        """Order the file; an order already waiting stands, a failed one is asked again."""
        key = file_key(link_id, kind)
        old = await self.coll.find_one({"_id": key})
        if old is not None and old.get("error") is None:
            return
        if old is not None:
            await self.coll.delete_one({"_id": key})
        doc = {
            "_id": key,
            "link_id": link_id,
            "owner_id": owner_id,
            "kind": kind,
            "locale": locale,
            "asked_at": utcnow(),
            "until": None,
            "tries": 0,
            "error": None,
        }
        # Asked at the same moment by another press: one order serves both.
        with contextlib.suppress(DuplicateKeyError):
            await self.coll.insert_one(doc)

    async def failure(self, link_id: ObjectId, kind: str) -> OrderFailed | None:
        doc = await self.coll.find_one({"_id": file_key(link_id, kind)})
        error = (doc or {}).get("error")
        if not error:
            return None
        return OrderFailed(str(error.get("reason", "internal")), str(error.get("detail", "")))

    async def claim(self, worker: str, lease: float) -> FileOrder | None:
        """The oldest order no worker holds, now ours for `lease` seconds."""
        now = utcnow()
        # The collection holds only files being asked for: read whole, filtered here.
        docs = await self.coll.find({"error": None}).sort("asked_at", 1).to_list(100)
        for doc in docs:
            if doc.get("until") is not None and doc["until"] > now:
                continue
            tries = await self._mark(doc, worker, lease)
            if tries is None:
                continue  # another worker holds this order
            order = FileOrder(
                link_id=doc["link_id"],
                owner_id=int(doc["owner_id"]),
                kind=str(doc["kind"]),
                locale=str(doc.get("locale") or "en-US"),
                asked_at=doc["asked_at"],
                tries=tries,
            )
            until = utcnow() + timedelta(seconds=lease)
            await self.coll.update_one(
                {"_id": doc["_id"]}, {"$set": {"until": until, "tries": tries}}
            )
            return order
        return None

    async def _mark(self, doc: Doc, worker: str, lease: float) -> int | None:
        """The order's try this claim won (a try whose claimer died before it wrote its
        lease is passed over once a lease old), or None."""
        asked = doc["asked_at"].timestamp()

        def key_of(tries: int) -> str:
            return f"file:{doc['_id']}:{asked}:{tries}"

        first = int(doc.get("tries") or 0) + 1
        return await claim_number(self.claims, key_of, first, worker, lease)

    async def done(self, order: FileOrder) -> None:
        """Made: the file is in `link_files`, and the asker finds it there."""
        await self.coll.delete_one({"_id": file_key(order.link_id, order.kind)})

    async def failed(self, order: FileOrder, reason: str, detail: str) -> None:
        await self.coll.update_one(
            {"_id": file_key(order.link_id, order.kind)},
            {"$set": {"error": {"reason": reason, "detail": detail[:500]}, "until": None}},
        )

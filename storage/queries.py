"""Saved /find queries, so page buttons carry only a short id (Telegram's 64-byte limit).

A saved query lives QUERY_TTL: a page button older than that answers "expired", as a
button of a deleted link does. `get` checks the age itself, so expiry is exact
whatever the cleanup's pace; `forget_expired` (hourly housekeeping) deletes them, and
on MongoDB a TTL index does it too.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from storage.models import utcnow

Doc = dict[str, Any]
QUERY_TTL = timedelta(days=7)


class QueryStore:
    def __init__(self, db: AsyncDatabase[Doc], ttl: timedelta = QUERY_TTL) -> None:
        self.queries: AsyncCollection[Doc] = db["queries"]
        self.ttl = ttl

    async def ensure_indexes(self) -> None:
        # A server without TTL indexes: housekeeping deletes them.
        with contextlib.suppress(OperationFailure):
            await self.queries.create_index(
                "created_at", expireAfterSeconds=int(self.ttl.total_seconds())
            )

    async def save(self, owner_id: int, tags: list[str], words: str) -> ObjectId:
        result = await self.queries.insert_one(
            {"owner_id": owner_id, "tags": tags, "words": words, "created_at": utcnow()}
        )
        return result.inserted_id

    async def get(
        self, owner_id: int, query_id: ObjectId, now: datetime | None = None
    ) -> tuple[list[str], str] | None:
        # By `_id` alone (FerretDB pushes down nothing else), then the owner checked here.
        doc = await self.queries.find_one({"_id": query_id})
        if doc is None or doc.get("owner_id") != owner_id:
            return None
        created = doc.get("created_at")
        if not isinstance(created, datetime) or created <= (now or utcnow()) - self.ttl:
            return None
        return list(doc["tags"]), str(doc["words"])

    async def forget_expired(self, now: datetime | None = None) -> int:
        done = await self.queries.delete_many({"created_at": {"$lt": (now or utcnow()) - self.ttl}})
        return done.deleted_count

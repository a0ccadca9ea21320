"""The listing answered by MongoDB's own indexes: for a real MongoDB, nothing derived.

Links are filtered and sorted by the multikey index (owner_id, tags, created_at) and the
owner's newest-first index; words come from `link_texts`, whose `terms` are an array
beside the link's `owner_id` in this mode (index (owner_id, terms)). On FerretDB v1 every
query here reads the whole collection (it filters and sorts in Go), so it is correct
there but slow: the tests run it there; production on FerretDB uses the SQLite
accelerator (storage/index/search.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from storage.index.listing import After, Found
from storage.keys import INTERNAL_FIELDS

Doc = dict[str, Any]
NEWEST = [("created_at", DESCENDING), ("_id", DESCENDING)]
LISTED = dict.fromkeys(INTERNAL_FIELDS, 0)  # every field of a link but its bookkeeping


class NativeListing:
    """`spaced_terms`: the texts keep their terms as one space-joined string (FerretDB,
    where this answers only while the accelerator rebuilds a bucket): matched by
    pattern, which no index serves."""

    def __init__(
        self,
        links: AsyncCollection[Doc],
        texts: AsyncCollection[Doc],
        *,
        spaced_terms: bool = False,
    ) -> None:
        self.links = links
        self.texts = texts
        self.spaced_terms = spaced_terms

    async def ensure_indexes(self) -> None:
        await self.links.create_index(
            [("owner_id", ASCENDING), ("tags", ASCENDING), ("created_at", DESCENDING)]
        )
        await self.links.create_index(
            [("owner_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]
        )
        await self.links.create_index(
            [("status", ASCENDING), ("checked_at", ASCENDING), ("created_at", DESCENDING)]
        )
        await self.texts.create_index([("owner_id", ASCENDING), ("terms", ASCENDING)])
        await self.links.create_index(
            [("owner_id", ASCENDING), ("alive", ASCENDING), ("created_at", DESCENDING)]
        )

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def written(self, seq: int, docs: list[Doc], terms: list[list[str]]) -> None:
        return None  # MongoDB is the listing: what was written is listed

    async def find(
        self, owner_id: int, tags: Sequence[str], terms: Sequence[str], offset: int, limit: int
    ) -> Found:
        query: Doc = {"owner_id": owner_id}
        if tags:
            query["tags"] = {"$all": list(tags)}
        if terms:
            ids = await self._with_terms(owner_id, terms)
            if not ids:
                return Found(0, [])
            query["_id"] = {"$in": ids}
        total = await self.links.count_documents(query)
        if total <= offset:
            return Found(total, [])
        cursor = self.links.find(query, LISTED).sort(NEWEST).skip(offset).limit(limit)
        return Found(total, await cursor.to_list())

    async def _with_terms(self, owner_id: int, terms: Sequence[str]) -> list[ObjectId]:
        if not self.spaced_terms:
            query: Doc = {"owner_id": owner_id, "terms": {"$all": list(terms)}}
            return [doc["_id"] async for doc in self.texts.find(query, {"_id": 1})]
        # Texts from before owner_id was kept in them have none: the owner is checked on
        # the links.
        words = [{"terms": {"$regex": f"(^| ){re.escape(t)}( |$)"}} for t in terms]
        return [doc["_id"] async for doc in self.texts.find({"$and": words}, {"_id": 1})]

    async def tag_counts(
        self, owner_id: int, limit: int, *, stale_up_to: float = 0.0
    ) -> list[tuple[str, int]]:
        """MongoDB's own answer, always current (`stale_up_to` makes it no cheaper)."""
        pipeline: list[Doc] = [
            {"$match": {"owner_id": owner_id}},
            {"$project": {"tags": 1}},
            {"$unwind": "$tags"},
            {"$group": {"_id": "$tags", "n": {"$sum": 1}}},
            {"$sort": {"n": -1, "_id": 1}},
            {"$limit": limit},
        ]
        cursor = await self.links.aggregate(pipeline)
        return [(str(doc["_id"]), int(doc["n"])) async for doc in cursor]

    async def gone(self, owner_id: int, offset: int, limit: int) -> Found:
        query: Doc = {"owner_id": owner_id, "alive": False}
        total = await self.links.count_documents(query)
        cursor = self.links.find(query, {"text": 0, "terms": 0}).sort(NEWEST)
        return Found(total, await cursor.skip(offset).limit(limit).to_list())

    async def owner_page(self, owner_id: int, after: After | None, limit: int) -> list[Doc]:
        query: Doc = {"owner_id": owner_id}
        if after is not None:
            query["$or"] = [
                {"created_at": {"$lt": after.created_at}},
                {"created_at": after.created_at, "_id": {"$lt": after.id}},
            ]
        return await self.links.find(query, LISTED).sort(NEWEST).limit(limit).to_list()

    async def owner_counts(self, owner_id: int) -> tuple[int, int]:
        links = await self.links.count_documents({"owner_id": owner_id})
        tags = await self.links.distinct("tags", {"owner_id": owner_id})
        return links, len(tags)

    async def due_for_check(
        self, statuses: Sequence[str], checked_before: datetime, limit: int
    ) -> list[ObjectId]:
        states = {"$in": list(statuses)}
        never = self.links.find({"status": states, "checked_at": None}, {"_id": 1})
        ids = [d["_id"] for d in await never.sort(NEWEST).limit(limit).to_list()]
        if len(ids) < limit:
            stale = self.links.find(
                {"status": states, "checked_at": {"$lt": checked_before}}, {"_id": 1}
            )
            order = [("checked_at", ASCENDING), ("_id", ASCENDING)]
            ids += [d["_id"] for d in await stale.sort(order).limit(limit - len(ids)).to_list()]
        return ids

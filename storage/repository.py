"""The `links` collection and screenshot bytes, through PyMongo's async API."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from storage.models import (
    UNFINISHED,
    LinkRecord,
    LlmUsage,
    Page,
    Screenshot,
    Status,
    TagCount,
    utcnow,
)
from storage.terms import terms_for, tokenize

Doc = dict[str, Any]


def parse_id(raw: str) -> ObjectId | None:
    """An ObjectId from untrusted text (button data), or None."""
    try:
        return ObjectId(raw)
    except (InvalidId, TypeError):
        return None


class LinkStore:
    """Every query here is scoped by `owner_id`, except the restart sweep."""

    def __init__(self, client: AsyncMongoClient[Doc], db: AsyncDatabase[Doc]) -> None:
        self._client = client
        self.db = db
        self.links: AsyncCollection[Doc] = db["links"]
        self.shots = AsyncGridFSBucket(db, bucket_name="screenshots")
        self.queries = QueryStore(db)

    @classmethod
    def connect(cls, uri: str, *, timeout_ms: int = 5000) -> LinkStore:
        client: AsyncMongoClient[Doc] = AsyncMongoClient(
            uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, appname="linksnap"
        )
        return cls(client, client.get_default_database())

    async def close(self) -> None:
        await self._client.close()

    async def ping(self) -> None:
        await self.db.command("ping")

    async def ensure_indexes(self) -> None:
        await self.links.create_index(
            [("owner_id", ASCENDING), ("url_key", ASCENDING)], unique=True
        )
        await self.links.create_index(
            [("owner_id", ASCENDING), ("tags", ASCENDING), ("created_at", DESCENDING)]
        )
        await self.links.create_index([("owner_id", ASCENDING), ("terms", ASCENDING)])
        await self.links.create_index([("status", ASCENDING), ("updated_at", ASCENDING)])

    async def add_pending(self, record: LinkRecord) -> tuple[LinkRecord, bool]:
        """Insert `record` unless the owner has its url_key; merge tags either way.

        Returns the stored record and whether it was created now.
        """
        insert = record.to_doc()
        for key in ("tags", "updated_at", "owner_id", "url_key"):
            insert.pop(key)
        doc = await self.links.find_one_and_update(
            {"owner_id": record.owner_id, "url_key": record.url_key},
            {
                "$setOnInsert": insert,
                "$addToSet": {"tags": {"$each": record.tags}},
                "$set": {"updated_at": utcnow()},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None  # upsert always returns a document
        stored = LinkRecord.from_doc(doc)
        return stored, stored.id == record.id

    async def get(self, owner_id: int, link_id: ObjectId) -> LinkRecord | None:
        doc = await self.links.find_one({"_id": link_id, "owner_id": owner_id})
        return LinkRecord.from_doc(doc) if doc else None

    async def update(self, link_id: ObjectId, **fields: Any) -> None:
        """Set fields (dataclasses become sub-documents) and bump updated_at."""
        values = {
            k: (asdict(v) if isinstance(v, LlmUsage | Screenshot) else v) for k, v in fields.items()
        }
        values = {k: (str(v) if isinstance(v, Status) else v) for k, v in values.items()}
        values["updated_at"] = utcnow()
        await self.links.update_one({"_id": link_id}, {"$set": values})

    async def start_attempt(self, link_id: ObjectId) -> None:
        await self.links.update_one(
            {"_id": link_id},
            {
                "$set": {"status": str(Status.CAPTURING), "updated_at": utcnow()},
                "$inc": {"attempts": 1},
            },
        )

    async def set_searchable(self, record: LinkRecord) -> None:
        """Recompute `terms` from what the record says about the page."""
        terms = terms_for(
            record.title, record.note, record.description, record.site_name, record.text
        )
        await self.update(record.id, terms=terms)

    async def unfinished(self, before: datetime, limit: int = 500) -> list[LinkRecord]:
        """Links left mid-way by an earlier process (untouched since `before`)."""
        query = {"status": {"$in": [str(s) for s in UNFINISHED]}, "updated_at": {"$lt": before}}
        cursor = self.links.find(query)
        return [
            LinkRecord.from_doc(d) async for d in cursor.sort("updated_at", ASCENDING).limit(limit)
        ]

    async def summary_failed(
        self, older_than: datetime, max_attempts: int, limit: int = 20
    ) -> list[LinkRecord]:
        """Summaries that broke off and may be tried again, oldest first."""
        query = {
            "status": str(Status.SUMMARY_FAILED),
            "updated_at": {"$lt": older_than},
            "summary_attempts": {"$lt": max_attempts},
        }
        cursor = self.links.find(query).sort("updated_at", ASCENDING).limit(limit)
        return [LinkRecord.from_doc(d) async for d in cursor]

    async def due_for_check(self, checked_before: datetime, limit: int = 50) -> list[LinkRecord]:
        """Captured links not checked since `checked_before` (never-checked first)."""
        query = {
            "status": {"$in": [str(Status.DONE), str(Status.SUMMARY_FAILED)]},
            "$or": [{"checked_at": None}, {"checked_at": {"$lt": checked_before}}],
        }
        cursor = self.links.find(query, {"text": 0, "terms": 0}).sort("checked_at", ASCENDING)
        return [LinkRecord.from_doc(d) async for d in cursor.limit(limit)]

    async def tag_counts(self, owner_id: int, limit: int = 100) -> list[TagCount]:
        pipeline: list[Doc] = [
            {"$match": {"owner_id": owner_id}},
            {"$unwind": "$tags"},
            {"$group": {"_id": "$tags", "n": {"$sum": 1}}},
            {"$sort": {"n": -1, "_id": 1}},
            {"$limit": limit},
        ]
        cursor = await self.links.aggregate(pipeline)
        return [TagCount(d["_id"], d["n"]) async for d in cursor]

    async def find(
        self, owner_id: int, tags: list[str], words: str = "", *, page: int = 0, page_size: int = 10
    ) -> Page:
        """Links carrying all `tags` (and all words' terms), newest first."""
        query: Doc = {"owner_id": owner_id}
        if tags:
            query["tags"] = {"$all": tags}
        terms = tokenize(words)
        if terms:
            query["terms"] = {"$all": terms}
        total = await self.links.count_documents(query)
        cursor = self.links.find(query, {"text": 0, "terms": 0})
        cursor = cursor.sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        items = [
            LinkRecord.from_doc(d) async for d in cursor.skip(page * page_size).limit(page_size)
        ]
        return Page(items=items, total=total, page=page, page_size=page_size)

    async def put_image(self, data: bytes, filename: str) -> ObjectId:
        return await self.shots.upload_from_stream(filename, data)

    async def get_image(self, file_id: ObjectId) -> bytes:
        stream = await self.shots.open_download_stream(file_id)
        return await stream.read()


class QueryStore:
    """Saved /find queries, so page buttons carry only a short id (64-byte limit)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.queries: AsyncCollection[Doc] = db["queries"]

    async def save(self, owner_id: int, tags: list[str], words: str) -> ObjectId:
        result = await self.queries.insert_one(
            {"owner_id": owner_id, "tags": tags, "words": words, "created_at": utcnow()}
        )
        return result.inserted_id

    async def get(self, owner_id: int, query_id: ObjectId) -> tuple[list[str], str] | None:
        doc = await self.queries.find_one({"_id": query_id, "owner_id": owner_id})
        return (list(doc["tags"]), str(doc["words"])) if doc else None

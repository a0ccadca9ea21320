"""Writes by `_id` that hold on FerretDB v1 as on MongoDB: one upsert, and inserts that
skip documents already there."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

Doc = dict[str, Any]


async def set_by_id(coll: AsyncCollection[Doc], key: object, fields: Doc) -> None:
    """`$set` these fields on document `key`, inserting it if missing. FerretDB v1 upserts
    as find-then-insert, so a writer racing us may insert first: then it is an update."""
    try:
        await coll.update_one({"_id": key}, {"$set": fields}, upsert=True)
    except DuplicateKeyError:
        await coll.update_one({"_id": key}, {"$set": fields})


async def insert_many_new(coll: AsyncCollection[Doc], docs: list[Doc]) -> set[int]:
    """Insert what can be inserted; the positions refused as duplicates."""
    if not docs:
        return set()
    try:
        await coll.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        return {int(e["index"]) for e in errors}
    return set()

"""One upsert by `_id` that holds on FerretDB v1 as on MongoDB."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

Doc = dict[str, Any]


async def set_by_id(coll: AsyncCollection[Doc], key: object, fields: Doc) -> None:
    """`$set` these fields on document `key`, inserting it if missing. FerretDB v1 upserts
    as find-then-insert, so a writer racing us may insert first: then it is an update."""
    try:
        await coll.update_one({"_id": key}, {"$set": fields}, upsert=True)
    except DuplicateKeyError:
        await coll.update_one({"_id": key}, {"$set": fields})

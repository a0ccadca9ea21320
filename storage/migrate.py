"""One-time start-up migration of databases written before the split data model.

Version 1 (before issue 10) kept page text and a terms array in every `links` document
and found a user's URL by scanning. Version 2 moves the heavy fields to `link_texts`
(terms space-joined), adds the `link_keys` and `work` documents, and drops the indexes
nothing queries any more. Each step is an idempotent upsert or unset by `_id`, so a
migration cut short, or run by two processes at once, ends in the same state.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from storage.keys import HEAVY_FIELDS, WORK_STATES, key_id
from storage.upserts import set_by_id
from storage.writes import LinkWrites

log = logging.getLogger(__name__)
Doc = dict[str, Any]
SCHEMA_ID = "schema"
SCHEMA_VERSION = 2
TAGS_ID = "tags"  # the meta document saying stored tags went through the normaliser
TAGS_VERSION = 1
# Indexes on `links` nothing queries any more (terms moved to `link_texts`).
OLD_INDEXES = ("owner_id_1_terms_1", "status_1_updated_at_1")
# What the native listing answers from (storage/index/native.py): useless on FerretDB, where it
# only slows writes; kept on MongoDB.
LISTING_INDEXES = ("owner_id_1_tags_1_created_at_-1",)
NATIVE_TEXTS_ID = "native_texts"
_BATCH = 500


async def migrate(db: AsyncDatabase[Doc], *, drop_listing_indexes: bool = True) -> None:
    meta = db["meta"]
    state = await meta.find_one({"_id": SCHEMA_ID})
    if state is not None and int(state.get("version", 0)) >= SCHEMA_VERSION:
        return
    links = db["links"]
    if await links.find_one({}, {"_id": 1}) is not None:
        started = time.monotonic()
        log.info(
            "migrating links to data model v%d (page text out of link documents)", SCHEMA_VERSION
        )
        moved = await _split(db)
        log.info("migration done: %d links in %.1f s", moved, time.monotonic() - started)
    for name in (*OLD_INDEXES, *(LISTING_INDEXES if drop_listing_indexes else ())):
        with contextlib.suppress(OperationFailure):  # never made, or already dropped
            await links.drop_index(name)
    # Processes starting together on a new database all get here.
    await set_by_id(meta, SCHEMA_ID, {"version": SCHEMA_VERSION})


async def _split(db: AsyncDatabase[Doc]) -> int:
    ops: dict[str, list[UpdateOne]] = {"links": [], "link_texts": [], "link_keys": [], "work": []}
    count = 0
    async for doc in db["links"].find({}, batch_size=_BATCH):
        count += 1
        link_id = doc["_id"]
        if any(name in doc for name in HEAVY_FIELDS):
            terms = doc.get("terms") or []
            heavy = {"text": doc.get("text") or "", "terms": " ".join(map(str, terms))}
            ops["link_texts"].append(UpdateOne({"_id": link_id}, {"$set": heavy}, upsert=True))
            ops["links"].append(
                UpdateOne({"_id": link_id}, {"$unset": dict.fromkeys(HEAVY_FIELDS, "")})
            )
        key = key_id(doc["owner_id"], doc["url_key"])
        ops["link_keys"].append(
            UpdateOne(
                {"_id": key},
                {"$set": {"link_id": link_id, "owner_id": doc["owner_id"]}},
                upsert=True,
            )
        )
        status = str(doc.get("status", "pending"))
        if status in WORK_STATES:
            entry = {
                "status": status,
                "updated_at": doc.get("updated_at"),
                "owner_id": doc["owner_id"],
            }
            ops["work"].append(UpdateOne({"_id": link_id}, {"$set": entry}, upsert=True))
        if count % _BATCH == 0:
            await _flush(db, ops)
    await _flush(db, ops)
    return count


async def _flush(db: AsyncDatabase[Doc], ops: dict[str, list[UpdateOne]]) -> None:
    # Texts before unsetting them from the links, so a cut-short run loses nothing.
    for name in ("link_texts", "link_keys", "work", "links"):
        if ops[name]:
            coll: AsyncCollection[Doc] = db[name]
            await coll.bulk_write(ops[name], ordered=False)
            ops[name] = []


async def migrate_tags(
    db: AsyncDatabase[Doc], writes: LinkWrites, normalise: Callable[[list[str]], list[str]]
) -> int:
    """One-time: every stored tag through the one tag normaliser (the bot's, passed in:
    storage knows nothing above it), and keys whose link is missing removed (an import
    before issue 22 could leave them, and they made the URL look saved). Idempotent, so
    a run cut short, or two at once, end the same. Returns the links whose tags changed.
    """
    meta = db["meta"]
    state = await meta.find_one({"_id": TAGS_ID})
    if state is not None and int(state.get("version", 0)) >= TAGS_VERSION:
        return 0
    started = time.monotonic()
    # Keys first: a link is written before its key, so a key seen here whose link is not
    # seen below has none.
    keys = {doc["_id"]: doc.get("link_id") async for doc in db["link_keys"].find({})}
    changed, seen = await _retag_links(db, writes, normalise)
    stale = [k for k, link_id in keys.items() if link_id not in seen]
    for start in range(0, len(stale), _BATCH):
        await db["link_keys"].delete_many({"_id": {"$in": stale[start : start + _BATCH]}})
    await _retag_trash(db, normalise)
    log.info(
        "tags normalised: %d links changed, %d keys without a link removed, %.1f s",
        changed,
        len(stale),
        time.monotonic() - started,
    )
    await set_by_id(meta, TAGS_ID, {"version": TAGS_VERSION})
    return changed


async def _retag_links(
    db: AsyncDatabase[Doc], writes: LinkWrites, normalise: Callable[[list[str]], list[str]]
) -> tuple[int, set[Any]]:
    """(links whose tags changed, ids of every link)."""
    seen: set[Any] = set()
    changes: list[tuple[Any, int, Doc]] = []
    changed = 0
    async for doc in db["links"].find({}, {"tags": 1, "owner_id": 1}, batch_size=_BATCH):
        seen.add(doc["_id"])
        tags = [str(t) for t in doc.get("tags") or []]
        clean = normalise(tags)
        if clean != tags:
            changes.append((doc["_id"], int(doc["owner_id"]), {"tags": clean}))
        if len(changes) >= _BATCH:
            changed += await writes.set_many(changes)  # announced: every listing reads them
            changes = []
    changed += await writes.set_many(changes)
    return changed, seen


async def _retag_trash(db: AsyncDatabase[Doc], normalise: Callable[[list[str]], list[str]]) -> None:
    """Deleted links waiting for their undo come back with clean tags too."""
    async for entry in db["trash"].find({}, {"link.tags": 1}):
        tags = [str(t) for t in (entry.get("link") or {}).get("tags") or []]
        clean = normalise(tags)
        if clean != tags:
            await db["trash"].update_one({"_id": entry["_id"]}, {"$set": {"link.tags": clean}})


async def migrate_native(db: AsyncDatabase[Doc]) -> None:
    """For the native listing: every `link_texts` document gets its link's `owner_id` and
    its terms as an array (FerretDB kept them space-joined). Once; idempotent."""
    meta = db["meta"]
    if await meta.find_one({"_id": NATIVE_TEXTS_ID}) is not None:
        return
    texts, links = db["link_texts"], db["links"]
    ops: list[UpdateOne] = []
    query = {"$or": [{"terms": {"$type": "string"}}, {"owner_id": {"$exists": False}}]}
    async for doc in texts.find(query, {"terms": 1, "owner_id": 1}):
        fields: Doc = {}
        terms = doc.get("terms")
        if isinstance(terms, str):
            fields["terms"] = terms.split()
        if "owner_id" not in doc:
            link = await links.find_one({"_id": doc["_id"]}, {"owner_id": 1})
            if link is not None:
                fields["owner_id"] = link["owner_id"]
        if fields:
            ops.append(UpdateOne({"_id": doc["_id"]}, {"$set": fields}))
        if len(ops) >= _BATCH:
            await texts.bulk_write(ops, ordered=False)
            ops = []
    if ops:
        await texts.bulk_write(ops, ordered=False)
    await set_by_id(meta, NATIVE_TEXTS_ID, {"at": time.time()})

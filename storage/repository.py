"""Links, their page text, and screenshot bytes, through PyMongo's async API.

Data model (see docs/BENCHMARKS.md for the measurements behind it):

- `links`: one light document per link (no page text, no terms), the record of truth.
- `link_texts`: `{_id: link id, text, terms}`, the heavy fields, terms space-joined
  (a 300-element array costs FerretDB ~1 ms per document to decode; a string ~0.05 ms).
- `link_keys`: `{_id: "<owner>:<hash of url_key>", link_id}`, so "has this user saved
  this URL?" is an `_id` look-up.
- `work`: `{_id: link id, owner_id, status, updated_at}` for links not finished yet:
  a small collection that resume, retry and (next) stage claims scan.
- `changes` + `meta`: the change journal (storage/journal.py).
- `/find`, `/tags` and the link-rot order are answered by a derived SQLite index
  (storage/search.py) kept current from the journal.

Every read and write on a large collection is by `_id`: the one query FerretDB v1
answers from an index. MongoDB gives single-document atomicity; FerretDB v1 applies
updates as read-then-write, so nothing here relies on concurrent updates of one
document merging, except tag merges that MongoDB makes atomic.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import sqlite3
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.uri_parser import parse_uri

from storage.catalog import Catalog
from storage.claims import WorkQueue
from storage.images import ImageStore
from storage.journal import Journal
from storage.keys import HEAVY_FIELDS, WORK_STATES, key_id
from storage.migrate import migrate
from storage.models import (
    UNFINISHED,
    LinkRecord,
    LlmUsage,
    Page,
    Screenshot,
    Status,
    StoredFile,
    TagCount,
    utcnow,
)
from storage.search import SearchIndex, split_terms
from storage.terms import terms_for, tokenize

log = logging.getLogger(__name__)
Doc = dict[str, Any]
CHECKED_STATES = (str(Status.DONE), str(Status.SUMMARY_FAILED))
DEFAULT_INDEX_DIR = Path("data") / "index"
RENAME_PAGE = 500  # links read per listing page while renaming a tag


class StoreConflict(Exception):
    """A write kept losing races with other processes (should not happen in practice)."""


def parse_id(raw: str) -> ObjectId | None:
    """An ObjectId from untrusted text (button data), or None."""
    try:
        return ObjectId(raw)
    except (InvalidId, TypeError):
        return None


def light_doc(record: LinkRecord) -> Doc:
    doc = record.to_doc()
    for name in HEAVY_FIELDS:
        doc.pop(name, None)
    doc["tags"] = list(dict.fromkeys(record.tags))
    return doc


def text_doc(record: LinkRecord) -> Doc:
    return {"_id": record.id, "text": record.text, "terms": " ".join(record.terms)}


def _stored(value: Any) -> Any:
    if isinstance(value, LlmUsage | Screenshot | StoredFile):
        return asdict(value)
    if isinstance(value, Status):
        return str(value)
    return value


def default_index_path(uri: str, db_name: str, directory: Path = DEFAULT_INDEX_DIR) -> Path:
    """One file per server and database, by default under ./data/index/ beside
    FerretDB's own data."""
    nodes = ",".join(f"{h}:{p}" for h, p in parse_uri(uri)["nodelist"])
    digest = hashlib.sha256(f"{nodes}/{db_name}".encode()).hexdigest()[:12]
    return directory / f"{db_name}-{digest}.sqlite"


class LinkStore:
    """Every query here is scoped by `owner_id`, except the restart and check sweeps."""

    def __init__(
        self,
        client: AsyncMongoClient[Doc],
        db: AsyncDatabase[Doc],
        *,
        index_path: Path | str | None = None,
    ) -> None:
        self._client = client
        self.db = db
        self.links: AsyncCollection[Doc] = db["links"]
        self.texts: AsyncCollection[Doc] = db["link_texts"]
        self.keys: AsyncCollection[Doc] = db["link_keys"]
        self.work: AsyncCollection[Doc] = db["work"]
        self.meta: AsyncCollection[Doc] = db["meta"]
        self.journal = Journal(db["changes"])
        path = index_path or DEFAULT_INDEX_DIR / f"{db.name}.sqlite"
        self.index = SearchIndex(self.links, self.texts, self.journal, path)
        self.images = ImageStore(db)
        self.queries = QueryStore(db)
        self.queue = WorkQueue(db)
        self.updates: AsyncCollection[Doc] = db["seen_updates"]
        self._warm: asyncio.Task[None] | None = None

    @classmethod
    def connect(
        cls,
        uri: str,
        *,
        timeout_ms: int = 5000,
        index_path: Path | str | None = None,
        index_dir: Path | str | None = None,
    ) -> LinkStore:
        """`index_path` names the derived index file; else one is chosen in `index_dir`
        (default ./data/index) for this server and database."""
        client: AsyncMongoClient[Doc] = AsyncMongoClient(
            uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, appname="linksnap"
        )
        db = client.get_default_database()
        path = index_path or default_index_path(uri, db.name, Path(index_dir or DEFAULT_INDEX_DIR))
        return cls(client, db, index_path=path)

    async def close(self) -> None:
        if self._warm is not None:
            self._warm.cancel()
            await asyncio.gather(self._warm, return_exceptions=True)
        await self.index.close()
        await self._client.close()

    async def ping(self) -> None:
        await self.db.command("ping")

    async def ensure_indexes(self) -> None:
        """Indexes, the one-time migration, then the search index warmed in the background."""
        await self.links.create_index(
            [("owner_id", ASCENDING), ("url_key", ASCENDING)], unique=True
        )
        await self.work.create_index([("status", ASCENDING), ("updated_at", ASCENDING)])
        await self.queue.ensure_indexes()
        await migrate(self.db)
        if self._warm is None:
            self._warm = asyncio.create_task(self._warm_index())

    async def _warm_index(self) -> None:
        try:
            await self.index.sync()
        except (PyMongoError, sqlite3.Error) as exc:  # the first /find tries again
            log.warning("search index: warm-up failed: %s", type(exc).__name__)

    # -- writes ----------------------------------------------------------------------

    async def add_pending(self, record: LinkRecord) -> tuple[LinkRecord, bool]:
        """Insert `record` unless the owner has its url_key; merge tags either way.

        Returns the stored record and whether it was created now.
        """
        key = key_id(record.owner_id, record.url_key)
        for _ in range(4):
            merged = await self._merge_tags(key, record.tags)
            if merged is not None:
                return merged, False
            if await self._insert_new(key, record):
                return LinkRecord.from_doc(light_doc(record)), True
        raise StoreConflict(f"could not record {record.url_key!r}")

    async def _merge_tags(self, key: str, tags: list[str]) -> LinkRecord | None:
        found = await self.keys.find_one({"_id": key})
        if found is None:
            return None
        doc = await self.links.find_one_and_update(
            {"_id": found["link_id"]},
            {"$addToSet": {"tags": {"$each": tags}}, "$set": {"updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:  # the link was deleted after its key was read
            await self.keys.delete_one({"_id": key})
            return None
        await self.journal.append([doc["_id"]])
        return LinkRecord.from_doc(doc)

    async def _insert_new(self, key: str, record: LinkRecord) -> bool:
        # The work entry first: a crash may leave an entry without a link (skipped when
        # read) but never a link in flight that nothing would resume.
        if str(record.status) in WORK_STATES:
            await self._work_put(record.id, record.owner_id, record.status, record.updated_at)
        try:
            await self.links.insert_one(light_doc(record))
        except DuplicateKeyError:
            await self.work.delete_one({"_id": record.id})
            await self._repair_key(key, record)
            return False
        if record.text or record.terms:
            await self.texts.insert_one(text_doc(record))
        try:
            await self.keys.insert_one(
                {"_id": key, "link_id": record.id, "owner_id": record.owner_id}
            )
        except DuplicateKeyError:  # another process recorded the same URL just now
            await self.links.delete_one({"_id": record.id})
            await self.texts.delete_one({"_id": record.id})
            await self.work.delete_one({"_id": record.id})
            return False
        await self.journal.append([record.id])
        return True

    async def _repair_key(self, key: str, record: LinkRecord) -> None:
        """The unique (owner_id, url_key) index refused a second link but no key points at
        the first (a crash between the two inserts): find it the slow way, once."""
        if await self.keys.find_one({"_id": key}) is not None:
            return
        doc = await self.links.find_one(
            {"owner_id": record.owner_id, "url_key": record.url_key}, {"_id": 1}
        )
        if doc is not None:
            # FerretDB v1 upserts as find-then-insert: a racing process may insert first.
            with contextlib.suppress(DuplicateKeyError):
                await self.keys.insert_one(
                    {"_id": key, "link_id": doc["_id"], "owner_id": record.owner_id}
                )

    async def _work_put(
        self, link_id: ObjectId, owner_id: int | None, status: str, when: datetime
    ) -> None:
        if owner_id is None:
            done = await self.work.update_one(
                {"_id": link_id}, {"$set": {"status": str(status), "updated_at": when}}
            )
            if done.matched_count:
                return  # the common case: a link moving on between in-flight states
            doc = await self.links.find_one({"_id": link_id}, {"owner_id": 1})
            owner_id = doc["owner_id"] if doc else None
        await self.work.update_one(
            {"_id": link_id},
            {"$set": {"status": str(status), "updated_at": when, "owner_id": owner_id}},
            upsert=True,
        )

    async def update(self, link_id: ObjectId, **fields: Any) -> None:
        """Set fields (dataclasses become sub-documents) and bump updated_at."""
        values = {k: _stored(v) for k, v in fields.items()}
        now = utcnow()
        values["updated_at"] = now
        heavy = {k: values.pop(k) for k in HEAVY_FIELDS if k in values}
        status = values.get("status")
        if status in WORK_STATES:
            await self._work_put(link_id, None, status, now)
        await self.links.update_one({"_id": link_id}, {"$set": values})
        if heavy:
            if "terms" in heavy:
                heavy["terms"] = " ".join(heavy["terms"])
            await self.texts.update_one({"_id": link_id}, {"$set": heavy}, upsert=True)
        if status is not None and status not in WORK_STATES:
            await self.work.delete_one({"_id": link_id})
        await self.journal.append([link_id])

    async def save_capture(self, record: LinkRecord) -> None:
        """A capture's result: page fields, text, screenshot, its terms, status captured.

        One call for what `update(...)` plus `set_searchable` do in two.
        """
        record.terms = terms_for(
            record.title, record.note, record.description, record.site_name, record.text
        )
        await self.update(
            record.id,
            status=Status.CAPTURED,
            final_url=record.final_url,
            http_status=record.http_status,
            title=record.title,
            description=record.description,
            site_name=record.site_name,
            lang=record.lang,
            screenshot=record.screenshot,
            kind=record.kind,
            partial=record.partial,
            original=record.original,
            error=None,
            text=record.text,
            terms=record.terms,
        )

    async def mark_failed(self, link_id: ObjectId, error: str) -> None:
        await self.update(link_id, status=Status.FAILED, error=error[:300])

    async def set_alive(self, link_id: ObjectId, alive: bool | None) -> None:
        """A link-rot check's answer; None (unknown) records only that it was checked."""
        fields: dict[str, Any] = {"checked_at": utcnow()}
        if alive is not None:
            fields["alive"] = alive
        await self.update(link_id, **fields)

    async def start_attempt(self, link_id: ObjectId) -> None:
        now = utcnow()
        await self._work_put(link_id, None, Status.CAPTURING, now)
        await self.links.update_one(
            {"_id": link_id},
            {"$set": {"status": str(Status.CAPTURING), "updated_at": now}, "$inc": {"attempts": 1}},
        )
        await self.journal.append([link_id])

    async def set_searchable(self, record: LinkRecord) -> None:
        """Recompute `terms` from what the record says about the page."""
        terms = terms_for(
            record.title, record.note, record.description, record.site_name, record.text
        )
        await self.update(record.id, terms=terms)

    async def set_tags(self, owner_id: int, link_id: ObjectId, tags: list[str]) -> bool:
        """Replace a link's tags (retag); False when the owner has no such link."""
        doc = await self.links.find_one({"_id": link_id}, {"owner_id": 1})
        if doc is None or doc["owner_id"] != owner_id:
            return False
        await self.update(link_id, tags=list(dict.fromkeys(tags)))
        return True

    async def rename_tag(self, owner_id: int, old: str, new: str) -> list[ObjectId]:
        """`old` becomes `new` on every link of the owner's that carries it (a merge when
        `new` is a tag they have already); the links changed. Each is written as a retag
        is, so the listing, /tags and inline results follow through the journal."""
        ids: list[ObjectId] = []
        page = 0
        while True:  # every link carrying `old` first: the writes would shift the pages
            found = await self.find(owner_id, [old], page=page, page_size=RENAME_PAGE)
            ids += [r.id for r in found.items]
            if (page + 1) * RENAME_PAGE >= found.total:
                break
            page += 1
        changed = []
        for link_id in ids:
            doc = await self.links.find_one({"_id": link_id}, {"owner_id": 1, "tags": 1})
            if doc is None or doc["owner_id"] != owner_id or old not in doc.get("tags", []):
                continue  # deleted or retagged meanwhile
            tags = list(dict.fromkeys(new if t == old else t for t in doc["tags"]))
            await self.update(link_id, tags=tags)
            changed.append(link_id)
        return changed

    async def delete(self, owner_id: int, link_id: ObjectId) -> bool:
        """Forget a link (its screenshot bytes stay in GridFS); False when not the owner's."""
        doc = await self.links.find_one({"_id": link_id})
        if doc is None or doc["owner_id"] != owner_id:
            return False
        await self.links.delete_one({"_id": link_id})
        await self.keys.delete_one({"_id": key_id(owner_id, doc["url_key"])})
        await self.texts.delete_one({"_id": link_id})
        await self.work.delete_one({"_id": link_id})
        await self.journal.append([link_id])
        return True

    async def import_links(self, records: list[LinkRecord]) -> int:
        """Store many new links at once (imports, seeding); returns how many were new.

        A record whose URL the owner already has is skipped. Terms are computed when the
        record has none.
        """
        stored = 0
        for start in range(0, len(records), 500):
            stored += await self._import_batch(records[start : start + 500])
        return stored

    async def _import_batch(self, batch: list[LinkRecord]) -> int:
        keys = [
            {"_id": key_id(r.owner_id, r.url_key), "link_id": r.id, "owner_id": r.owner_id}
            for r in batch
        ]
        fresh = _inserted(batch, await insert_many_new(self.keys, keys))
        if not fresh:
            return 0
        unfinished = [r for r in fresh if str(r.status) in WORK_STATES]
        if unfinished:
            await insert_many_new(
                self.work,
                [
                    {
                        "_id": r.id,
                        "owner_id": r.owner_id,
                        "status": str(r.status),
                        "updated_at": r.updated_at,
                    }
                    for r in unfinished
                ],
            )
        for r in fresh:
            if not r.terms:
                r.terms = terms_for(r.title, r.note, r.description, r.site_name, r.text)
        await insert_many_new(self.links, [light_doc(r) for r in fresh])
        await insert_many_new(self.texts, [text_doc(r) for r in fresh])
        await self.journal.append([r.id for r in fresh])
        return len(fresh)

    # -- reads -----------------------------------------------------------------------

    async def load(self, link_id: ObjectId) -> LinkRecord | None:
        """A link by id whoever owns it: for workers, never for a user's request."""
        return await self._load(link_id)

    async def set_siblings(self, link_ids: list[ObjectId]) -> None:
        """Links recorded from one message know each other (for its closing reaction)."""
        for link_id in link_ids:
            await self.links.update_one(
                {"_id": link_id}, {"$set": {"siblings": [i for i in link_ids if i != link_id]}}
            )

    async def siblings_of(self, record: LinkRecord) -> list[LinkRecord]:
        found = [await self._load(i, with_text=False) for i in record.siblings]
        return [r for r in found if r is not None]

    async def first_delivery(self, update_id: int) -> bool:
        """True the first time any front sees this update (webhook retries and several
        fronts behind one URL deliver some twice). A unique insert: atomic everywhere."""
        try:
            await self.updates.insert_one({"_id": f"u{update_id}", "at": utcnow()})
        except DuplicateKeyError:
            return False
        return True

    async def forget_updates(self, older_than: datetime) -> None:
        await self.updates.delete_many({"at": {"$lt": older_than}})

    async def drop_work(self, link_id: ObjectId) -> None:
        """Nothing more will be tried for this link (e.g. summary retries used up)."""
        await self.work.delete_one({"_id": link_id})

    async def get(self, owner_id: int, link_id: ObjectId) -> LinkRecord | None:
        record = await self._load(link_id)
        return record if record is not None and record.owner_id == owner_id else None

    async def _load(self, link_id: ObjectId, *, with_text: bool = True) -> LinkRecord | None:
        doc = await self.links.find_one({"_id": link_id})
        if doc is None:
            return None
        if with_text:
            text = await self.texts.find_one({"_id": link_id})
            if text is not None:
                doc["text"] = text.get("text", "")
                doc["terms"] = split_terms(text.get("terms"))
        return LinkRecord.from_doc(doc)

    async def _work_records(self, query: Doc, keep: set[str]) -> list[tuple[Doc, LinkRecord]]:
        """Work entries matching `query` whose link is in a `keep` state; entries whose
        link finished or is gone are dropped."""
        out = []
        async for entry in self.work.find(query).sort("updated_at", ASCENDING):
            record = await self._load(entry["_id"])
            status = str(record.status) if record is not None else None
            if record is not None and status in keep:
                out.append((entry, record))
            elif record is None or (
                status not in WORK_STATES and record.updated_at >= entry["updated_at"]
            ):
                # An entry newer than its link's last write belongs to a write still
                # under way in another process: left alone.
                await self._drop_work(entry)
        return out

    async def _drop_work(self, entry: Doc) -> None:
        await self.work.delete_one({"_id": entry["_id"], "updated_at": entry["updated_at"]})

    async def unfinished(self, before: datetime, limit: int = 500) -> list[LinkRecord]:
        """Links left mid-way by an earlier process (untouched since `before`)."""
        states = {str(s) for s in UNFINISHED}
        query = {"status": {"$in": sorted(WORK_STATES)}, "updated_at": {"$lt": before}}
        found = [r for _, r in await self._work_records(query, states) if r.updated_at < before]
        return sorted(found, key=lambda r: r.updated_at)[:limit]

    async def summary_failed(
        self, older_than: datetime, max_attempts: int, limit: int = 20
    ) -> list[LinkRecord]:
        """Summaries that broke off and may be tried again, oldest first."""
        query = {"status": str(Status.SUMMARY_FAILED), "updated_at": {"$lt": older_than}}
        due = []
        keep = {str(Status.SUMMARY_FAILED)}
        for entry, record in await self._work_records(query, keep):
            if record.summary_attempts >= max_attempts:
                await self._drop_work(entry)  # given up: work holds only what may still run
            elif record.updated_at < older_than:
                due.append(record)
        return sorted(due, key=lambda r: r.updated_at)[:limit]

    async def due_for_check(self, checked_before: datetime, limit: int = 50) -> list[LinkRecord]:
        """Captured links not checked since `checked_before` (never-checked first)."""

        def order(catalog: Catalog) -> list[str]:
            return catalog.due_for_check(CHECKED_STATES, checked_before, limit)

        out = []
        for raw in await self.index.query(order):
            record = await self._load(ObjectId(raw), with_text=False)
            if record is None or str(record.status) not in CHECKED_STATES:
                continue
            if record.checked_at is None or record.checked_at < checked_before:
                out.append(record)
        return out

    async def tag_counts(self, owner_id: int, limit: int = 100) -> list[TagCount]:
        rows = await self.index.query(lambda c: c.tag_counts(owner_id, limit))
        return [TagCount(tag, n) for tag, n in rows]

    async def find(
        self, owner_id: int, tags: list[str], words: str = "", *, page: int = 0, page_size: int = 10
    ) -> Page:
        """Links carrying all `tags` (and all words' terms), newest first."""
        terms = tokenize(words)
        total, docs = await self.index.query(
            lambda c: c.find(owner_id, tags, terms, page * page_size, page_size)
        )
        items = [LinkRecord.from_doc(d) for d in docs]
        return Page(items=items, total=total, page=page, page_size=page_size)

    async def put_image(self, data: bytes, filename: str) -> ObjectId:
        return await self.images.put(data, filename)

    async def get_image(self, file_id: ObjectId) -> bytes:
        """The bytes; raises ImageNotFound (a LookupError) when there are none."""
        return await self.images.get(file_id)


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


def _inserted(batch: list[LinkRecord], refused: set[int]) -> list[LinkRecord]:
    return [r for i, r in enumerate(batch) if i not in refused]


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
        # By `_id` alone (FerretDB pushes down nothing else), then the owner checked here.
        doc = await self.queries.find_one({"_id": query_id})
        if doc is None or doc.get("owner_id") != owner_id:
            return None
        return list(doc["tags"]), str(doc["words"])

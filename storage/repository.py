"""Links, their page text, and screenshot bytes, through PyMongo's async API.

Data model (see docs/BENCHMARKS.md for the measurements behind it):

- `links`: one light document per link (no page text, no terms), the record of truth.
  Every write to it goes through storage/writes.py: announced in the journal first.
- `link_texts`: `{_id: link id, owner_id, text, terms}`, the heavy fields. On FerretDB the
  terms are space-joined (a 300-element array costs FerretDB ~1 ms per document to
  decode; a string ~0.05 ms); on MongoDB an array, which its (owner_id, terms) index
  answers.
- `link_keys`: `{_id: "<owner>:<hash of url_key>", link_id}`, so "has this user saved
  this URL?" is an `_id` look-up.
- `work`: `{_id: link id, owner_id, status, updated_at}` for links not finished yet:
  a small collection that stage claims scan.
- `changes`: the change journal (storage/index/journal.py).
- `/find`, `/tags`, exports and the link-rot order read a `Listing` (storage/index/listing.py):
  the derived SQLite index on FerretDB, MongoDB's own indexes on MongoDB.

Every read and write on a large collection is by `_id`: the one query FerretDB v1
answers from an index. MongoDB gives single-document atomicity; FerretDB v1 applies
updates as read-then-write, so nothing here relies on concurrent updates of one
document merging, except tag merges that MongoDB makes atomic.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from pymongo.uri_parser import parse_uri

import storage.driver  # noqa: F401  (PyMongo's server wait mended before 3.12)
from storage.errors import LinksnapError
from storage.images import ImageNotFound, ImageStore
from storage.index.journal import Journal
from storage.index.listing import ChosenListing, ListingKind
from storage.index.native import NativeListing
from storage.index.search import IndexListing, split_terms
from storage.keys import HEAVY_FIELDS, WORK_STATES, key_id
from storage.migrate import migrate, migrate_native
from storage.models import (
    LinkRecord,
    LlmUsage,
    Page,
    Screenshot,
    Status,
    StoredFile,
    TagCount,
    utcnow,
)
from storage.prefs import PrefStore
from storage.queries import QueryStore
from storage.queue.claims import WorkQueue
from storage.rot import RotNews
from storage.terms import tokenize
from storage.upserts import insert_many_new, set_by_id
from storage.writes import LinkWrites

log = logging.getLogger(__name__)
Doc = dict[str, Any]
# Link-rot checks every saved link not in a capture's hands: captured, failed, or waiting
# (an import's thousands wait behind every link sent by hand, for hours or days).
CHECKED_STATES = tuple(
    str(s) for s in (Status.DONE, Status.SUMMARY_FAILED, Status.FAILED, Status.PENDING)
)
DEFAULT_INDEX_DIR = Path("data") / "index"
RENAME_PAGE = 500  # links read per listing page while renaming a tag


@dataclass(frozen=True)
class DueBatch:
    """Links due for a link-rot check, and how many the listing named to find them."""

    records: list[LinkRecord]
    named: int


# What a link queued again writes into its work entry (bot/pipeline/intake.requeue).
_REQUEUED = frozenset({str(Status.PENDING), str(Status.CAPTURED)})


def _queued_after(doc: Doc, ended_at: datetime) -> bool:
    at = doc.get("updated_at")
    return str(doc.get("status")) in _REQUEUED and isinstance(at, datetime) and at > ended_at


class StoreConflict(LinksnapError):
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


def text_doc(record: LinkRecord, *, terms_as_array: bool = False) -> Doc:
    terms: list[str] | str = list(record.terms) if terms_as_array else " ".join(record.terms)
    return {"_id": record.id, "owner_id": record.owner_id, "text": record.text, "terms": terms}


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
        listing: ListingKind | str = ListingKind.AUTO,
        clock: Callable[[], float] = time.time,
        heal_every: float | None = None,
        journal_clock: Callable[[], float] | None = None,
    ) -> None:
        self._client = client
        self.db = db
        self.links: AsyncCollection[Doc] = db["links"]
        self.texts: AsyncCollection[Doc] = db["link_texts"]
        self.keys: AsyncCollection[Doc] = db["link_keys"]
        self.work: AsyncCollection[Doc] = db["work"]
        self.meta: AsyncCollection[Doc] = db["meta"]
        self.journal = Journal(db["changes"], db["index_positions"], clock=journal_clock)
        self.writes = LinkWrites(self.links, self.journal)
        path = index_path or DEFAULT_INDEX_DIR / f"{db.name}.sqlite"
        self.native = NativeListing(self.links, self.texts)
        # What answers while the accelerator rebuilds a bucket (terms kept spaced there).
        fallback = NativeListing(self.links, self.texts, spaced_terms=True)
        self.index = IndexListing(
            db, self.journal, path, fallback, clock=clock, heal_every=heal_every
        )
        self.listing = ChosenListing(db, ListingKind(listing), self.index, self.native)
        self.images = ImageStore(db)
        self.queries = QueryStore(db)
        self.queue = WorkQueue(db)
        self.rot = RotNews(db)
        self.prefs = PrefStore(db)
        self.updates: AsyncCollection[Doc] = db["seen_updates"]

    @classmethod
    def connect(
        cls,
        uri: str,
        *,
        timeout_ms: int = 5000,
        index_path: Path | str | None = None,
        index_dir: Path | str | None = None,
        listing: ListingKind | str = ListingKind.AUTO,
        clock: Callable[[], float] = time.time,
        heal_every: float | None = None,
        journal_clock: Callable[[], float] | None = None,
    ) -> LinkStore:
        """`index_path` names the derived index file; else one is chosen in `index_dir`
        (default ./data/index) for this server and database. `listing` says what answers
        /find (storage/index/listing.py)."""
        client: AsyncMongoClient[Doc] = AsyncMongoClient(
            uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, appname="linksnap"
        )
        db = client.get_default_database()
        path = index_path or default_index_path(uri, db.name, Path(index_dir or DEFAULT_INDEX_DIR))
        return cls(
            client,
            db,
            index_path=path,
            listing=listing,
            clock=clock,
            heal_every=heal_every,
            journal_clock=journal_clock,
        )

    async def close(self) -> None:
        await self.listing.close()
        await self._client.close()

    async def ping(self) -> None:
        await self.db.command("ping")

    async def ensure_indexes(self) -> None:
        """Indexes, the one-time migrations, then the listing's upkeep started."""
        await self.links.create_index(
            [("owner_id", ASCENDING), ("url_key", ASCENDING)], unique=True
        )
        await self.work.create_index([("status", ASCENDING), ("updated_at", ASCENDING)])
        await self.queue.ensure_indexes()
        await self.queries.ensure_indexes()
        native = await self.listing.is_native()
        await migrate(self.db, drop_listing_indexes=not native)
        if native:
            await self.native.ensure_indexes()
            await migrate_native(self.db)
        await self.listing.start()

    async def _terms_as_array(self) -> bool:
        return await self.listing.is_native()

    # -- writes ----------------------------------------------------------------------

    async def add_pending(self, record: LinkRecord) -> tuple[LinkRecord, bool]:
        """Insert `record` unless the owner has its url_key; merge tags either way.

        Returns the stored record and whether it was created now.
        """
        key = key_id(record.owner_id, record.url_key)
        for _ in range(4):
            merged = await self._merge_tags(key, record.owner_id, record.tags)
            if merged is not None:
                return merged, False
            if await self._insert_new(key, record):
                return LinkRecord.from_doc(light_doc(record)), True
        raise StoreConflict(f"could not record {record.url_key!r}")

    async def _merge_tags(self, key: str, owner_id: int, tags: list[str]) -> LinkRecord | None:
        found = await self.keys.find_one({"_id": key})
        if found is None:
            return None
        change = {"$addToSet": {"tags": {"$each": tags}}, "$set": {"updated_at": utcnow()}}
        doc = await self.writes.update_and_get(found["link_id"], change, owner_id)
        if doc is None:  # the link was deleted after its key was read
            await self.keys.delete_one({"_id": key})
            return None
        return LinkRecord.from_doc(doc)

    async def _insert_new(self, key: str, record: LinkRecord) -> bool:
        # The work entry first: a crash may leave an entry without a link (dropped when
        # claimed) but never a link in flight that nothing would resume.
        if str(record.status) in WORK_STATES:
            await self._work_put(record.id, record.owner_id, record.status, record.updated_at)
        as_array = await self._terms_as_array()

        async def text() -> None:
            if record.text or record.terms:
                doc = text_doc(record, terms_as_array=as_array)
                await self.texts.replace_one({"_id": record.id}, doc, upsert=True)

        try:
            await self.writes.insert(light_doc(record), first=text)
        except DuplicateKeyError:
            await self.texts.delete_one({"_id": record.id})
            await self.work.delete_one({"_id": record.id})
            await self._repair_key(key, record)
            return False
        try:
            await self.keys.insert_one(
                {"_id": key, "link_id": record.id, "owner_id": record.owner_id}
            )
        except DuplicateKeyError:  # another process recorded the same URL just now
            await self.writes.delete(record.id, record.owner_id)
            await self.texts.delete_one({"_id": record.id})
            await self.work.delete_one({"_id": record.id})
            return False
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
                {"_id": link_id},
                {
                    "$set": {"status": str(status), "updated_at": when},
                    "$unset": {"missing_since": ""},
                },
            )
            if done.matched_count:
                return  # the common case: a link moving on between in-flight states
            owner_id = await self.writes.owner_of(link_id)
            if owner_id is None:
                return  # the link is gone (deleted, or in the trash): no work for it
        # As an upsert that a feed of the import backlog inserting it first cannot fail.
        fields = {"status": str(status), "updated_at": when, "owner_id": owner_id}
        await set_by_id(self.work, link_id, fields)

    async def update(self, link_id: ObjectId, **fields: Any) -> None:
        """Set fields (dataclasses become sub-documents) and bump updated_at.

        A status past the pipeline's (done, failed) leaves the link's work entry in place:
        its stage drops it once the user has been told (`drop_work`), so a kill before
        that leaves the link to be claimed, found ended, and told then, not never."""
        values = {k: _stored(v) for k, v in fields.items()}
        now = utcnow()
        values["updated_at"] = now
        heavy = {k: values.pop(k) for k in HEAVY_FIELDS if k in values}
        status = values.get("status")
        if status in WORK_STATES:
            await self._work_put(link_id, None, status, now)

        async def text() -> None:
            if heavy:
                await self._put_text(link_id, heavy)

        if not await self.writes.update(link_id, {"$set": values}, first=text):
            # Gone (say moved to the trash while a stage ran): no work entry left behind.
            await self.work.delete_one({"_id": link_id})
            await self.texts.delete_one({"_id": link_id})

    async def _put_text(self, link_id: ObjectId, heavy: Doc) -> None:
        if "terms" in heavy and not await self._terms_as_array():
            heavy["terms"] = " ".join(heavy["terms"])
        owner = await self.writes.owner_of(link_id)
        if owner is not None:
            heavy["owner_id"] = owner
        await self.texts.update_one({"_id": link_id}, {"$set": heavy}, upsert=True)

    async def stored_files(self, link_id: ObjectId) -> Doc | None:
        """The link's screenshot and file references as stored now (for `save_capture`'s
        `replaced`, read before a photo's acknowledgement writes the new screenshot)."""
        return await self.links.find_one({"_id": link_id}, {"screenshot": 1, "original": 1})

    async def save_capture(
        self, record: LinkRecord, *, replaced: Doc | None = None, done: bool = False
    ) -> None:
        """A capture's result: page fields, text, screenshot, its terms, status captured
        (`done`: nothing follows, its photo is out and no summary is made, so done).

        One call for a capture's fields and its page's search terms. The bytes of the
        screenshot (and file) this capture replaces (`replaced`, else what is stored
        now) are freed once it is stored.
        """
        record.terms = record.page_terms()
        before = replaced if replaced is not None else await self.stored_files(record.id)
        shot = record.screenshot
        if shot is not None and shot.gridfs_id is not None and shot.size is None:
            shot.size = await self.images.size(shot.gridfs_id)
        await self.update(
            record.id,
            status=Status.DONE if done else Status.CAPTURED,
            final_url=record.final_url,
            http_status=record.http_status,
            title=record.title,
            description=record.description,
            site_name=record.site_name,
            lang=record.lang,
            screenshot=shot,
            kind=record.kind,
            partial=record.partial,
            original=record.original,
            error=None,
            text=record.text,
            terms=record.terms,
        )
        await self._free_replaced(before, record)

    async def _free_replaced(self, before: Doc | None, record: LinkRecord) -> None:
        kept = {f.gridfs_id for f in (record.screenshot, record.original) if f and f.gridfs_id}
        for name in ("screenshot", "original"):
            old = (before or {}).get(name) or {}
            image_id = old.get("gridfs_id") if isinstance(old, dict) else None
            if isinstance(image_id, ObjectId) and image_id not in kept:
                with contextlib.suppress(ImageNotFound):
                    await self.images.delete(image_id)

    async def mark_failed(self, link_id: ObjectId, error: str) -> None:
        await self.update(link_id, status=Status.FAILED, error=error[:300])

    async def set_alive(self, link_id: ObjectId, alive: bool | None) -> None:
        """A link-rot check's answer for a link read just now (see `record_check`)."""
        record = await self._load(link_id, with_text=False)
        if record is not None:
            await self.record_check(record, alive)

    async def record_check(
        self, record: LinkRecord, alive: bool | None, *, now: datetime | None = None
    ) -> None:
        """A link-rot check's answer: `checked_at` always (the round's cursor); None
        (unknown) records only that. A page found gone keeps the time it first was
        (`gone_at`), and its owner's news is written before the mark (storage/rot.py);
        a page that answers again loses both. `now`: the time of the answer (tests)."""
        now = now or utcnow()
        fields: dict[str, Any] = {"checked_at": now}
        if alive is True:
            fields.update(alive=True, gone_at=None)
        elif alive is False:
            fields["alive"] = False
            if record.alive is not False or record.gone_at is None:
                await self.rot.went_gone(record.owner_id, now)
                fields["gone_at"] = now
        self.writes.remember(record.id, record.owner_id)
        await self.update(record.id, **fields)

    async def start_attempt(self, link_id: ObjectId) -> None:
        now = utcnow()
        await self._work_put(link_id, None, Status.CAPTURING, now)
        change = {
            "$set": {"status": str(Status.CAPTURING), "updated_at": now},
            "$inc": {"attempts": 1},
        }
        if not await self.writes.update(link_id, change):
            await self.work.delete_one({"_id": link_id})

    async def set_tags(self, owner_id: int, link_id: ObjectId, tags: list[str]) -> bool:
        """Replace a link's tags (retag); False when the owner has no such link."""
        doc = await self.links.find_one({"_id": link_id}, {"owner_id": 1})
        if doc is None or doc["owner_id"] != owner_id:
            return False
        self.writes.remember(link_id, owner_id)
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

    async def insert_links(
        self, docs: list[Doc], records: list[LinkRecord]
    ) -> tuple[list[LinkRecord], list[Doc]]:
        """Insert new links (`docs`, as `light_doc` makes them from `records`) and the
        texts of those not refused as duplicates: one journal entry, announced first, and
        the listing told what was written (reading thousands back by `_id` would cost far
        more than the import). Returns the records inserted, with their documents.

        The texts go in before the links (after the announcement), as for every write: an
        index replaying the entry that reads a link must find its words too. Those of the
        links refused as duplicates are taken back."""
        as_array = await self._terms_as_array()
        texts = [text_doc(r, terms_as_array=as_array) for r in records]

        theirs: set[int] = set()  # texts there already (a link written before): kept

        async def texts_first() -> None:
            theirs.update(await insert_many_new(self.texts, texts))

        seq, refused = await self.writes.insert_many(docs, first=texts_first)
        if ours := [docs[i]["_id"] for i in refused - theirs]:
            await self.texts.delete_many({"_id": {"$in": ours}})
        kept = [i for i in range(len(docs)) if i not in refused]
        fresh, written = [records[i] for i in kept], [docs[i] for i in kept]
        await self.listing.written(seq, written, [list(r.terms) for r in fresh])
        return fresh, written

    # -- reads -----------------------------------------------------------------------

    async def load(self, link_id: ObjectId, *, with_text: bool = True) -> LinkRecord | None:
        """A link by id whoever owns it: for workers, never for a user's request.
        `with_text=False`: without its page text (one look-up less)."""
        return await self._load(link_id, with_text=with_text)

    async def set_siblings(self, link_ids: list[ObjectId]) -> None:
        """Links recorded from one message know each other (for its closing reaction)."""
        for link_id in link_ids:
            siblings = [i for i in link_ids if i != link_id]
            await self.writes.update(link_id, {"$set": {"siblings": siblings}})

    async def siblings_of(self, record: LinkRecord) -> list[LinkRecord]:
        found = [await self._load(i, with_text=False) for i in record.siblings]
        return [r for r in found if r is not None]

    async def first_delivery(self, update_id: int, poller: str = "") -> bool:
        """True the first time any front sees this update (webhook retries and several
        fronts behind one URL deliver some twice). A unique insert: atomic everywhere.

        `poller`: the polling process taking it. An update a poller before it took and
        never settled (`settle_update`) is its again: that poller died holding it, and
        Telegram sent it again because it was never confirmed."""
        key = f"u{update_id}"
        try:
            await self.updates.insert_one({"_id": key, "at": utcnow(), "by": poller})
        except DuplicateKeyError:
            if not poller:
                return False
            doc = await self.updates.find_one({"_id": key})
            if doc is None or doc.get("settled") or doc.get("by") in ("", poller):
                return False
            await self.updates.update_one({"_id": key}, {"$set": {"by": poller}})
            return True
        return True

    async def settle_update(self, update_id: int) -> None:
        """What the update asked for is safe (its links written): a repeat is skipped."""
        await self.updates.update_one({"_id": f"u{update_id}"}, {"$set": {"settled": True}})

    async def forget_updates(self, older_than: datetime) -> None:
        await self.updates.delete_many({"at": {"$lt": older_than}})

    async def drop_work(self, link_id: ObjectId, ended_at: datetime | None = None) -> None:
        """Nothing more will be tried for this link (it ended and the user was told, or
        its summary retries are used up). `ended_at`: the link's last write as the caller
        read it ended; an entry queued after that (🔄, or the link sent again, while its
        end was being told) is put back, not lost."""
        if ended_at is None:
            await self.work.delete_one({"_id": link_id})
            return
        doc = await self.work.find_one_and_delete({"_id": link_id})
        if doc is not None and _queued_after(doc, ended_at):
            with contextlib.suppress(DuplicateKeyError):  # queued again meanwhile
                await self.work.insert_one(doc)

    async def work_without_link(self, link_id: ObjectId, grace: float) -> bool:
        """A claimed work entry whose link is not there. True when it was dropped: its
        link has been missing for `grace` seconds (a crash between the two inserts, an
        import batch that failed part-way, a stage that wrote after its link went to the
        trash). The first sighting only marks it: an import writes work entries just
        before their links, and a link may be on its way back from the trash."""
        if await self.links.find_one({"_id": link_id}, {"_id": 1}) is not None:
            return False
        entry = await self.work.find_one({"_id": link_id})
        if entry is None:
            return True
        seen = entry.get("missing_since")
        now = utcnow()
        if not isinstance(seen, datetime):
            await self.work.update_one({"_id": link_id}, {"$set": {"missing_since": now}})
            return False
        if (now - seen).total_seconds() < grace:
            return False
        await self.work.delete_one({"_id": link_id, "missing_since": seen})
        log.info("dropped the work entry of %s: its link is gone", link_id)
        return True

    async def exists(self, link_id: ObjectId) -> bool:
        """Whether the link is still there (not deleted, not in the trash)."""
        return await self.links.find_one({"_id": link_id}, {"_id": 1}) is not None

    async def imported_unasked(self, link_id: ObjectId) -> bool | None:
        """Whether an import recorded this link (True) and no message has asked for it
        since (its source message still unset); None when the link is gone."""
        doc = await self.links.find_one({"_id": link_id}, {"imported": 1, "source_message_id": 1})
        if doc is None:
            return None
        return bool(doc.get("imported")) and doc.get("source_message_id") is None

    async def was_imported(self, link_id: ObjectId) -> bool:
        """Recorded by an import (not by a message, nor on the platform's pages)."""
        doc = await self.links.find_one({"_id": link_id}, {"imported": 1})
        return bool(doc and doc.get("imported"))

    async def link_id_for(self, owner_id: int, url_key: str) -> ObjectId | None:
        """The owner's link of this URL key, if they saved it."""
        found = await self.keys.find_one({"_id": key_id(owner_id, url_key)})
        return found["link_id"] if found is not None else None

    async def get(self, owner_id: int, link_id: ObjectId) -> LinkRecord | None:
        record = await self._load(link_id)
        return record if record is not None and record.owner_id == owner_id else None

    async def _load(self, link_id: ObjectId, *, with_text: bool = True) -> LinkRecord | None:
        doc = await self.links.find_one({"_id": link_id})
        if doc is None:
            return None
        self.writes.remember(link_id, int(doc["owner_id"]))
        if with_text:
            text = await self.texts.find_one({"_id": link_id})
            if text is not None:
                doc["text"] = text.get("text", "")
                doc["terms"] = split_terms(text.get("terms"))
        return LinkRecord.from_doc(doc)

    async def due_for_check(
        self, checked_before: datetime, limit: int = 50, skip: frozenset[ObjectId] = frozenset()
    ) -> list[LinkRecord]:
        """Saved links (CHECKED_STATES) not checked since `checked_before`: never-checked
        first (newest first, so an import's latest links lead), then the oldest checks.
        Links in `skip` (already in a round's hands) are left out without being read."""
        return (await self.due_batch(checked_before, limit, skip)).records

    async def due_batch(
        self,
        checked_before: datetime,
        limit: int = 50,
        skip: frozenset[ObjectId] = frozenset(),
        *,
        direct: bool = False,
    ) -> DueBatch:
        """`due_for_check`, saying too how many links the listing named (not in `skip`):
        more than were due means its view lagged behind the latest checks. `direct`: ask
        MongoDB itself rather than the listing index (slower at scale, never behind)."""
        out = []
        listing = self.native if direct else self.listing
        ids = await listing.due_for_check(CHECKED_STATES, checked_before, limit + len(skip))
        named = [i for i in ids if i not in skip][:limit]
        for link_id in named:
            record = await self._load(link_id, with_text=False)
            if record is None or str(record.status) not in CHECKED_STATES:
                continue
            if record.checked_at is None or record.checked_at < checked_before:
                out.append(record)
        return DueBatch(out, len(named))

    async def gone(self, owner_id: int, *, page: int = 0, page_size: int = 10) -> Page:
        """The owner's links marked gone (the last check found them offline), newest
        first: what the web library's "gone" filter shows."""
        found = await self.listing.gone(owner_id, page * page_size, page_size)
        items = [LinkRecord.from_doc(d) for d in found.docs]
        return Page(items=items, total=found.total, page=page, page_size=page_size)

    async def tag_counts(
        self, owner_id: int, limit: int = 100, *, stale_up_to: float = 0.0
    ) -> list[TagCount]:
        """The owner's tags, most used first; `stale_up_to`: seconds of lag behind the
        latest writes that the asker accepts for a cheaper answer (0: current)."""
        rows = await self.listing.tag_counts(owner_id, limit, stale_up_to=stale_up_to)
        return [TagCount(tag, n) for tag, n in rows]

    async def find(
        self, owner_id: int, tags: list[str], words: str = "", *, page: int = 0, page_size: int = 10
    ) -> Page:
        """Links carrying all `tags` (and all words' terms), newest first."""
        found = await self.listing.find(
            owner_id, tags, tokenize(words), page * page_size, page_size
        )
        items = [LinkRecord.from_doc(d) for d in found.docs]
        return Page(items=items, total=found.total, page=page, page_size=page_size)

    async def put_image(self, data: bytes, filename: str) -> ObjectId:
        return await self.images.put(data, filename)

    async def get_image(self, file_id: ObjectId) -> bytes:
        """The bytes; raises ImageNotFound (a LookupError) when there are none."""
        return await self.images.get(file_id)

"""Deleted links, held for a while so the user can undo, then gone with their files.

Hiding moves the link's document (and its `work` entry, if it is unfinished) out of
`links` into `trash` (`{_id: link id, owner_id, link, work, expires_at, chat_id,
message_id}`), so everything that lists links (/find, /tags,
inline, export) stops showing it at once, and the URL can be
saved afresh. Undo puts it back; purge deletes it with its page text and screenshot.
Both write `links` through storage/writes.py, announced in the journal first.

Undo and purge may race (the timer fires as the user taps ↩). Each first claims the trash
entry with one `delete_one` by `_id`, which removes a document at most once on MongoDB and
on FerretDB alike (no read-modify-write), and only the winner acts. A crash right after an
undo's claim loses that link (the user had deleted it); after a purge's claim it leaves
page text or image bytes behind, never a half-restored link.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from storage.artifacts import LinkFiles
from storage.errors import LinksnapError
from storage.images import ImageNotFound
from storage.keys import WORK_STATES, key_id
from storage.models import LinkRecord, utcnow
from storage.repository import LinkStore
from storage.thumbs import Thumbnails

Doc = dict[str, Any]


class UndoExpired(LinksnapError, LookupError):
    """Nothing to undo: the link was purged, or was never this user's."""


class AlreadyRestored(LinksnapError):
    """The link is back already (an earlier ↩ did it)."""


class UndoConflict(LinksnapError):
    """The user saved the same URL again meanwhile; the deleted copy cannot come back."""


@dataclass(frozen=True)
class Trashed:
    record: LinkRecord
    chat_id: int | None
    message_id: int | None
    expires_at: datetime


def _trashed(entry: Doc) -> Trashed:
    return Trashed(
        record=LinkRecord.from_doc(entry["link"]),
        chat_id=entry.get("chat_id"),
        message_id=entry.get("message_id"),
        expires_at=entry["expires_at"],
    )


class Trash:
    def __init__(self, store: LinkStore) -> None:
        self.store = store
        self.entries: AsyncCollection[Doc] = store.db["trash"]

    async def hide(
        self,
        owner_id: int,
        link_id: ObjectId,
        *,
        keep_for: timedelta,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> Trashed | None:
        """Hide the owner's link for `keep_for`; None when the owner has no such link."""
        store = self.store
        doc = await store.links.find_one({"_id": link_id})
        if doc is None or doc.get("owner_id") != owner_id:
            return None
        # An imported link may still wait in the queue's backlog (storage/queue/claims.py).
        work = await store.work.find_one({"_id": link_id}) or await store.queue.backlog.find_one(
            {"_id": link_id}
        )
        entry = {
            "_id": link_id,
            "owner_id": owner_id,
            "link": doc,
            "work": work,  # its place in the queue, lease and all, for an undo
            "expires_at": utcnow() + keep_for,
            "chat_id": chat_id,
            "message_id": message_id,
        }
        # The trash entry first: a crash after it leaves the link in both places, which
        # undo and purge both handle; the reverse order could lose it.
        await self.entries.replace_one({"_id": link_id}, entry, upsert=True)
        await store.writes.delete(link_id, owner_id)
        key = key_id(owner_id, doc["url_key"])
        found = await store.keys.find_one({"_id": key})
        if found is not None and found.get("link_id") == link_id:
            await store.keys.delete_one({"_id": key})
        await store.work.delete_one({"_id": link_id})
        await store.queue.backlog.delete_one({"_id": link_id})
        return _trashed(entry)

    async def restore(self, owner_id: int, link_id: ObjectId) -> LinkRecord:
        """Put a hidden link back; AlreadyRestored, UndoExpired or UndoConflict when it
        cannot be."""
        store = self.store
        entry = await self.entries.find_one({"_id": link_id})
        if entry is None or entry.get("owner_id") != owner_id:
            await self._gone_or_back(owner_id, link_id)
        doc: Doc = entry["link"]
        key = key_id(owner_id, doc["url_key"])
        if await store.keys.find_one({"_id": key}) is not None:
            raise UndoConflict(str(link_id))  # saved again meanwhile; the timer purges this one
        if not await self._claim(link_id):
            await self._gone_or_back(owner_id, link_id)  # the timer, or another ↩, first
        try:
            await store.keys.insert_one({"_id": key, "link_id": link_id, "owner_id": owner_id})
        except DuplicateKeyError:
            await self._drop_files(_trashed(entry))  # saved again this very moment
            raise UndoConflict(str(link_id)) from None
        await store.writes.restore(doc)
        work = entry.get("work")
        if isinstance(work, dict):
            await store.work.replace_one({"_id": link_id}, work, upsert=True)
        elif str(doc.get("status")) in WORK_STATES:
            fields = {
                "status": str(doc.get("status")),
                "updated_at": utcnow(),
                "owner_id": owner_id,
            }
            await store.work.update_one({"_id": link_id}, {"$set": fields}, upsert=True)
        return LinkRecord.from_doc(doc)

    async def _gone_or_back(self, owner_id: int, link_id: ObjectId) -> NoReturn:
        """Why there is nothing to undo: raises AlreadyRestored or UndoExpired."""
        doc = await self.store.links.find_one({"_id": link_id}, {"owner_id": 1})
        if doc is not None and doc.get("owner_id") == owner_id:
            raise AlreadyRestored(str(link_id))
        raise UndoExpired(str(link_id))

    async def _claim(self, link_id: ObjectId) -> bool:
        """Take the entry out of the trash; True for exactly one of racing callers."""
        done = await self.entries.delete_one({"_id": link_id})
        return done.deleted_count == 1

    async def purge(self, link_id: ObjectId) -> Trashed | None:
        """Delete a hidden link for good, with its text and screenshot; None when it was
        restored or purged already."""
        entry = await self.entries.find_one({"_id": link_id})
        if entry is None or not await self._claim(link_id):
            return None
        trashed = _trashed(entry)
        await self._drop_files(trashed)
        return trashed

    async def _drop_files(self, trashed: Trashed) -> None:
        link_id = trashed.record.id
        await self.store.texts.delete_one({"_id": link_id})
        shot = trashed.record.screenshot
        if shot is not None and shot.gridfs_id is not None:
            with contextlib.suppress(ImageNotFound):
                await self.store.images.delete(shot.gridfs_id)
            await Thumbnails(self.store.db).drop(shot.gridfs_id)
        original = trashed.record.original  # a PDF or image link's file, and files made
        if original is not None and original.gridfs_id is not None:
            await self.store.images.delete(original.gridfs_id)
        await LinkFiles(self.store.db).drop(link_id)

    async def expired(self, now: datetime | None = None, limit: int = 200) -> list[ObjectId]:
        """Ids whose undo time is over (the trash is small: only the last minute's deletes,
        and what a stopped process left)."""
        when = now or utcnow()
        ids: list[ObjectId] = []
        async for entry in self.entries.find({}, {"expires_at": 1}):
            if entry["expires_at"] <= when:
                ids.append(entry["_id"])
            if len(ids) >= limit:
                break
        return ids

    async def get(self, owner_id: int, link_id: ObjectId) -> Trashed | None:
        entry = await self.entries.find_one({"_id": link_id})
        if entry is None or entry.get("owner_id") != owner_id:
            return None
        return _trashed(entry)

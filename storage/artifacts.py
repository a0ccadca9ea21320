"""Files made from a link's page on demand (full page, PDF print, MHTML archive).

One small document per (link, kind) in `link_files`, looked up by `_id` (the one query
FerretDB v1 answers from an index); the bytes live with the screenshots
(storage/images.py). `of_shot` names the snapshot the file belongs to: after the link is
captured again, the old file is no longer offered and the next press makes a new one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.images import ImageStore
from storage.models import StoredFile, utcnow

Doc = dict[str, Any]
KINDS = ("full_page", "pdf", "mhtml")  # bot.browser.types.ArtifactKind values


@dataclass
class LinkFile:
    """A made file and what its caption says about it."""

    link_id: ObjectId
    kind: str
    file: StoredFile
    of_shot: ObjectId | None = None
    partial: bool = False
    truncated_at: int | None = None  # a full page cut at this height
    made_at: datetime | None = None


def file_key(link_id: ObjectId, kind: str) -> str:
    return f"{link_id}:{kind}"


class LinkFiles:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.coll = db["link_files"]
        self.images = ImageStore(db)

    async def get(self, link_id: ObjectId, kind: str, of_shot: ObjectId | None) -> LinkFile | None:
        """The file made for this snapshot of the link, if any."""
        doc = await self.coll.find_one({"_id": file_key(link_id, kind)})
        if doc is None or doc.get("of_shot") != of_shot:
            return None
        return LinkFile(
            link_id=doc["link_id"],
            kind=doc["kind"],
            file=StoredFile(**doc["file"]),
            of_shot=doc.get("of_shot"),
            partial=bool(doc.get("partial")),
            truncated_at=doc.get("truncated_at"),
            made_at=doc.get("made_at"),
        )

    async def put(self, made: LinkFile, data: bytes) -> LinkFile:
        """Keep the bytes, then the document naming them (replacing an older file's)."""
        made.file.gridfs_id = await self.images.put(data, made.file.file_name)
        made.made_at = utcnow()
        key = {"_id": file_key(made.link_id, made.kind)}
        try:
            old = await self.coll.find_one_and_replace(key, self._doc(made), upsert=True)
        except DuplicateKeyError:
            # FerretDB v1 upserts as find-then-insert: a file made at the same moment (a
            # second press, another worker) was inserted first. Replace that one.
            old = await self.coll.find_one_and_replace(key, self._doc(made))
        if old is not None and old.get("file", {}).get("gridfs_id") is not None:
            await self.images.delete(old["file"]["gridfs_id"])
        return made

    async def read(self, made: LinkFile) -> bytes:
        """The bytes (raises storage.images.ImageNotFound, a LookupError, when gone)."""
        assert made.file.gridfs_id is not None
        return await self.images.get(made.file.gridfs_id)

    async def sent(self, made: LinkFile, file_id: str, file_unique_id: str | None) -> None:
        """Telegram has the file: later presses send it by `file_id`."""
        made.file.file_id, made.file.file_unique_id = file_id, file_unique_id
        await self.coll.update_one(
            {"_id": file_key(made.link_id, made.kind)},
            {"$set": {"file.file_id": file_id, "file.file_unique_id": file_unique_id}},
        )

    async def forget_file_id(self, made: LinkFile) -> None:
        """Telegram no longer knows the file_id: the next send uploads the bytes again."""
        made.file.file_id = made.file.file_unique_id = None
        await self.coll.update_one(
            {"_id": file_key(made.link_id, made.kind)},
            {"$set": {"file.file_id": None, "file.file_unique_id": None}},
        )

    async def drop(self, link_id: ObjectId) -> None:
        """Every file made for the link, with its bytes (the link is deleted for good)."""
        for kind in KINDS:
            doc = await self.coll.find_one_and_delete({"_id": file_key(link_id, kind)})
            gridfs_id = (doc or {}).get("file", {}).get("gridfs_id")
            if gridfs_id is not None:
                await self.images.delete(gridfs_id)

    @staticmethod
    def _doc(made: LinkFile) -> Doc:
        doc = asdict(made)
        doc["_id"] = file_key(made.link_id, made.kind)
        return doc

"""Screenshot bytes, stored so that reading one back is a few `_id` look-ups.

GridFS reads a file's chunks with `find({files_id})`, which FerretDB v1 answers by
scanning every chunk of every screenshot. Here each chunk's `_id` is derived from the
image's id, so a read is one look-up for the header and one per 4 MB chunk, on FerretDB
as on MongoDB. Images stored in GridFS before this layout are still read from there.
"""

from __future__ import annotations

import contextlib
from typing import Any

from bson import Binary, ObjectId
from gridfs import AsyncGridFSBucket, NoFile
from pymongo.asynchronous.database import AsyncDatabase

from storage.errors import LinksnapError
from storage.models import utcnow

Doc = dict[str, Any]
CHUNK = 4 * 1024 * 1024  # well under MongoDB's 16 MB document limit


class ImageNotFound(LinksnapError, LookupError):
    """No screenshot bytes under that id."""


def chunk_id(image_id: ObjectId, n: int) -> str:
    return f"{image_id}:{n:05d}"


class ImageStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.headers = db["images"]
        self.chunks = db["image_chunks"]
        self.legacy = AsyncGridFSBucket(db, bucket_name="screenshots")
        self.legacy_headers = db["screenshots.files"]

    async def put(self, data: bytes, filename: str) -> ObjectId:
        image_id = ObjectId()
        parts = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
        await self.chunks.insert_many(
            [{"_id": chunk_id(image_id, n), "data": Binary(p)} for n, p in enumerate(parts)]
        )
        # The header last: an image whose header exists has all its chunks.
        await self.headers.insert_one(
            {
                "_id": image_id,
                "filename": filename,
                "length": len(data),
                "chunks": len(parts),
                "created_at": utcnow(),
            }
        )
        return image_id

    async def get(self, image_id: ObjectId) -> bytes:
        header = await self.headers.find_one({"_id": image_id})
        if header is None:
            return await self._legacy(image_id)
        parts = []
        for n in range(int(header["chunks"])):
            doc = await self.chunks.find_one({"_id": chunk_id(image_id, n)})
            if doc is None:
                raise ImageNotFound(f"chunk {n} of image {image_id} is missing")
            parts.append(bytes(doc["data"]))
        return b"".join(parts)

    async def size(self, image_id: ObjectId) -> int | None:
        """Bytes of an image, from its header (None when there is no such image)."""
        header = await self.headers.find_one({"_id": image_id}, {"length": 1})
        if header is not None:
            return int(header.get("length") or 0)
        legacy = await self.legacy_headers.find_one({"_id": image_id}, {"length": 1})
        return int(legacy.get("length") or 0) if legacy is not None else None

    async def delete(self, image_id: ObjectId) -> None:
        """Remove the bytes (header first: a half-deleted image reads as missing)."""
        header = await self.headers.find_one_and_delete({"_id": image_id})
        if header is not None:
            for n in range(int(header["chunks"])):
                await self.chunks.delete_one({"_id": chunk_id(image_id, n)})
            return
        with contextlib.suppress(NoFile):  # never stored, or already gone
            await self.legacy.delete(image_id)

    async def _legacy(self, image_id: ObjectId) -> bytes:
        try:
            stream = await self.legacy.open_download_stream(image_id)
        except NoFile as exc:
            raise ImageNotFound(f"no image {image_id}") from exc
        return await stream.read()

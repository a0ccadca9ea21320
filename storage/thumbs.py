"""Thumbnails of screenshots, made once and kept beside them (storage/images.py).

`thumbnails` maps a screenshot's image id to its thumbnail's: `{_id: screenshot id,
image_id}`. Keyed by the screenshot, so a link captured again gets a new thumbnail and
the old one goes with the old screenshot.
"""

from __future__ import annotations

import contextlib
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.images import ImageNotFound, ImageStore

Doc = dict[str, Any]


class Thumbnails:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.coll = db["thumbnails"]
        self.images = ImageStore(db)

    async def get(self, shot_id: ObjectId) -> bytes | None:
        doc = await self.coll.find_one({"_id": shot_id})
        if doc is None:
            return None
        try:
            return await self.images.get(doc["image_id"])
        except ImageNotFound:
            return None

    async def put(self, shot_id: ObjectId, data: bytes) -> None:
        """Keep `data` as the thumbnail of `shot_id` (a racing maker's copy is kept instead)."""
        image_id = await self.images.put(data, f"{shot_id}-thumb.jpg")
        try:
            await self.coll.insert_one({"_id": shot_id, "image_id": image_id})
        except DuplicateKeyError:
            await self.images.delete(image_id)

    async def drop(self, shot_id: ObjectId) -> None:
        doc = await self.coll.find_one_and_delete({"_id": shot_id})
        if doc is not None:
            with contextlib.suppress(ImageNotFound):
                await self.images.delete(doc["image_id"])

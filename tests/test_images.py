"""Screenshot bytes come back exactly, including images stored in GridFS before."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bson import ObjectId
from gridfs import AsyncGridFSBucket

from storage.images import CHUNK, ImageNotFound
from storage.repository import LinkStore


async def test_images_round_trip_and_old_gridfs_ones_still_read(
    mongodb_uri: str, tmp_path: Path
) -> None:
    store = LinkStore.connect(mongodb_uri, index_path=tmp_path / "i.sqlite")
    try:
        big = os.urandom(2 * CHUNK + 12345)  # three chunks
        small = b"\xff\xd8 a jpeg"
        big_id = await store.put_image(big, "big.jpg")
        small_id = await store.put_image(small, "small.jpg")
        assert await store.get_image(big_id) == big
        assert await store.get_image(small_id) == small
        assert await store.get_image(await store.put_image(b"", "empty.jpg")) == b""

        old = AsyncGridFSBucket(store.db, bucket_name="screenshots")
        old_id = await old.upload_from_stream("old.jpg", b"stored before the change")
        assert await store.get_image(old_id) == b"stored before the change"

        with pytest.raises(ImageNotFound):
            await store.get_image(ObjectId())
    finally:
        await store.close()

"""Shelves: the listing index's rows kept in MongoDB, one compressed copy per owner bucket,
so a new process answers from them in a moment instead of reading every link.

On FerretDB v1 any owner filter reads every document of a collection (tens of seconds at
100 000 links), but an `_id` look-up is indexed. A shelf is `index_shelf_heads/b<n>`
(`{gen, parts, position, epoch, format, rows}`) plus its parts `index_shelves/<n>:<gen>:<k>`
(each the zlib'd BSON of some of the bucket's rows, at most 4 MB, read on its own): a few
`_id` look-ups give one bucket's rows as they stood at journal `position`, and the
journal from there brings them up to date. A restore stores each part's rows while
FerretDB reads the next (a new front's first answer waits for its asker's bucket). A
process with a complete index writes them: every bucket after a rebuild, then in turns
the buckets that changed (storage/index/upkeep.py). Written parts first, then the head,
then the old parts deleted: a reader sees one whole generation or retries.
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import bson
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.errors import LinksnapError
from storage.index.catalog import CODEC, Row
from storage.index.rows import in_thread
from storage.models import utcnow

Doc = dict[str, Any]
PART = 4 * 1024 * 1024
ROWS_PER_PART = 1500  # fewer when they pack to more than PART
FORMAT = "2"  # parts and rows (storage/index/catalog.py's Row); another one is not read


class ShelfReplaced(LinksnapError):
    """A part of the shelf being read is gone: a newer shelf replaced it meanwhile."""


@dataclass(frozen=True)
class Head:
    bucket: int
    gen: str
    parts: int
    position: int
    epoch: str
    rows: int
    at: datetime


@dataclass(frozen=True)
class Shelf:
    rows: list[Row]
    waits: list[tuple[str, int]]  # writes the shelf's index was still waiting for


def _head(doc: Doc) -> Head | None:
    if doc.get("format") != FORMAT:
        return None
    return Head(
        bucket=int(str(doc["_id"])[1:]),
        gen=str(doc["gen"]),
        parts=int(doc["parts"]),
        position=int(doc["position"]),
        epoch=str(doc["epoch"]),
        rows=int(doc.get("rows", 0)),
        at=doc.get("at") or utcnow(),
    )


def _pack(rows: list[Row], waits: list[tuple[str, int]]) -> bytes:
    payload = bson.encode({"r": [list(r) for r in rows], "w": [list(w) for w in waits]})
    return zlib.compress(payload, 1)


def _pack_parts(rows: list[Row], waits: list[tuple[str, int]]) -> list[bytes]:
    """The rows in parts that each unpack alone (the waits go with the first)."""
    out: list[bytes] = []
    pending = [rows[i : i + ROWS_PER_PART] for i in range(0, len(rows), ROWS_PER_PART)] or [[]]
    while pending:
        chunk = pending.pop(0)
        data = _pack(chunk, [] if out else waits)
        if len(data) > PART and len(chunk) > 1:
            half = len(chunk) // 2
            pending[:0] = [chunk[:half], chunk[half:]]
            continue
        out.append(data)
    return out


def _unpack(data: bytes) -> Shelf:
    payload = bson.decode(zlib.decompress(data), codec_options=CODEC)
    rows: list[Row] = [
        (str(i), int(o), int(c), str(s), ch, int(fp), str(t), [str(x) for x in tags], bytes(d))
        for i, o, c, s, ch, fp, t, tags, d in payload["r"]
    ]
    return Shelf(rows, [(str(i), int(s)) for i, s in payload["w"]])


class Shelves:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.heads: AsyncCollection[Doc] = db["index_shelf_heads"]
        self.parts: AsyncCollection[Doc] = db["index_shelves"]

    async def all_heads(self) -> dict[int, Head]:
        """Every bucket's head (a small collection: one document per bucket)."""
        out: dict[int, Head] = {}
        async for doc in self.heads.find({}):
            head = _head(doc)
            if head is not None:
                out[head.bucket] = head
        return out

    async def head(self, bucket: int) -> Head | None:
        doc = await self.heads.find_one({"_id": f"b{bucket}"})
        return _head(doc) if doc is not None else None

    async def pieces(self, head: Head) -> AsyncIterator[Shelf]:
        """The shelf's parts in order, each unpacked once read while FerretDB reads the
        next ones (each on its own core). ShelfReplaced when one is gone."""
        reads = [
            asyncio.ensure_future(self.parts.find_one({"_id": f"{head.bucket}:{head.gen}:{n}"}))
            for n in range(head.parts)
        ]
        try:
            for read in reads:
                doc = await read
                if doc is None:
                    raise ShelfReplaced(head.bucket)
                yield await in_thread(_unpack, bytes(doc["data"]))
        finally:
            for read in reads:
                read.cancel()
            await asyncio.gather(*reads, return_exceptions=True)

    async def write(
        self, bucket: int, epoch: str, position: int, rows: list[Row], waits: list[tuple[str, int]]
    ) -> None:
        parts = await in_thread(_pack_parts, rows, waits)
        gen = uuid.uuid4().hex[:12]
        for n, part in enumerate(parts):
            await self.parts.insert_one({"_id": f"{bucket}:{gen}:{n}", "data": bson.Binary(part)})
        head = {
            "gen": gen,
            "parts": len(parts),
            "position": position,
            "epoch": epoch,
            "format": FORMAT,
            "rows": len(rows),
            "at": utcnow(),
        }
        try:
            before = await self.heads.find_one_and_replace({"_id": f"b{bucket}"}, head, upsert=True)
        except DuplicateKeyError:  # FerretDB's find-then-insert upsert met another writer's
            before = await self.heads.find_one_and_replace({"_id": f"b{bucket}"}, head)
        if before is not None:
            await self._drop(bucket, str(before.get("gen")), int(before.get("parts", 0)))

    async def restamp(self, head: Head, position: int) -> None:
        """Nothing in the bucket changed between the shelf's position and `position`."""
        await self.heads.update_one(
            {"_id": f"b{head.bucket}", "gen": head.gen}, {"$set": {"position": position}}
        )

    async def _drop(self, bucket: int, gen: str, parts: int) -> None:
        for n in range(parts):
            await self.parts.delete_one({"_id": f"{bucket}:{gen}:{n}"})

"""What a link becomes in the listing index, and the small pieces every part of its
upkeep shares (storage/index/search.py, rebuild.py, heal.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import bson

from storage.index.catalog import CODEC, Entry, fingerprint
from storage.keys import HEAVY_FIELDS, INTERNAL_FIELDS
from storage.models import Status

Doc = dict[str, Any]
T = TypeVar("T")
Keep = Callable[[int], bool]  # whether the index holds a bucket now


def entry_of(doc: Doc, terms: Sequence[str], raw: bytes | None = None) -> Entry:
    """The index's row for a link document (`raw`: its BSON as MongoDB returned it)."""
    listing = {k: v for k, v in doc.items() if k not in HEAVY_FIELDS and k not in INTERNAL_FIELDS}
    return Entry(
        id=str(doc["_id"]),
        owner_id=int(doc["owner_id"]),
        created_at=doc["created_at"],
        status=str(doc.get("status", Status.PENDING)),
        checked_at=doc.get("checked_at"),
        tags=[str(t) for t in doc.get("tags", [])],
        terms=list(terms),
        doc=listing,
        fp=fingerprint(raw if raw is not None else bson.encode(doc, codec_options=CODEC)),
    )


def split_terms(value: object) -> list[str]:
    """Terms as stored: one space-joined string (FerretDB), or an array (MongoDB, and
    documents from before the split)."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


@dataclass(frozen=True)
class Wait:
    """The newest journal entry naming a link: its number, and whether it deletes it."""

    seq: int
    gone: bool


@dataclass(frozen=True)
class Read:
    doc: Doc
    raw: bytes
    terms: list[str]


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a worker thread. A cancel waits for the call to end before it goes
    on: the lock held around it must not pass to another user of the connection (or to
    `close`) while SQLite still runs it."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


def keeper(ready: set[int] | None) -> Keep:
    if ready is None:
        return lambda bucket: True
    return lambda bucket: bucket in ready


def raw_id(raw: bytes) -> str:
    """A link document's `_id` as hex, from its BSON: MongoDB and FerretDB return it
    first, so nothing else is decoded."""
    if raw[4] == 0x07 and raw[5:9] == b"_id\x00":
        return raw[9:21].hex()
    return str(bson.decode(raw, codec_options=CODEC)["_id"])

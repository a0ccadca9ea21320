"""What a link becomes in the listing index, and the small pieces every part of its
upkeep shares (storage/index/search.py, rebuild.py, heal.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import bson
from bson import ObjectId

from storage.index.catalog import CODEC, Entry, bucket_of, fingerprint
from storage.index.journal import Change
from storage.keys import HEAVY_FIELDS, INTERNAL_FIELDS
from storage.models import Status

Doc = dict[str, Any]
T = TypeVar("T")
Keep = Callable[[int], bool]  # whether the index holds a bucket now
# Seconds an announced write may take to land (a write blocked in the driver: server
# selection and its one retry). After that its writer is taken for dead.
SETTLE_LIMIT = 120.0


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
    bucket: int | None = None  # whose, where known (a link not written yet has no row)


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
        # Cancelled again while waiting (a gather cancelled, then its tasks): wait still.
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
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


def waits_of(changes: Sequence[Change], keep: Keep) -> dict[ObjectId, Wait]:
    """Each link named by these entries (of a bucket kept, where the writer said whose),
    with the newest entry naming it."""
    out: dict[ObjectId, Wait] = {}
    for change in changes:
        if change.owners and not any(keep(bucket_of(o)) for o in change.owners):
            continue
        buckets = {bucket_of(o) for o in change.owners}
        bucket = buckets.pop() if len(buckets) == 1 else None
        for link_id in change.ids:
            # A heal names links already changed: nothing more to wait for.
            out[link_id] = Wait(0 if change.heal else change.seq, change.gone, bucket)
    return out

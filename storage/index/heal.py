"""The heal pass: what reached `links` behind the journal's back reaches the index.

Every write the bot makes is announced in the journal first (storage/writes.py), so the
replay cannot miss it. A hand edit in the database, a restored backup of `links`, or a
write from an older version of the bot is named by no entry: this pass reads every link
document once (as raw BSON: nothing decoded here) and compares each one's fingerprint
with the index's row. The links that differ or are gone are announced in the journal
(a `heal` entry), as a write would be: this index and every other one reads them again
by `_id` on its next replay, so one pass also serves indexes on other machines.

Its cost is one read of `links`: on FerretDB v1 every document is decoded in Go, so it
grows with the collection (measured in docs/BENCHMARKS.md); upkeep (storage/index/upkeep.py)
spaces the passes so that cost stays a bounded share of the time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from bson import ObjectId

from storage.index.catalog import Catalog, fingerprint
from storage.index.rows import raw_id
from storage.index.view import IndexView

log = logging.getLogger(__name__)
_BATCH = 2000
_ANNOUNCE = 500  # link ids per journal entry


@dataclass(frozen=True)
class Healed:
    scanned: int
    fixed: int  # rows rewritten or dropped
    seconds: float


async def heal(listing: IndexView) -> Healed:
    """One pass; returns what it did."""
    started = time.monotonic()
    await listing.sync()
    held, top = await listing.locked(lambda c: c.fingerprints())
    differ: list[str] = []
    seen: set[str] = set()
    async for raw in listing.links_raw.find({}, batch_size=_BATCH):
        data = bytes(raw.raw)
        link_id = raw_id(data)
        seen.add(link_id)
        if held.get(link_id) != fingerprint(data):
            differ.append(link_id)
    gone = [i for i in held if i not in seen]
    ids: list[ObjectId] = []
    if differ or gone:

        def settled(catalog: Catalog) -> list[str]:
            # Rows written after the pass began are newer than what it read; a link
            # still unsettled is read on every sync until its write lands.
            waiting = {i for i, *_ in catalog.unsettled()}
            return [i for i in [*differ, *catalog.rows_upto(gone, top)] if i not in waiting]

        ids = [ObjectId(i) for i in await listing.locked(settled)]
    for start in range(0, len(ids), _ANNOUNCE):
        # Announced like a write: this index and every other one reads them again.
        await listing.journal.append(ids[start : start + _ANNOUNCE], heal=True)
    if ids:
        await listing.sync()
    seconds = time.monotonic() - started
    log.log(
        logging.INFO if ids else logging.DEBUG,
        "search index: heal pass read %d links in %.1f s, %d changed behind the journal",
        len(seen),
        seconds,
        len(ids),
    )
    return Healed(len(seen), len(ids), seconds)

"""The heal pass: what reached `links` behind the journal's back reaches the index.

Every write the bot makes is announced in the journal first (storage/writes.py), so the
replay cannot miss it. A hand edit in the database, a restored backup of `links`, or a
write from an older version of the bot is named by no entry: this pass reads every link
document once (as raw BSON: nothing decoded here), compares each one's fingerprint with
the index's row, and reads again by `_id`, under the index's lock, only the links that
differ or are gone. It reads nothing else, and takes the lock only to fix.

Its cost is one read of `links`: on FerretDB v1 every document is decoded in Go, so it
grows with the collection (measured in docs/BENCHMARKS.md); upkeep (storage/upkeep.py)
spaces the passes so that cost stays a bounded share of the time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bson import ObjectId

from storage.catalog import Catalog, fingerprint
from storage.rows import Wait, keeper, raw_id

if TYPE_CHECKING:
    from storage.search import IndexListing

log = logging.getLogger(__name__)
_BATCH = 2000


@dataclass(frozen=True)
class Healed:
    scanned: int
    fixed: int  # rows rewritten or dropped
    seconds: float


async def heal(listing: IndexListing) -> Healed:
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
    fixed = 0
    if differ or gone:
        async with listing._lock:
            catalog = await listing.open()
            # Rows written after the pass began are newer than what it read.
            gone = await listing._run(catalog.rows_upto, gone, top)
            waiting = {i for i, *_ in await listing._run(catalog.unsettled)}
            # A link still unsettled is read on every sync until its write lands.
            ids = [ObjectId(i) for i in [*differ, *gone] if i not in waiting]
            if ids:
                fixed = len(ids)
                await _fix(listing, catalog, ids)
    seconds = time.monotonic() - started
    log.log(
        logging.INFO if fixed else logging.DEBUG,
        "search index: heal pass read %d links in %.1f s, fixed %d",
        len(seen),
        seconds,
        fixed,
    )
    return Healed(len(seen), fixed, seconds)


async def _fix(listing: IndexListing, catalog: Catalog, ids: list[ObjectId]) -> None:
    await listing._run(catalog.begin)
    try:
        state = await listing._run(catalog.state, await listing.epoch())
        position = state[0] if state else 0
        keep = keeper(await listing._run(catalog.ready))
        # Wait(0): nothing announced to wait for; store what is there now.
        await listing.settle(catalog, {i: Wait(0, False) for i in ids}, keep, position)
        await listing._run(catalog.commit)
    except BaseException:
        await listing._run(catalog.rollback)
        raise

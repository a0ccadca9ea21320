"""Files a front ordered (📄 full page, 🖨 PDF, 🗄 archive), made by a worker's browser.

A front has no browser: its file buttons and the pages' file requests order the file
(storage/queue/orders.py) and wait for it in `link_files`. Each worker with a browser
runs this loop beside its claim loops: claim the oldest order, make the file exactly as
the chat's button would (bot/library/artifacts.py), and
close the order, or leave on it why the page could not be made into the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pymongo.errors import PyMongoError

from bot.browser.errors import CaptureError, Failure
from bot.browser.types import ArtifactKind
from bot.library import artifacts
from bot.pipeline.base import Pipeline
from storage.queue.orders import FileOrder, FileOrders

log = logging.getLogger(__name__)

LEASE = 300.0  # seconds: a file takes at most a capture's budget; then another may try
IDLE_POLL = 1.0  # seconds between looks for orders (another process writes them)


async def make_ordered(p: Pipeline, worker: str) -> None:
    """Until the process stops: make what fronts have ordered."""
    orders = FileOrders(p.store.db)
    stopping = p.outbound.stopping
    while not stopping.is_set():
        order = None
        if p.capturer is not None:
            try:
                order = await orders.claim(worker, LEASE)
            except PyMongoError as exc:
                log.warning("claiming a file order failed (%s)", type(exc).__name__)
        if order is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), IDLE_POLL)
            continue
        try:
            await _make(p, orders, order)
        except PyMongoError as exc:  # the order stays; its lease runs out and it is retried
            log.warning("a file order was left for later (%s)", type(exc).__name__)


async def _make(p: Pipeline, orders: FileOrders, order: FileOrder) -> None:
    record = await p.store.get(order.owner_id, order.link_id)
    if record is None or record.kind != "page":
        await orders.done(order)  # deleted meanwhile (or not a page): nobody gets a file
        return
    kind = ArtifactKind(order.kind)
    try:
        # Not under artifacts.making: the asker holds that lock while it waits (in one
        # process, as in the tests, taking it here would wait for ourselves), and the
        # order's claim already makes this worker the one maker.
        await artifacts.ready(p.store, p.capturer, record, kind, locale=order.locale)
    except CaptureError as exc:
        await orders.failed(order, str(exc.reason), exc.detail)
        return
    except PyMongoError:
        raise
    except Exception:
        log.exception("making an ordered %s failed", order.kind)
        await orders.failed(order, str(Failure.INTERNAL), "")
        return
    await orders.done(order)

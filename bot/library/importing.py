"""A bookmark file imported for its user: fetched, read aside, its links recorded, and
the user told how it went in one progress message.

The file is written down before anything else (storage/queue/imports.py): a process
killed mid-import, after Telegram was told the update arrived, leaves the order, and a
front imports the file again (`resume`) under the same progress message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.errors import PyMongoError
from telegram import ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden
from telegram.ext import ExtBot

from bot.chat import render
from bot.chat.outbound import Outbound, Priority
from bot.chat.progress import ProgressMessage
from bot.guard.netguard import NetGuard
from bot.i18n import Texts, texts_for
from bot.library import import_reader
from bot.library.bookmarks import BadEncoding, ImportRefused, Malformed, NoLinks, TooDeep, TooMany
from bot.library.transfer import MAX_IMPORT_MB, ImportCounts, ImportStopped, import_links
from bot.tags import MAX_TAGS_PER_LINK
from storage.queue.imports import MAX_TRIES, ImportOrder, ImportOrders
from storage.repository import LinkStore

log = logging.getLogger(__name__)

HOLDER = uuid.uuid4().hex  # this process, as the holder of the imports it runs
LEASE = 60.0  # seconds; renewed every LEASE / 4 while the file is imported

# A database call retried while the database is away (the pipeline's `durably`).
Durably = Callable[[Callable[[], Awaitable[None]]], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class Importer:
    """What an import needs of the process it runs in."""

    store: LinkStore
    guard: NetGuard  # what the file's links must pass to be recorded
    outbound: Outbound  # the chats' pace, for the progress message's edits
    wake: Callable[[], None]  # links were recorded: this process's workers look at once
    durably: Durably


async def start(bot: ExtBot[Any], importer: Importer, order: ImportOrder) -> None:
    """A file just sent: written down, then imported. A file already written down (its
    update delivered again) is left to whoever holds, or takes over, its order."""
    orders = ImportOrders(importer.store.db)
    try:
        opened = await orders.open(order, HOLDER, LEASE)
    except PyMongoError:
        log.exception("database unavailable while writing an import down")
        await _reply(bot, order, texts_for(order.lang).db_down)
        return
    if opened:
        await _run(bot, importer, orders, order)


async def resume(bot: ExtBot[Any], importer: Importer) -> bool:
    """A file whose importing process died, imported again here; False when none is."""
    orders = ImportOrders(importer.store.db)
    order = await orders.abandoned(HOLDER, LEASE)
    if order is None:
        return False
    log.info("resuming the import of message %s (try %d)", order.key, order.tries)
    try:
        if order.tries > MAX_TRIES:
            texts = texts_for(order.lang)
            cut = texts.import_cut.format(name=order.name, saved=order.saved, tries=order.tries - 1)
            await _reply(bot, order, cut)
            await importer.durably(lambda: orders.close(order))
        else:
            await _run(bot, importer, orders, order)
    except (BadRequest, Forbidden) as exc:
        # The chat is gone, or the user blocked the bot: nobody to import for any more.
        log.info("import %s dropped: its chat can't be told (%s)", order.key, exc.message)
        await importer.durably(lambda: orders.close(order))
    return True


async def _reply(bot: ExtBot[Any], order: ImportOrder, text: str) -> int:
    sent = await bot.send_message(
        order.chat_id,
        text,
        parse_mode=ParseMode.HTML,
        reply_parameters=ReplyParameters(order.message_id, allow_sending_without_reply=True),
    )
    return sent.message_id


@dataclasses.dataclass
class _Import:
    """One import under way: its order as the renewals write it, and its counts."""

    order: ImportOrder
    counts: ImportCounts = dataclasses.field(default_factory=lambda: ImportCounts(total=0))

    def shown(self) -> ImportCounts:
        """The counts over every try: what earlier tries saved is met again as duplicates."""
        before = self.order.saved
        c = self.counts
        return dataclasses.replace(
            c, saved=c.saved + before, duplicates=max(0, c.duplicates - before)
        )

    def written(self) -> ImportOrder:
        return dataclasses.replace(self.order, saved=self.shown().saved)


async def _run(
    bot: ExtBot[Any], importer: Importer, orders: ImportOrders, order: ImportOrder
) -> None:
    texts = texts_for(order.lang)
    shown = texts.import_reading.format(name=order.name)
    if order.progress_id is None:
        order = dataclasses.replace(order, progress_id=await _reply(bot, order, shown))
        with contextlib.suppress(PyMongoError):  # a try after a kill goes on in this message
            await orders.renew(order, HOLDER, LEASE)
    assert order.progress_id is not None
    run = _Import(order)

    def render_counts() -> str:
        c = run.shown()
        return texts.import_progress.format(
            name=order.name, saved=c.saved, total=c.total, duplicates=c.duplicates
        )

    progress = ProgressMessage(
        bot, importer.outbound, order.chat_id, order.progress_id, render_counts, shown=shown
    )
    moved = asyncio.Event()  # the counts moved: the renewal writes them at once
    work = asyncio.ensure_future(_import(bot, importer, run, progress, texts, moved))
    if await _held(orders, run, work, moved):
        await importer.durably(lambda: orders.close(order))


async def _held(
    orders: ImportOrders, run: _Import, work: asyncio.Future[None], moved: asyncio.Event
) -> bool:
    """Wait for the import, its order renewed meanwhile; True once it ended here, False
    when another front took the order over (that one tells the user)."""
    renewer = asyncio.ensure_future(_renew(orders, run, work, moved))
    try:
        await work
        return True
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # The process stops: the order is let go for the next start (or another front).
            with contextlib.suppress(PyMongoError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(orders.release(run.order, HOLDER)), 2.0)
            raise
        return False
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer


async def _renew(
    orders: ImportOrders, run: _Import, work: asyncio.Future[None], moved: asyncio.Event
) -> None:
    """Keep the order ours, with how far it got (written as each batch is saved, so that
    a try after a kill counts them as saved); an order taken over stops this copy."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(moved.wait(), LEASE / 4)
        moved.clear()
        try:
            ours = await orders.renew(run.written(), HOLDER, LEASE)
        except PyMongoError:
            continue  # the database is away; the import waits for it too
        if not ours:
            log.warning("import %s taken over; stopping this copy", run.order.key)
            work.cancel()
            return


async def _import(
    bot: ExtBot[Any],
    importer: Importer,
    run: _Import,
    progress: ProgressMessage,
    texts: Texts,
    moved: asyncio.Event,
) -> None:
    """Fetch, read and record the file, and tell the user how it ended."""
    order = run.order
    try:
        file = await bot.get_file(order.file_id)
        raw = bytes(await file.download_as_bytearray())
        parsed = await import_reader.read(raw)  # in a child process, bounded
    except BadRequest as exc:  # "file is too big": the size was not in the message
        log.info("import file not fetched: %s", exc.message)
        await progress.finish(
            texts.import_too_big.format(size="?", limit=MAX_IMPORT_MB), Priority.NEW
        )
        return
    except ImportRefused as exc:
        await progress.finish(_refusal(exc, texts), Priority.NEW)
        return

    def progressed(now: ImportCounts) -> None:
        run.counts = now
        progress.changed()
        moved.set()

    try:
        run.counts = await import_links(
            importer.store,
            importer.guard,
            parsed,
            owner_id=order.owner_id,
            chat_id=order.chat_id,
            lang=order.lang,
            on_progress=progressed,
        )
    except ImportStopped as stopped:
        log.warning("import stopped by a database error", exc_info=stopped.__cause__)
        run.counts = stopped.counts
        c = run.shown()
        text = texts.import_stopped.format(name=order.name, saved=c.saved, total=c.total)
        await progress.finish(text, Priority.NEW)
        return
    importer.wake()
    await progress.finish(_done(run.shown(), order.name, texts), Priority.NEW)


def _done(counts: ImportCounts, name: str, texts: Texts) -> str:
    invalid = texts.import_invalid.format(count=counts.invalid) if counts.invalid else ""
    if counts.capped:
        invalid += texts.import_capped.format(count=counts.capped, limit=MAX_TAGS_PER_LINK)
    # Among new messages: the imported links' own capture replies must not hold it back.
    return texts.import_done.format(
        name=name, saved=counts.saved, duplicates=counts.duplicates, invalid=invalid
    )


def _refusal(exc: ImportRefused, texts: Texts) -> str:
    if isinstance(exc, Malformed):
        return texts.import_malformed.format(kind=exc.kind, detail=render.esc(exc.detail))
    if isinstance(exc, NoLinks):
        return texts.import_empty
    if isinstance(exc, BadEncoding):
        return texts.import_encoding.format(detail=render.esc(exc.detail))
    if isinstance(exc, TooDeep):
        return texts.import_too_deep
    if isinstance(exc, TooMany):
        return texts.import_too_many.format(limit=exc.limit)
    if isinstance(exc, import_reader.TooSlow):
        return texts.import_too_slow.format(seconds=f"{exc.seconds:.0f}")
    if isinstance(exc, import_reader.TooCostly):
        return texts.import_too_costly
    return texts.import_unknown

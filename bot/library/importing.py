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


async def start(
    bot: ExtBot[Any],
    importer: Importer,
    order: ImportOrder,
    written: Callable[[], None] = lambda: None,
) -> None:
    """A file just sent: written down (then `written` is called: its update may be
    confirmed to Telegram), then imported. A file already written down (its update
    delivered again) is left to whoever holds, or takes over, its order; a file sent while
    another of the user's is imported (perhaps resumed after a restart) is refused."""
    orders = ImportOrders(importer.store.db)
    holder = uuid.uuid4().hex
    texts = texts_for(order.lang)
    try:
        other = await orders.of_owner(order.owner_id)
        if other is not None and other != order.key:
            await _reply(bot, order, texts.import_busy)
            return
        opened = await orders.open(order, holder, LEASE)
        written()
    except PyMongoError:
        log.exception("database unavailable while writing an import down")
        await _reply(bot, order, texts.db_down)
        return
    if opened:
        await _run(bot, importer, orders, _Import(order, holder))


async def resume(bot: ExtBot[Any], importer: Importer) -> bool:
    """A file whose importing process died, imported again here; False when none is."""
    orders = ImportOrders(importer.store.db)
    holder = uuid.uuid4().hex
    order = await orders.abandoned(holder, LEASE)
    if order is None:
        return False
    log.info("resuming the import of message %s (try %d)", order.key, order.tries)
    try:
        if order.tries > MAX_TRIES:
            await importer.durably(lambda: orders.ending(order))
            await _give_up(bot, importer, order)
            await importer.durably(lambda: orders.close(order))
        else:
            await _run(bot, importer, orders, _Import(order, holder))
    except (BadRequest, Forbidden) as exc:
        # The chat is gone, or the user blocked the bot: nobody to import for any more.
        log.info("import %s dropped: its chat can't be told (%s)", order.key, exc.message)
        await importer.durably(lambda: orders.close(order))
    return True


async def _give_up(bot: ExtBot[Any], importer: Importer, order: ImportOrder) -> None:
    """Cut short too often (a file that brings its process down, say): the user is told
    how far it got, in its progress message."""
    texts = texts_for(order.lang)
    cut = texts.import_cut.format(name=order.name, saved=order.saved, tries=order.tries - 1)
    if order.progress_id is None:
        await _reply(bot, order, cut)
        return
    progress = ProgressMessage(
        bot, importer.outbound, order.chat_id, order.progress_id, lambda: cut
    )
    await progress.finish(cut, Priority.NEW)


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
    """One try at a file: its order as the renewals write it (by `holder`, this try),
    and its counts."""

    order: ImportOrder
    holder: str
    counts: ImportCounts = dataclasses.field(default_factory=lambda: ImportCounts(total=0))
    moved: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)  # to be renewed

    def shown(self) -> ImportCounts:
        """The counts over every try: what earlier tries saved is met again as duplicates."""
        before = self.order.saved
        c = self.counts
        return dataclasses.replace(
            c, saved=c.saved + before, duplicates=max(0, c.duplicates - before)
        )

    def written(self) -> ImportOrder:
        return dataclasses.replace(self.order, saved=self.shown().saved)


async def _run(bot: ExtBot[Any], importer: Importer, orders: ImportOrders, run: _Import) -> None:
    """The import, its order renewed all along and closed once the user was told; a
    stop lets the order go for the next start, a takeover leaves it to the taker."""
    work = asyncio.ensure_future(_import(bot, importer, orders, run))
    renewer = asyncio.ensure_future(_renew(orders, run, work))
    try:
        await work
        # Still renewed while this waits out an outage: nobody takes it up meanwhile.
        await importer.durably(lambda: orders.close(run.order))
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or not task.cancelling():
            return  # taken over by another front, which tells the user
        with contextlib.suppress(PyMongoError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(orders.release(run.order, run.holder)), 2.0)
        raise
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer


async def _renew(orders: ImportOrders, run: _Import, work: asyncio.Future[None]) -> None:
    """Keep the order this try's, with how far it got (written as each batch is saved,
    so that a try after a kill counts them as saved); taken over, this try stops."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.moved.wait(), LEASE / 4)
        run.moved.clear()
        try:
            ours = await orders.renew(run.written(), run.holder, LEASE)
        except PyMongoError:
            continue  # the database is away; the import waits for it too
        if not ours:
            log.warning("import %s taken over; stopping this try", run.order.key)
            work.cancel()
            return


async def _import(bot: ExtBot[Any], importer: Importer, orders: ImportOrders, run: _Import) -> None:
    """Show progress, fetch, read and record the file, and tell the user how it ended."""
    texts = texts_for(run.order.lang)
    shown = texts.import_reading.format(name=run.order.name)
    progress_id = run.order.progress_id
    if progress_id is None:
        progress_id = await _reply(bot, run.order, shown)
        run.order = dataclasses.replace(run.order, progress_id=progress_id)
        run.moved.set()  # a try after a kill goes on in this message
    order = run.order

    def render_counts() -> str:
        c = run.shown()
        return texts.import_progress.format(
            name=order.name, saved=c.saved, total=c.total, duplicates=c.duplicates
        )

    progress = ProgressMessage(
        bot, importer.outbound, order.chat_id, progress_id, render_counts, shown=shown
    )
    try:
        text = await _record(bot, importer, run, progress, texts)
    except asyncio.CancelledError:
        await progress.stop()
        raise
    except Exception:  # told here and closed: a resumed try would only fail the same way
        log.exception("import %s failed", order.key)
        text = texts.internal_error
    # From here a next file of the user's is taken, not refused for this one: its order
    # is closed just after the line is told (or resumed, if a kill comes first).
    await importer.durably(lambda: orders.ending(order))
    await progress.finish(text, Priority.NEW)


async def _record(
    bot: ExtBot[Any], importer: Importer, run: _Import, progress: ProgressMessage, texts: Texts
) -> str:
    """Fetch, read and record the file; what the user is told of it."""
    order = run.order
    try:
        file = await bot.get_file(order.file_id)
        raw = bytes(await file.download_as_bytearray())
        parsed = await import_reader.read(raw)  # in a child process, bounded
    except BadRequest as exc:  # "file is too big": the size was not in the message
        log.info("import file not fetched: %s", exc.message)
        return texts.import_too_big.format(size="?", limit=MAX_IMPORT_MB)
    except ImportRefused as exc:
        return _refusal(exc, texts)

    def progressed(now: ImportCounts) -> None:
        run.counts = now
        progress.changed()
        run.moved.set()

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
        return texts.import_stopped.format(name=order.name, saved=c.saved, total=c.total)
    importer.wake()
    return _done(run.shown(), order.name, texts)


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

"""Stage 4: captured → delivering. The photo the user is owed, from the stored bytes (or,
sent by the capture slot itself when the chat's turn is free, from the bytes in hand).

The photo stays owed (no `reply_message_id`) until Telegram acknowledges it, and the
acknowledgement is written at once, so a stage redone after a lost lease or a restart
sends nothing twice. The only repeat possible is a send in flight at the instant the
process died: the Bot API has no idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from telegram import InlineKeyboardMarkup, Message, ReplyParameters
from telegram.error import TelegramError
from telegram.ext import ExtBot

from bot.chat import render
from bot.chat.callbacks import codec_for, snapshot_keyboard
from bot.chat.outbound import Send, is_passing
from bot.chat.replies import photo_ok, reply, screenshot_of, send_media
from bot.futures import retrieved
from bot.i18n import Texts, texts_for
from bot.library.tagsuggest import snapshot_markup
from bot.pipeline.base import Pipeline
from bot.pipeline.finish import finish
from storage.models import LinkRecord, Screenshot, Status

# Seconds a captured link's photo waits for its chat's turn in the capture stage: a
# private chat's next token comes within 1.1 s; waited out, the photo is sent after the
# page's text by a delivery slot, which in a burst of real pages came seconds later.
TURN_WAIT = 2.5

log = logging.getLogger(__name__)


async def deliver(p: Pipeline, bot: ExtBot[Any], record: LinkRecord) -> int | None:
    """The photo reply's message id (sent now or earlier); None if it could not be sent."""
    if record.reply_message_id:
        await asyncio.shield(_send_original(p, bot, record))  # owed from before a restart
        return record.reply_message_id
    shot = record.screenshot
    if shot is None or shot.gridfs_id is None:
        log.warning("a captured link without stored screenshot; capturing again")
        await p.store.update(record.id, status=Status.PENDING)
        return None
    if await _silent(p, record):
        await p.store.update(record.id, status=Status.DONE)
        p.live.stage(record.id, Status.DONE)
        await p.store.drop_work(record.id)  # nobody to tell
        return None
    await p.store.update(record.id, status=Status.DELIVERING)
    p.live.stage(record.id, Status.DELIVERING)
    image = await p.store.get_image(shot.gridfs_id)
    # Shielded: once started, a stop lets the send and its acknowledgement finish
    # together, so a clean stop never leaves a delivered photo marked as owed.
    message = await asyncio.shield(_send_and_ack(p, bot, record, image))
    return message.message_id if message else None


async def photo_turn(p: Pipeline, record: LinkRecord, sending: asyncio.Semaphore) -> bool:
    """Whether the capture stage sends the photo of a link it just captured itself; if so,
    `sending` is held (the caller releases it). A link sent by hand, to a chat whose turn
    comes within TURN_WAIT (a reaction in flight, a token refilling): the page is shot by
    then, so only this link's tail waits, and `sending` is taken only at a moment the chat
    is free, so a photo never holds it while waiting for its own chat. Otherwise (a flood
    hold, a queue ahead, other processes sharing the chat) the photo is left owed to a
    delivery slot, which sends it after the page's text is read."""
    if record.source_message_id is None:
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TURN_WAIT
    while await p.outbound.until_free(record.chat_id, deadline - loop.time()):
        await sending.acquire()
        if p.outbound.free_now(record.chat_id):
            return True
        sending.release()  # another photo of this chat came first: wait for the next turn
    return False


def tags_ahead(p: Pipeline, record: LinkRecord) -> asyncio.Task[list[str]] | None:
    """Started before a capture: the user's tags, which the photo's ＋#tag buttons are
    chosen from when no summary will bring them (read meanwhile, not after the shot)."""
    if p.summarizer is not None:
        return None
    task = asyncio.ensure_future(p.known_tags.of(p.store, record.owner_id))
    task.add_done_callback(retrieved)  # unused when the capture fails: no error then
    return task


async def deliver_fresh(
    p: Pipeline,
    bot: ExtBot[Any],
    record: LinkRecord,
    image: bytes,
    tags: Awaitable[list[str]] | None = None,
    *,
    stored: Awaitable[object],
) -> None:
    """The photo of a link just captured, sent by the capture slot from the bytes in
    hand while `stored` stores them: no second claim and no read back of the
    screenshot. Its acknowledgement waits for `stored`, so a photo recorded as sent has
    its bytes kept. `tags`: from `tags_ahead`. One attempt only: a photo Telegram does
    not take at once (429, a fault) stays owed to a delivery slot, and so does a PDF
    link's file, so a browser page never waits on Telegram."""
    await _send_and_ack(p, bot, record, image, tags=tags, once=True, stored=stored)


async def _send_and_ack(
    p: Pipeline,
    bot: ExtBot[Any],
    record: LinkRecord,
    image: bytes,
    *,
    tags: Awaitable[list[str]] | None = None,
    once: bool = False,
    stored: Awaitable[object] | None = None,
) -> Message | None:
    texts = texts_for(record.lang_code)
    shot = record.screenshot or Screenshot(width=0, height=0)
    as_document = not photo_ok(shot.width, shot.height)
    markup = await _markup(p, bot, record, texts, tags)
    try:
        message = await send_media(
            bot,
            record,
            image,
            _caption(p, record, texts),
            as_document=as_document,
            markup=markup,
            send=Send(must_land=False) if once else None,
        )
    except TelegramError as exc:
        if is_passing(exc):  # a delivery slot sends it (or, stopping, the next start)
            log.info("snapshot left owed: %s", exc)
            return None
        await _refused(p, bot, record, exc)
        return None
    if stored is not None:
        # Its gridfs id, and the files it replaces read first. A store that failed (the
        # capture stage raises it, and is tried again) still lets the photo be recorded
        # as sent: the retry must not send a second one.
        with contextlib.suppress(Exception):
            await asyncio.shield(stored)
    shot = screenshot_of(message, record.screenshot, as_document)
    record.screenshot, record.reply_message_id = shot, message.message_id
    # Delivered: say so at once, and hold on to it through an outage (a lost
    # acknowledgement would send the photo twice).
    await p.durably(
        lambda: p.store.update(record.id, screenshot=shot, reply_message_id=message.message_id)
    )
    if not once:
        await _send_original(p, bot, record)
    return message


async def _refused(p: Pipeline, bot: ExtBot[Any], record: LinkRecord, exc: TelegramError) -> None:
    """Telegram will not take the photo: the link fails, and the user hears so (🤷 and a
    line naming what failed), never only the 👀 it started with."""
    log.warning("Telegram refused the snapshot: %s", exc)
    error = f"telegram: {exc}"
    await p.store.mark_failed(record.id, error)
    record.status = Status.FAILED
    p.live.stage(record.id, Status.FAILED)
    why = render.esc(render.clip(getattr(exc, "message", str(exc)), 300))
    line = render.failure_line(texts_for(record.lang_code), record.url, error, why)
    await reply(bot, record, line, must_tell=True)
    await finish(p, bot, record)


async def _send_original(p: Pipeline, bot: ExtBot[Any], record: LinkRecord) -> None:
    """A PDF link's file, as a document answering its snapshot (the first page drawn).

    Owed like the photo: its file_id is written once Telegram has it, so a redone stage
    sends it once. An image link's photo is the image itself: nothing more is sent.
    """
    original = record.original
    if record.kind != "pdf" or original is None or original.file_id or not original.gridfs_id:
        return
    try:
        data = await p.store.get_image(original.gridfs_id)
    except LookupError:
        log.warning("the PDF file of %s is missing; not sent", record.id)
        return
    try:
        message = await bot.send_document(
            record.chat_id,
            data,
            filename=original.file_name,
            reply_parameters=ReplyParameters(
                record.reply_message_id or 0, allow_sending_without_reply=True
            ),
        )
    except TelegramError as exc:
        log.warning("the PDF file was not sent: %s", exc)  # tried again if the stage is
        return
    if message.document is None:
        return
    sent = replace(
        original,
        file_id=message.document.file_id,
        file_unique_id=message.document.file_unique_id,
    )
    record.original = sent
    await p.durably(lambda: p.store.update(record.id, original=sent))


async def _silent(p: Pipeline, record: LinkRecord) -> bool:
    """An imported link nobody has asked for by hand: captured and kept, never posted (an
    import of 5 000 bookmarks must not post 5 000 photos). Sent by hand later, it is
    answered with the stored screenshot (intake.answer_again)."""
    if record.source_message_id is not None:
        return False  # sent by hand: no read on the way to every photo
    return bool(await p.store.imported_unasked(record.id))


async def _markup(
    p: Pipeline,
    bot: ExtBot[Any],
    record: LinkRecord,
    texts: Texts,
    tags: Awaitable[list[str]] | None = None,
) -> InlineKeyboardMarkup:
    """🏷 🗑 🔄 under the photo. With a model the ＋#tag suggestions come with the summary's
    last edit; without one there is no edit to bring them, so the page's words now."""
    if p.summarizer is None:
        return await snapshot_markup(bot.token, p.store, None, record, texts, tags)
    return snapshot_keyboard(codec_for(bot.token), record, texts)


def _caption(p: Pipeline, record: LinkRecord, texts: Texts) -> str:
    if p.summarizer is None and record.chat_id not in p.told_no_key:
        p.told_no_key[record.chat_id] = True
        return render.caption(record, texts, tail=texts.summary_off)
    return render.caption(record, texts)

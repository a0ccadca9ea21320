"""Stage 3: pending → capturing → captured. Open the page, keep its screenshot and text.

A PDF or image link keeps the file itself too (its bytes beside the screenshots, capped
at DOCUMENT_MAX_MB by the capture), and a PDF's text is the link's text: the summary and
/find read it. A page still loading when the capture budget ran out is kept as drawn,
marked partial. A capture that cannot produce a snapshot ends the link as failed, and
the user is told why in their language. Once the page is shot, its photo is sent from
here when the chat's turn comes within moments (delivering.photo_turn; otherwise a
delivery slot sends it from the stored bytes) while its bytes are stored, and the photo is
recorded as sent once they are (or their store failed: a retry never sends it twice);
only then is the page's main text read (0.1-1 s of CPU on a real page) and the capture
saved with it, status captured: the photo does not wait for the text, and the summary
never starts without it.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from telegram.ext import ExtBot

from bot.browser.errors import CaptureError, FileTooLarge
from bot.browser.types import Snapshot
from bot.chat import render
from bot.chat.replies import NotTold, reply
from bot.futures import retrieved
from bot.i18n import texts_for
from bot.pipeline.ahead import Shot, ShotsAhead
from bot.pipeline.base import Pipeline
from bot.pipeline.delivering import deliver_fresh, photo_turn, tags_ahead
from storage.models import LinkRecord, Screenshot, Status, StoredFile

log = logging.getLogger(__name__)
Doc = dict[str, Any]


def _nothing() -> None:
    pass


async def capture(
    p: Pipeline,
    bot: ExtBot[Any],
    record: LinkRecord,
    *,
    page_done: Callable[[], None] = _nothing,
    page_ready: Callable[[], None] = _nothing,
    sending: asyncio.Semaphore | None = None,
    ahead: ShotsAhead | None = None,
) -> bool:
    """True when the link was captured (and its delivery is now owed). `page_done` is called
    once the browser is done with the page (shot or failed): what follows needs no page,
    so the worker's slot may start its next capture meanwhile; `page_ready` once the
    page is about to be shot. `sending`, if given, is
    held while the photo is sent and acknowledged: a worker killed mid-burst has no more
    photos in flight (sent twice after a take-over) than it has capture slots. `ahead`:
    pages opened while their links were queued; this link's shot is taken from there."""
    assert p.capturer is not None, "a capture worker needs a browser"
    texts = texts_for(record.lang_code)
    # The attempt is counted while the page opens, not before (a database write or two,
    # under load tens of ms of the slot's time a link), and is written before anything of
    # the capture is. A database error there fails the stage as before (retried).
    counted = asyncio.ensure_future(p.store.start_attempt(record.id))
    p.live.stage(record.id, Status.CAPTURING)
    tags = tags_ahead(p, record)
    try:
        begun = ahead.take(record.id, texts.locale, page_ready) if ahead is not None else None
        snap, html = await _shoot(
            p, record, texts.locale, tags, begun, page_ready=page_ready, page_done=page_done
        )
    except CaptureError as exc:
        await counted
        await failed(p, bot, record, exc.reason, exc.detail, why=render.capture_reason(exc, texts))
        return False
    except Exception:
        await counted
        log.exception("capture crashed")
        await failed(p, bot, record, "internal", "")
        return False
    except BaseException:  # cancelled (a stop): the attempt need not be counted
        counted.cancel()
        raise
    await counted
    _take_shot(record, snap)
    # The bytes are stored while the photo goes out, and its acknowledgement waits for
    # them (the 20-40 ms of two inserts were on every photo's path). The link becomes
    # `captured` (claimable for its summary) only once its text is stored too.
    # A PDF's or image's own file (up to DOCUMENT_MAX_MB) is stored beside, not awaited
    # by the photo's acknowledgement: the longer that waits, the longer a kill can cost
    # a second photo.
    stored = asyncio.ensure_future(_save_shot(p, record, snap))
    kept = asyncio.ensure_future(p.durably(lambda: _keep_original(p, record, snap)))
    for task in (stored, kept):
        task.add_done_callback(retrieved)  # a stop leaves them to finish for the ack
    untold: NotTold | None = None
    try:
        sent = await _photo_now(p, bot, record, snap, tags, stored, sending)
    except NotTold as exc:  # refused, and why not told as the bot stops: the files still
        sent, untold = True, exc  # belong to the record (the next start tells it)
    replaced = await asyncio.shield(stored)
    record.original = await asyncio.shield(kept)
    if sent and record.status == Status.FAILED:  # Telegram refused the photo: link ended
        shot, original = record.screenshot, record.original
        await p.durably(lambda: p.store.update(record.id, screenshot=shot, original=original))
        if untold is not None:
            raise untold
        return True
    if html:
        snap = await p.capturer.read_text(snap, html)
    await _save(p, record, snap, replaced)
    p.live.stage(record.id, record.status)
    return True


async def _photo_now(
    p: Pipeline,
    bot: ExtBot[Any],
    record: LinkRecord,
    snap: Snapshot,
    tags: asyncio.Task[list[str]] | None,
    stored: asyncio.Future[Doc | None],
    sending: asyncio.Semaphore | None,
) -> bool:
    """Send the photo from this stage when the chat's turn is free (True if it was tried).
    `reply_message_id` set: the photo went out before a restart cut this stage short."""
    sending = sending or asyncio.Semaphore(1)
    if record.reply_message_id or not await photo_turn(p, record, sending):
        return False
    try:
        # Shielded: a stop lets the photo and its acknowledgement finish together.
        await asyncio.shield(deliver_fresh(p, bot, record, snap.image, tags, stored=stored))
    finally:
        sending.release()
    return True


async def _shoot(
    p: Pipeline,
    record: LinkRecord,
    locale: str,
    tags: asyncio.Task[list[str]] | None,
    begun: asyncio.Task[Shot] | None,
    *,
    page_ready: Callable[[], None],
    page_done: Callable[[], None],
) -> tuple[Snapshot, str]:
    """The page's snapshot and HTML (HTML "" once its text is read), or those of `begun`,
    begun while the link was queued; `page_ready` and `page_done` are called once the page
    is about to be shot and once the browser is done with it. Text first when the photo needs it: the caption's
    title may come from it, and without a summary the photo's ＋#tag buttons are the
    user's tags in the text."""
    assert p.capturer is not None
    try:
        snap, html = await (begun or p.capturer.shoot(record.url, locale=locale, ready=page_ready))
    finally:
        page_done()
    _check_size(p, snap)
    if snap.title is None or await _has_tags(tags):
        return await p.capturer.read_text(snap, html), ""
    return snap, html


async def _has_tags(tags: asyncio.Task[list[str]] | None) -> bool:
    """Whether the user has tags to suggest from (read while the page loaded)."""
    if tags is None:
        return False
    try:
        return bool(await asyncio.shield(tags))
    except Exception:  # the buttons are optional; the photo goes out without them
        return False


def _check_size(p: Pipeline, snap: Snapshot) -> None:
    """A link's file over DOCUMENT_MAX_MB is not kept (the capture refuses most before)."""
    assert p.capturer is not None
    limit = p.capturer.options.document_max_bytes
    if snap.original is not None and len(snap.original) > limit:
        raise FileTooLarge(str(snap.kind), len(snap.original), limit)


def _take_shot(record: LinkRecord, snap: Snapshot) -> None:
    """What the photo's caption and its photo-or-document choice read, before any bytes
    are stored."""
    record.kind, record.partial = str(snap.kind), snap.partial
    record.screenshot = Screenshot(width=snap.width, height=snap.height, size=len(snap.image))
    _take_fields(record, snap)


async def _save_shot(p: Pipeline, record: LinkRecord, snap: Snapshot) -> Doc | None:
    """Store the screenshot's bytes; a photo's acknowledgement waits for them, so a link
    whose photo is recorded as sent has them. Returns the files the link held until now
    (freed once the capture is saved), read before the acknowledgement writes the new
    screenshot. It waits out an outage."""
    replaced, image_id = await asyncio.gather(
        p.durably(lambda: p.store.stored_files(record.id)),
        p.durably(lambda: p.store.put_image(snap.image, f"{record.id}.jpg")),
    )
    assert record.screenshot is not None  # _take_shot
    record.screenshot = replace(record.screenshot, gridfs_id=image_id)
    return replaced


def _take_fields(record: LinkRecord, snap: Snapshot) -> None:
    record.final_url, record.http_status = snap.final_url, snap.http_status
    record.title, record.description = snap.title, snap.description
    record.site_name, record.lang, record.text = snap.site_name, snap.lang, snap.text


async def _save(p: Pipeline, record: LinkRecord, snap: Snapshot, replaced: Doc | None) -> None:
    """Store the capture with its text: status captured, or done when its photo is out
    and nothing follows (no summary, no PDF file to send): one write fewer than a second
    stage's. It waits out an outage."""
    _take_fields(record, snap)
    done = bool(record.reply_message_id) and p.summarizer is None and record.kind != "pdf"
    await p.durably(lambda: p.store.save_capture(record, replaced=replaced, done=done))
    record.status = Status.DONE if done else Status.CAPTURED


async def _keep_original(p: Pipeline, record: LinkRecord, snap: Snapshot) -> StoredFile | None:
    """The PDF or image file the link pointed at, stored beside the screenshot."""
    if snap.original is None:
        return None
    name = snap.file_name or f"{record.id}.{snap.kind}"
    gridfs_id = await p.store.put_image(snap.original, name)
    mime = snap.content_type or "application/octet-stream"
    return StoredFile(file_name=name, mime_type=mime, size=len(snap.original), gridfs_id=gridfs_id)


async def failed(
    p: Pipeline,
    bot: ExtBot[Any],
    record: LinkRecord,
    reason: str,
    detail: str,
    *,
    why: str | None = None,
) -> None:
    """The link ends here; the user is told why (`why`, else the reason's text)."""
    texts = texts_for(record.lang_code)
    error = f"{reason}: {detail}"
    await p.store.mark_failed(record.id, error)
    if why is None:
        why = texts.capture_reasons.get(reason, texts.capture_reasons["browser"])
    p.live.stage(record.id, Status.FAILED, reason=html.unescape(why))
    await reply(bot, record, render.failure_line(texts, record.url, error, why), must_tell=True)


async def tell_failed(bot: ExtBot[Any], record: LinkRecord) -> None:
    """Why `record` failed, from what was stored (`error`): for a link whose stage was
    cut short before it told its user. A file's size or type, which the stage itself
    names, is not stored; its reason is."""
    line = render.failure_line(texts_for(record.lang_code), record.url, record.error or "")
    await reply(bot, record, line, must_tell=True)

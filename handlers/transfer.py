"""/export, and importing a bookmark file the user sends."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from telegram import Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import filters

from bot.chat import render
from bot.chat.outbound import Priority
from bot.chat.progress import ProgressMessage
from bot.i18n import Texts
from bot.library import import_reader
from bot.library.bookmarks import BadEncoding, ImportRefused, Malformed, NoLinks, TooDeep, TooMany
from bot.library.transfer import (
    MAX_IMPORT_BYTES,
    MAX_IMPORT_MB,
    MAX_UPLOAD_BYTES,
    ImportCounts,
    ImportStopped,
    export_links,
    import_links,
)
from bot.services import Context
from bot.tags import MAX_TAGS_PER_LINK
from handlers.common import texts_of
from storage.bulk import owner_counts

log = logging.getLogger(__name__)
EXPORT_PROGRESS_FROM = 1000  # links; a smaller export is done before a message would help
_IMPORTING = "linksnap.importing"

# A file sent in a private chat is an import, unless its caption carries a link (a file
# shared with a link to save is a link message).
IMPORT_FILE = (
    filters.Document.ALL
    & filters.ChatType.PRIVATE
    & ~filters.CaptionEntity("url")
    & ~filters.CaptionEntity("text_link")
    & ~filters.UpdateType.EDITED
)


async def export_command(update: Update, context: Context) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    texts = texts_of(update)
    services = context.services
    total, _ = await owner_counts(services.store, user.id)
    if total == 0:
        await message.reply_text(texts.export_empty)
        return
    progress: ProgressMessage | None = None
    done = 0
    if total >= EXPORT_PROGRESS_FROM:
        shown = texts.export_progress.format(done=0, total=total)
        sent = await message.reply_text(shown)
        progress = ProgressMessage(
            context.bot,
            services.outbound,
            message.chat_id,
            sent.message_id,
            lambda: texts.export_progress.format(done=done, total=total),
            shown=shown,
        )

    def moved(count: int) -> None:
        nonlocal done
        done = count
        if progress is not None:
            progress.changed()

    files = await export_links(services.store, user.id, on_progress=moved)
    if max(len(files.netscape), len(files.json)) > MAX_UPLOAD_BYTES:
        text = texts.export_too_big.format(limit=MAX_UPLOAD_BYTES // 2**20)
        if progress is not None:
            await progress.finish(text, Priority.NEW)
        else:
            await message.reply_text(text)
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    for data, name, caption in (
        (files.netscape, f"linksnap-bookmarks-{stamp}.html", texts.export_caption_html),
        (files.json, f"linksnap-{stamp}.json", texts.export_caption_json),
    ):
        await message.reply_document(data, filename=name, caption=caption)
    if progress is not None:
        await progress.finish(texts.export_done.format(total=files.count), Priority.NEW)


async def import_command(update: Update, context: Context) -> None:
    """/import: how to import (the file itself is the command)."""
    if update.effective_message is not None:
        text = texts_of(update).import_how.format(limit=MAX_IMPORT_MB)
        await update.effective_message.reply_text(text)


async def on_file(update: Update, context: Context) -> None:
    """A bookmark file: read it whole, then record its links with one progress message."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or message.document is None:
        return
    texts = texts_of(update)
    document = message.document
    name = render.esc(render.clip(render.shown(document.file_name or "file"), 60))
    size = document.file_size or 0
    if size > MAX_IMPORT_BYTES:
        await message.reply_text(
            texts.import_too_big.format(size=f"{size / 2**20:.0f}", limit=MAX_IMPORT_MB)
        )
        return
    data = context.user_data if context.user_data is not None else {}
    if data.get(_IMPORTING):
        await message.reply_text(texts.import_busy)
        return
    data[_IMPORTING] = True
    try:
        await _import(context, message, user.id, user.language_code or "en", texts, name)
    finally:
        data.pop(_IMPORTING, None)


async def _import(
    context: Context, message: Message, user_id: int, lang: str, texts: Texts, name: str
) -> None:
    assert message.document is not None
    services = context.services
    shown = texts.import_reading.format(name=name)
    sent = await message.reply_text(shown, parse_mode=ParseMode.HTML)
    counts = ImportCounts(total=0)

    def render_counts() -> str:
        return texts.import_progress.format(
            name=name, saved=counts.saved, total=counts.total, duplicates=counts.duplicates
        )

    progress = ProgressMessage(
        context.bot, services.outbound, message.chat_id, sent.message_id, render_counts, shown=shown
    )
    try:
        file = await context.bot.get_file(message.document.file_id)
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

    def moved(now: ImportCounts) -> None:
        nonlocal counts
        counts = now
        progress.changed()

    try:
        counts = await import_links(
            services.store,
            services.pipeline.guard,
            parsed,
            owner_id=user_id,
            chat_id=message.chat_id,
            lang=lang,
            on_progress=moved,
        )
    except ImportStopped as stopped:
        log.warning("import stopped by a database error", exc_info=stopped.__cause__)
        c = stopped.counts
        await progress.finish(
            texts.import_stopped.format(name=name, saved=c.saved, total=c.total), Priority.NEW
        )
        return
    services.wake_workers()
    invalid = texts.import_invalid.format(count=counts.invalid) if counts.invalid else ""
    if counts.capped:
        invalid += texts.import_capped.format(count=counts.capped, limit=MAX_TAGS_PER_LINK)
    done = texts.import_done.format(
        name=name, saved=counts.saved, duplicates=counts.duplicates, invalid=invalid
    )
    # Among new messages: the imported links' own capture replies must not hold it back.
    await progress.finish(done, Priority.NEW)


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

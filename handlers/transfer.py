"""/export, and importing a bookmark file the user sends."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from telegram import Update
from telegram.ext import filters

from bot.chat import render
from bot.chat.outbound import Priority
from bot.chat.progress import ProgressMessage
from bot.library import importing
from bot.library.transfer import (
    MAX_IMPORT_BYTES,
    MAX_IMPORT_MB,
    MAX_UPLOAD_BYTES,
    export_links,
)
from bot.services import Context
from handlers.common import texts_of
from storage.bulk import owner_counts
from storage.queue.imports import ImportOrder

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
    try:
        await _on_file(update, context)
    finally:
        context.bot_data.receipts.settle(update.update_id)


async def _on_file(update: Update, context: Context) -> None:
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
    order = ImportOrder(
        chat_id=message.chat_id,
        message_id=message.message_id,
        owner_id=user.id,
        file_id=document.file_id,
        name=name,
        lang=user.language_code or "en",
    )
    # Until the order is written down; from then on the written order refuses a next
    # file, up to the moment its last line is told (storage/queue/imports.py `ending`).
    data[_IMPORTING] = True
    receipts = context.bot_data.receipts

    def written() -> None:
        receipts.settle(update.update_id)  # confirmed to Telegram (`Taken`, handlers/__init__.py)
        data.pop(_IMPORTING, None)

    try:
        await importing.start(context.bot, context.services.importer(), order, written=written)
    finally:
        data.pop(_IMPORTING, None)

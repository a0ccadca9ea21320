"""Telegram update handlers: parse, call a service, reply."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from handlers import (
    auth,
    browse,
    buttons,
    dedupe,
    digest,
    errors,
    inline,
    links,
    manage,
    start,
    stats,
    transfer,
    web,
)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Every handler, in order; the auth gate runs first for every update."""
    app.add_handler(TypeHandler(Update, dedupe.once), group=-2)
    app.add_handler(TypeHandler(Update, auth.gate), group=-1)
    app.add_handler(CommandHandler("start", start.start))
    app.add_handler(CommandHandler("help", start.help_command))
    app.add_handler(CommandHandler("tags", browse.tags_command))
    app.add_handler(CommandHandler("find", browse.find_command))
    app.add_handler(CommandHandler("export", transfer.export_command, block=False))
    app.add_handler(CommandHandler("import", transfer.import_command))
    app.add_handler(CommandHandler("stats", stats.stats_command))
    app.add_handler(CommandHandler("digest", digest.digest_command))
    app.add_handler(CommandHandler("web", web.web_command))
    app.add_handler(CallbackQueryHandler(buttons.on_button))  # decoded by bot/chat/callbacks.py
    app.add_handler(InlineQueryHandler(inline.on_inline_query))
    app.add_handler(MessageHandler(manage.RETAG_REPLY, manage.on_retag_reply))
    # A file's update is confirmed once the file is written down (bot/library/importing.py).
    file_taken = links.Taken(app.bot_data.receipts)  # last: only an update it handles
    app.add_handler(
        MessageHandler(transfer.IMPORT_FILE & file_taken, transfer.on_file, block=False)
    )
    content = (filters.TEXT | filters.CAPTION) & ~filters.COMMAND & ~filters.UpdateType.EDITED
    taken = links.Taken(app.bot_data.receipts)  # last: only an update it handles is taken
    app.add_handler(MessageHandler(content & taken, links.on_message, block=False))
    app.add_handler(MessageHandler(filters.COMMAND, start.help_command))
    app.add_error_handler(errors.on_error)
    manage.schedule(app)

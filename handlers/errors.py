"""The one place an unexpected error is logged and told to the user."""

from __future__ import annotations

import logging

from pymongo.errors import PyMongoError
from telegram import Update
from telegram.error import TelegramError

from bot.services import BotData, Context
from handlers.common import texts_of

log = logging.getLogger(__name__)


async def on_error(update: object, context: Context) -> None:
    """Log the update id and the exception; tell the user, in their language."""
    error = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    log.error("update %s failed: %s", update_id, type(error).__name__, exc_info=error)
    if not isinstance(update, Update) or _stopping(context):
        return  # stopping: a reply now would only wait for a connection being closed
    texts = texts_of(update)
    text = texts.db_down_read if isinstance(error, PyMongoError) else texts.internal_error
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(text[:200], show_alert=True)
        elif update.effective_message is not None:
            await update.effective_message.reply_text(text)
    except TelegramError as exc:
        log.info("could not tell the user about the error: %s", exc)


def _stopping(context: Context) -> bool:
    data = context.bot_data
    services = data.services if isinstance(data, BotData) else None
    return services is None or services.stopping.is_set()

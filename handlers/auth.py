"""ALLOWED_USERS, enforced before any other handler for every kind of update."""

from __future__ import annotations

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop

from bot.services import Context
from handlers.common import texts_of


async def gate(update: Update, context: Context) -> None:
    """Let allowed users through; tell anyone else once, then stay quiet for a while."""
    allowed = context.services.settings.allowed_users
    user = update.effective_user
    if not allowed or (user is not None and user.id in allowed):
        return
    refused = context.services.refused
    uid = user.id if user else 0
    text = texts_of(update).not_allowed
    try:
        if update.callback_query:
            await update.callback_query.answer(text, show_alert=True)
        elif update.inline_query:
            await update.inline_query.answer([], cache_time=0, is_personal=True)
        elif update.effective_message and uid not in refused:
            refused[uid] = True  # expires after REFUSAL_EVERY: then the stranger is told again
            await update.effective_message.reply_text(text)
    except TelegramError:
        pass
    raise ApplicationHandlerStop

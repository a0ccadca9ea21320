"""ALLOWED_USERS, enforced before any other handler for every kind of update."""

from __future__ import annotations

import time

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.services import get_services
from handlers.common import texts_of

_REFUSAL_EVERY = 600.0


async def gate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Let allowed users through; tell anyone else once, then stay quiet for a while."""
    allowed = get_services(context).settings.allowed_users
    user = update.effective_user
    if not allowed or (user is not None and user.id in allowed):
        return
    refused: dict[int, float] = context.bot_data.setdefault("linksnap.refused", {})
    uid = user.id if user else 0
    now = time.monotonic()
    text = texts_of(update).not_allowed
    try:
        if update.callback_query:
            await update.callback_query.answer(text, show_alert=True)
        elif update.inline_query:
            await update.inline_query.answer([], cache_time=0, is_personal=True)
        elif update.effective_message and now - refused.get(uid, 0.0) > _REFUSAL_EVERY:
            await update.effective_message.reply_text(text)
            refused[uid] = now
    except TelegramError:
        pass
    raise ApplicationHandlerStop

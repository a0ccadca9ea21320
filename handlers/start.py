"""/start and /help."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot.links import MAX_LINKS
from handlers.common import texts_of


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_message:
        await update.effective_message.reply_text(texts_of(update).start, parse_mode=ParseMode.HTML)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_message:
        text = texts_of(update).help.format(max_links=MAX_LINKS)
        await update.effective_message.reply_text(text, parse_mode=ParseMode.HTML)

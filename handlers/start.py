"""/start and /help."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ParseMode

from bot.chat.links import MAX_LINKS
from bot.services import Context
from handlers import web
from handlers.common import texts_of


async def start(update: Update, context: Context) -> None:
    if update.effective_message:
        await update.effective_message.reply_text(texts_of(update).start, parse_mode=ParseMode.HTML)
        await web.chat_menu_button(update, context)


async def help_command(update: Update, context: Context) -> None:
    if update.effective_message:
        texts = texts_of(update)
        text = texts.help.format(max_links=MAX_LINKS)
        text += texts.help_manage.format(bot=context.bot.username)
        await update.effective_message.reply_text(text, parse_mode=ParseMode.HTML)

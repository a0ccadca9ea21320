"""/web: the library as a Mini App (https only) and a sign-in link for a browser; the
button that opens the library from /find and /tags."""

from __future__ import annotations

import contextlib

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    MenuButtonWebApp,
    Update,
    WebAppInfo,
)
from telegram.constants import ChatType, ParseMode
from telegram.error import TelegramError

from bot.chat import render
from bot.services import Context
from bot.web_address import WebAddress
from handlers.common import texts_of
from storage.websessions import SIGNIN_TTL, SignIns, WebUser


async def web_command(update: Update, context: Context) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    texts = texts_of(update)
    if message.chat.type != ChatType.PRIVATE:
        await message.reply_text(texts.web_private_only)  # a sign-in link is for one person
        return
    services = context.services
    address = services.web
    if address is None:
        return
    who = WebUser(user.id, user.language_code or "en", user.first_name)
    token = await SignIns(services.store.db).mint(who)
    text = texts.web_intro.format(
        url=render.esc(address.signin(token)), minutes=int(SIGNIN_TTL.total_seconds() // 60)
    )
    button = library_button(address, texts.web_open_app)
    await message.reply_text(
        text,
        parse_mode=ParseMode.HTML,
        reply_markup=InlineKeyboardMarkup([[button]]) if button else None,
        # Nothing fetches the link but the user (it would spend nothing: see bot/web/pages.py).
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )
    await chat_menu_button(update, context)


def library_button(
    address: WebAddress | None, text: str, tags: list[str] | None = None, words: str = ""
) -> InlineKeyboardButton | None:
    """A button opening the library as a Mini App, filtered; none unless the address is
    https (Telegram refuses other web_app buttons with BUTTON_URL_INVALID)."""
    if address is None or not address.https:
        return None
    return InlineKeyboardButton(text, web_app=WebAppInfo(address.library(tags, words)))


async def chat_menu_button(update: Update, context: Context) -> None:
    """A Chinese user's menu button says 链接库 (the bot-wide one, set at start, says
    "Library")."""
    user, chat = update.effective_user, update.effective_chat
    address = context.services.web
    if user is None or chat is None or address is None or not address.https:
        return
    texts = texts_of(update)
    if not texts.locale.startswith("zh") or chat.type != ChatType.PRIVATE:
        return
    button = MenuButtonWebApp(texts.menu_button, WebAppInfo(address.base))
    with contextlib.suppress(TelegramError):  # the bot-wide button still opens the library
        await context.bot.set_chat_menu_button(chat_id=chat.id, menu_button=button)

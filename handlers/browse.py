"""/tags, /find and their buttons: a user's own links, by tag and words."""

from __future__ import annotations

from bson import ObjectId
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ChatType, ParseMode

from bot.chat import callbacks, render
from bot.chat.callbacks import FindPage, TagLinks
from bot.chat.edits import unless_unchanged
from bot.services import Context
from bot.tags import HASH_MARKS, clean_tag
from handlers import web
from handlers.common import texts_of

PAGE_SIZE = 10
TAG_BUTTONS = 24
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


def parse_query(text: str) -> tuple[list[str], str]:
    """`/find #a #b some words` → (["a", "b"], "some words")."""
    tags: list[str] = []
    words: list[str] = []
    for token in text.split()[1:] if text.startswith("/") else text.split():
        tag = clean_tag(token) if token[0] in HASH_MARKS else None
        if tag is not None:
            if tag not in tags:
                tags.append(tag)
        else:
            words.append(token)
    return tags, " ".join(words)


async def tags_command(update: Update, context: Context) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    counts = await context.services.store.tag_counts(user.id)
    codec = callbacks.codec_for(context.bot.token)
    buttons = [
        codec.button(f"#{c.tag} ({c.count})", TagLinks(c.tag), user.id)
        for c in counts[:TAG_BUTTONS]
        if codec.fits(TagLinks(c.tag))
    ]
    rows = [buttons[i : i + 3] for i in range(0, len(buttons), 3)]
    if message.chat.type == ChatType.PRIVATE:  # web_app buttons only work in private chats
        library = web.library_button(context.services.web, texts_of(update).library_button)
        rows += [[library]] if library else []
    await message.reply_text(
        render.tags_message(counts, texts_of(update)),
        parse_mode=ParseMode.HTML,
        reply_markup=InlineKeyboardMarkup(rows) if rows else None,
    )


async def find_command(update: Update, context: Context) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    tags, words = parse_query(message.text or "")
    query_id = await context.services.store.queries.save(user.id, tags, words)
    text, markup = await _find_page(context, user.id, query_id, tags, words, 0, update)
    await message.reply_text(
        text, parse_mode=ParseMode.HTML, reply_markup=markup, link_preview_options=NO_PREVIEW
    )


async def _find_page(
    context: Context,
    owner_id: int,
    query_id: ObjectId,
    tags: list[str],
    words: str,
    page: int,
    update: Update,
) -> tuple[str, InlineKeyboardMarkup | None]:
    store = context.services.store
    result = await store.find(owner_id, tags, words, page=page, page_size=PAGE_SIZE)
    query = " ".join([*(f"#{t}" for t in tags), words]).strip()
    text = render.find_message(result, query, texts_of(update))
    codec = callbacks.codec_for(context.bot.token)
    nav: list[InlineKeyboardButton] = []
    if page > 0:
        nav.append(codec.button("◀", FindPage(query_id, page - 1), owner_id))
    if page + 1 < result.pages:
        nav.append(codec.button("▶", FindPage(query_id, page + 1), owner_id))
    rows = [nav] if nav else []
    chat = update.effective_chat
    if chat is not None and chat.type == ChatType.PRIVATE:  # web_app buttons: private only
        address = context.services.web
        library = web.library_button(address, texts_of(update).library_button, tags, words)
        rows += [[library]] if library else []
    return text, InlineKeyboardMarkup(rows) if rows else None


async def find_button(update: Update, context: Context, action: FindPage) -> None:
    """◀ ▶: only the user who ran the query can page it (the codec and the saved query
    both check)."""
    query, user = update.callback_query, update.effective_user
    if query is None or user is None:
        return
    saved = await context.services.store.queries.get(user.id, action.query_id)
    if saved is None:
        await query.answer(texts_of(update).stale_button)
        return
    await query.answer()
    text, markup = await _find_page(context, user.id, action.query_id, *saved, action.page, update)
    await unless_unchanged(
        query.edit_message_text(
            text, parse_mode=ParseMode.HTML, reply_markup=markup, link_preview_options=NO_PREVIEW
        )
    )


async def tag_button(update: Update, context: Context, action: TagLinks) -> None:
    """A tag tapped in /tags: its links, as /find #tag would list them."""
    query, user = update.callback_query, update.effective_user
    if query is None or user is None or query.message is None:
        return
    tag = clean_tag(action.tag) or action.tag
    await query.answer()
    query_id = await context.services.store.queries.save(user.id, [tag], "")
    text, markup = await _find_page(context, user.id, query_id, [tag], "", 0, update)
    await context.bot.send_message(
        query.message.chat.id,
        text,
        parse_mode=ParseMode.HTML,
        reply_markup=markup,
        link_preview_options=NO_PREVIEW,
    )

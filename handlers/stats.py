"""/stats: links, tags, this month's captures and failures, LLM tokens, screenshot storage."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot import render
from bot.services import get_services
from bot.stats import human_bytes, user_stats
from handlers.common import texts_of
from storage.models import utcnow


async def stats_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    texts = texts_of(update)
    stats = await user_stats(get_services(context).store, user.id, utcnow())
    tokens = "".join(
        texts.stats_model.format(model=render.esc(model), prompt=p, completion=c)
        for model, (p, c) in sorted(stats.tokens.items())
    )
    await message.reply_text(
        texts.stats.format(
            links=stats.links,
            tags=stats.tags,
            captured=stats.captured_this_month,
            failed=stats.failed_this_month,
            pending=stats.waiting,
            storage=human_bytes(stats.screenshot_bytes),
            tokens=tokens or texts.stats_no_tokens,
        ),
        parse_mode=ParseMode.HTML,
    )

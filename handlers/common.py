"""Small helpers every handler uses."""

from __future__ import annotations

from telegram import Update

from bot.i18n import Texts, texts_for


def texts_of(update: Update) -> Texts:
    user = update.effective_user
    return texts_for(user.language_code if user else None)

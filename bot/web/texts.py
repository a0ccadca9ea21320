"""The pages' words, from bot/i18n like every other sentence the bot says."""

from __future__ import annotations

from bot.chat.render import plain_text
from bot.i18n import Texts, texts_for


def page_texts(texts: Texts) -> dict[str, str]:
    """What the page shows, plain text with `{placeholders}` the page fills in."""
    out = dict(texts.web_ui)
    out.update(
        lang="zh" if texts.locale.startswith("zh") else "en",
        not_allowed=texts.not_allowed,
        too_fast=texts.too_fast,
        saved_on=texts.saved_on,
        partial=plain_text(texts.partial_note),
        file_full_page=texts.btn_full_page,
        file_pdf=texts.btn_pdf,
        file_mhtml=texts.btn_archive,
        file_making=plain_text(texts.file_making),
        undo_expired=texts.undo_expired,
        undo_conflict=texts.undo_conflict,
        db_down=texts.db_down_read,
    )
    for kind, name in texts.file_kinds.items():
        out[f"kind_{kind}"] = name
    return out


def refusal(kind: str, lang: str | None) -> str:
    """The sentence for a refused request (a key of `page_texts`)."""
    texts = page_texts(texts_for(lang))
    return texts.get(kind, texts["error"])

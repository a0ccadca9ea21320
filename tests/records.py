"""Link records as tests build them: one owner's link of one URL (its chat is the owner's
private chat, its key the bot's own normalisation)."""

from __future__ import annotations

from typing import Any

from bot.chat.links import url_key
from storage.models import LinkRecord


def owned(owner: int, url: str, **fields: Any) -> LinkRecord:
    return LinkRecord(owner_id=owner, chat_id=owner, url=url, url_key=url_key(url), **fields)

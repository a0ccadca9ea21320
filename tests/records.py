"""Link records as tests build them: one owner's link of one URL (its chat is the owner's
private chat, its key the bot's own normalisation); bookmarks imported as a file is."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bson import ObjectId

from bot.chat.links import url_key
from bot.guard.netguard import NetGuard
from bot.library.bookmarks import Bookmark, Parsed
from bot.library.transfer import ImportCounts, import_links
from storage.models import LinkRecord
from storage.repository import LinkStore
from storage.trash import Trash


def owned(owner: int, url: str, **fields: Any) -> LinkRecord:
    return LinkRecord(owner_id=owner, chat_id=owner, url=url, url_key=url_key(url), **fields)


async def import_bookmarks(store: LinkStore, marks: list[Bookmark], owner: int) -> ImportCounts:
    """`owner`'s bookmarks imported as the bot imports a text file from them (its
    addresses may be on 127.0.0.1), without the progress messages."""
    return await import_links(
        store,
        NetGuard(["127.0.0.1"]),
        Parsed("text", marks, 0),
        owner_id=owner,
        chat_id=owner,
        lang="en",
        on_progress=lambda c: None,
    )


async def deleted(store: LinkStore, owner: int, link_id: ObjectId) -> bool:
    """A link deleted for good as the bot deletes it (hidden in the trash, then purged);
    False when the owner has no such link."""
    trash = Trash(store)
    if await trash.hide(owner, link_id, keep_for=timedelta(0)) is None:
        return False
    return await trash.purge(link_id) is not None

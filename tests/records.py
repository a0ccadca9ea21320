"""Link records as tests build them: one owner's link of one URL (its chat is the owner's
private chat, its key the bot's own normalisation); bookmarks imported as a file is."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from bot.chat.links import url_key
from bot.guard.netguard import NetGuard
from bot.library.bookmarks import Bookmark, Parsed
from bot.library.transfer import ImportCounts, import_links
from storage.bulk import record_imported
from storage.models import LinkRecord, Status
from storage.queue.claims import PRIO_BY_HAND
from storage.repository import LinkStore
from storage.trash import Trash


async def work_of(store: LinkStore, owner: int) -> list[dict[str, Any]]:
    """The owner's work entries: an import's wait in the queue's backlog until claimed."""
    return [
        d
        for coll in (store.work, store.queue.backlog)
        async for d in coll.find({"owner_id": owner})
    ]


def owned(owner: int, url: str, **fields: Any) -> LinkRecord:
    return LinkRecord(owner_id=owner, chat_id=owner, url=url, url_key=url_key(url), **fields)


def captured_page(
    owner: int, url: str, n: int, tags: list[str], text: str, created_at: datetime
) -> LinkRecord:
    """`owner`'s captured page number `n` of the listing tests, titled "page <owner>-<n>"."""
    return owned(
        owner,
        url,
        tags=tags,
        title=f"page {owner}-{n}",
        text=text,
        status=Status.DONE,
        created_at=created_at,
    )


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


async def seed_links(store: LinkStore, records: list[LinkRecord]) -> int:
    """Links stored at once, as sent by hand, through the bot's one bulk writer (an
    import's, without the import mark); returns how many were new."""
    stored = 0
    for start in range(0, len(records), 500):
        batch = records[start : start + 500]
        stored += await record_imported(store, batch, prio=PRIO_BY_HAND, turn=0.0, imported=False)
    return stored

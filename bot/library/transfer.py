"""Export a user's links as files; import bookmark files as links.

Imported links are recorded first (status pending, `imported: true`, queued at
`PRIO_IMPORTED`, after every link sent by hand), so nothing is lost if the bot stops;
the pipeline's workers capture them later. Addresses are screened without DNS: the
name of every one of thousands of bookmarks is not looked up now (the capture checks
each destination again, through the egress guard, when it opens it).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from pymongo.errors import PyMongoError

from bot.chat.links import url_key
from bot.guard.netguard import Blocked, NetGuard, parse_host
from bot.library import bookmarks
from bot.library.bookmarks import Bookmark, Parsed
from bot.tags import cap_tags, clean_tags
from storage import bulk
from storage.errors import LinksnapError
from storage.models import LinkRecord, utcnow
from storage.queue.claims import PRIO_IMPORTED
from storage.repository import LinkStore

MAX_IMPORT_MB = 20  # the Bot API's getFile limit, too
MAX_IMPORT_BYTES = MAX_IMPORT_MB * 1024 * 1024
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # what a bot may send as a document
BATCH = 250
YIELD_EVERY = 50


@dataclass
class ImportCounts:
    total: int  # web links in the file
    saved: int = 0
    duplicates: int = 0  # repeats inside the file, and links the user already had
    invalid: int = 0  # entries that are not web links, or point at private addresses
    capped: int = 0  # links whose tags were cut to MAX_TAGS_PER_LINK

    @property
    def done(self) -> int:
        return self.saved + self.duplicates


async def _screened(guard: NetGuard, url: str) -> bool:
    """False for an IP-literal destination the bot would never open; names pass here."""
    try:
        parts = urlsplit(url)
        host = parse_host(parts.hostname or "")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except (Blocked, ValueError):
        return False
    if isinstance(host, str):
        return True
    return (await guard.check_host(str(host), port)).allowed


def _record(owner_id: int, chat_id: int, lang: str, mark: Bookmark) -> LinkRecord:
    when = mark.created_at or utcnow()
    extra = mark.extra
    return LinkRecord(
        owner_id=owner_id,
        chat_id=chat_id,
        url=mark.url,
        url_key=url_key(mark.url),
        tags=cap_tags(clean_tags(mark.tags))[0],  # as the reader left them, unless built here
        note=mark.note,
        lang_code=lang,
        title=mark.title,
        description=extra.get("description"),
        site_name=extra.get("site_name"),
        lang=extra.get("lang"),
        summary=extra.get("summary"),
        created_at=when,
    )


async def import_links(
    store: LinkStore,
    guard: NetGuard,
    parsed: Parsed,
    *,
    owner_id: int,
    chat_id: int,
    lang: str,
    on_progress: Callable[[ImportCounts], None],
) -> ImportCounts:
    """Record every bookmark, a batch at a time; `on_progress` after each batch.

    A database error propagates with `counts` as far as they got (see ImportStopped).
    """
    counts = ImportCounts(
        total=parsed.entries,
        duplicates=parsed.repeats,
        invalid=parsed.invalid,
        capped=parsed.capped,
    )
    turn = time.time()
    batch: list[LinkRecord] = []
    seen: set[str] = set()
    try:
        await bulk.repair_imports(store, owner_id)  # what a killed import left half-done
        for index, mark in enumerate(parsed.bookmarks):
            if index % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # normalising URLs is CPU work: others get turns
            record = _record(owner_id, chat_id, lang, mark)
            if not await _screened(guard, mark.url):
                counts.invalid += 1
                counts.total -= 1
                continue
            if record.url_key in seen:  # two spellings of one page
                counts.duplicates += 1
                continue
            seen.add(record.url_key)
            batch.append(record)
            if len(batch) >= BATCH:
                await _flush(store, batch, counts, turn)
                on_progress(counts)
                batch = []
        await _flush(store, batch, counts, turn)
    except PyMongoError as exc:
        raise ImportStopped(counts) from exc
    return counts


class ImportStopped(LinksnapError):
    """The database failed part-way; what was recorded stays recorded."""

    def __init__(self, counts: ImportCounts) -> None:
        super().__init__(f"import stopped after {counts.saved} of {counts.total}")
        self.counts = counts


async def _flush(
    store: LinkStore, batch: list[LinkRecord], counts: ImportCounts, turn: float
) -> None:
    if not batch:
        return
    new = await bulk.record_imported(store, batch, prio=PRIO_IMPORTED, turn=turn)
    counts.saved += new
    counts.duplicates += len(batch) - new


@dataclass
class ExportFiles:
    count: int
    netscape: bytes
    json: bytes


async def export_links(
    store: LinkStore,
    owner_id: int,
    *,
    on_progress: Callable[[int], None],
    now: datetime | None = None,
) -> ExportFiles:
    """Both files in one pass over the owner's links (newest first)."""
    html_out = io.StringIO()
    json_out = io.StringIO()
    html_out.write(bookmarks.NETSCAPE_HEAD)
    json_out.write(bookmarks.json_head(now or utcnow()))
    count = 0
    async for page in bulk.owner_docs(store, owner_id):
        for doc in page:
            html_out.write(bookmarks.netscape_entry(doc))
            json_out.write(bookmarks.json_entry(doc, first=count == 0))
            count += 1
        on_progress(count)
    html_out.write(bookmarks.NETSCAPE_TAIL)
    json_out.write(bookmarks.JSON_TAIL)
    return ExportFiles(count, html_out.getvalue().encode(), json_out.getvalue().encode())

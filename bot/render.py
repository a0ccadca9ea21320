"""HTML for captions and lists. Everything from a page or a user is escaped here."""

from __future__ import annotations

import html
import re
import urllib.parse
from datetime import datetime

from bot.capture_error import CaptureError, DownloadRefused, FileTooLarge
from bot.i18n import Texts
from bot.links import MAX_LINKS, MAX_URL_LENGTH, ParsedMessage
from storage.models import LinkRecord, Page, TagCount

TITLE_MAX = 200
_MARKUP = re.compile(r"<[^>]+>")
NOTE_MAX = 300


def esc(text: str | None) -> str:
    return html.escape(text or "", quote=True)


def plain_text(markup: str) -> str:
    """The text a reader sees of Telegram HTML (for a page that shows it as text)."""
    return html.unescape(_MARKUP.sub("", markup))


def refusal_lines(parsed: ParsedMessage, texts: Texts) -> list[str]:
    """Why links were refused and how many were skipped, one HTML line each (at most 5
    refusals named): what the chat replies, and what the pages show."""
    lines = []
    for rejected in parsed.rejected[:5]:
        url = esc(rejected.url[:80])
        if rejected.reason == "scheme":
            lines.append(texts.refused_scheme.format(url=url))
        elif rejected.reason == "blocked":
            lines.append(texts.refused_blocked.format(url=url))
        elif rejected.reason == "too_long":
            lines.append(texts.refused_too_long.format(limit=MAX_URL_LENGTH))
        else:
            lines.append(texts.refused_malformed.format(url=url))
    if parsed.skipped:
        lines.append(texts.skipped_links.format(limit=MAX_LINKS, count=parsed.skipped))
    return lines


def domain(url: str) -> str:
    host = urllib.parse.urlsplit(url).hostname or url
    return host.removeprefix("www.")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def tag_list(tags: list[str]) -> str:
    return " ".join(f"#{esc(tag)}" for tag in tags)


def link_title(record: LinkRecord) -> str:
    """The page title as a link (the URL itself when the page had no title)."""
    title = _clip(record.title or record.url, TITLE_MAX)
    return f'<a href="{esc(record.url)}">{esc(title)}</a>'


def caption(
    record: LinkRecord, texts: Texts, *, saved_on: datetime | None = None, partial: bool = False
) -> str:
    """Screenshot caption: title link, domain, tags, note; well inside 1024.

    `partial` (or `record.partial`): the snapshot was taken when the capture budget ran
    out (Snapshot.partial), and the caption says so.
    """
    lines = [f"<b>{link_title(record)}</b>", f"🌐 {esc(domain(record.final_url or record.url))}"]
    if record.tags:
        lines.append(tag_list(record.tags))
    if record.note:
        lines.append(f"<i>{esc(_clip(record.note, NOTE_MAX))}</i>")
    if record.http_status and record.http_status >= 400:
        lines.append(texts.http_status_note.format(status=record.http_status))
    if partial or record.partial:
        lines.append(texts.partial_note)
    if saved_on is not None:
        lines.append(texts.saved_on.format(date=saved_on.strftime("%Y-%m-%d")))
    return "\n".join(lines)


def file_size(size: int) -> str:
    """1 536 → "1.5 KB"; binary units, as Telegram shows file sizes."""
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def capture_reason(exc: CaptureError, texts: Texts) -> str:
    """Why a capture failed, in the user's language (escaped; sizes and types where known)."""
    if isinstance(exc, DownloadRefused):
        size = file_size(exc.size) if exc.size is not None else texts.size_unknown
        kind = esc(exc.content_type or "?")
        return texts.file_download_refused.format(type=kind, size=size)
    if isinstance(exc, FileTooLarge) and exc.size is not None:
        what = texts.file_kinds.get(exc.what, exc.what)
        return texts.file_too_large.format(
            what=esc(what), size=file_size(exc.size), limit=file_size(exc.limit)
        )
    return texts.capture_reasons.get(exc.reason, texts.capture_reasons["browser"])


def tags_message(counts: list[TagCount], texts: Texts) -> str:
    if not counts:
        return texts.tags_none
    rows = [f"#{esc(c.tag)} — {c.count}" for c in counts]
    return "\n".join([texts.tags_header, *rows])


def find_message(result: Page, query: str, texts: Texts) -> str:
    if result.total == 0:
        return texts.find_none.format(query=esc(query) or "…")
    header = (
        texts.find_header.format(query=esc(query), total=result.total)
        if query
        else texts.find_latest_header.format(total=result.total)
    )
    first = result.page * result.page_size + 1
    rows = [_find_row(r, first + i, texts) for i, r in enumerate(result.items)]
    footer = texts.page_of.format(page=result.page + 1, pages=result.pages)
    return "\n".join([header, "", *rows, "", footer])


def _find_row(record: LinkRecord, number: int, texts: Texts) -> str:
    date = record.created_at.strftime("%Y-%m-%d")
    tags = f" {tag_list(record.tags)}" if record.tags else ""
    gone = f" {texts.link_gone}" if record.alive is False else ""
    return f"{number}. {link_title(record)} — {esc(domain(record.url))}, {date}{tags}{gone}"

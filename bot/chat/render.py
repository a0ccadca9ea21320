"""HTML for captions and lists. Everything from a page or a user is escaped here."""

from __future__ import annotations

import html
import re
import urllib.parse
from datetime import datetime

from bot.browser.errors import CaptureError, DownloadRefused, FileTooLarge
from bot.chat.links import MAX_LINKS, MAX_URL_LENGTH, ParsedMessage
from bot.chat.streaming import visible_len
from bot.i18n import Texts
from storage.models import LinkRecord, Page, TagCount
from storage.rot import GoneItem

# Telegram counts UTF-16 units of the text after entity parsing (streaming.visible_len);
# every reply built here fits its limit by construction, whatever the user stored.
CAPTION_LIMIT = 1024
TEXT_LIMIT = 4096
TITLE_MAX = 200  # units of a title in a caption
_MARKUP = re.compile(r"<[^>]+>")
NOTE_MAX = 300
DOMAIN_MAX = 80
QUERY_MAX = 200  # a /find query echoed back
ROW_TITLE_MAX = 120  # a title in a /find row
ROW_TAGS_MAX = 100
ELLIPSIS = "…"
# Embeddings, overrides and isolates (U+202A–E, U+2066–9): in a title or note they could
# make what follows them read in another direction. Stripped where shown; the text stays.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


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


def units(text: str) -> int:
    """UTF-16 code units of plain text, as Telegram counts them."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def clip(text: str, limit: int) -> str:
    """Plain text cut to at most `limit` UTF-16 units, ending in "…" when cut."""
    if units(text) <= limit:
        return text
    used, end = 0, 0
    for end, char in enumerate(text):  # noqa: B007 (where the loop stopped is the cut)
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit - 1:
            break
    return text[:end].rstrip() + ELLIPSIS


def shown(text: str | None) -> str:
    """Text from a page or a user as a reply shows it: direction controls removed."""
    return _BIDI_CONTROLS.sub("", text or "")


def domain(url: str) -> str:
    host = urllib.parse.urlsplit(url).hostname or url
    return host.removeprefix("www.")


def _clip(text: str, limit: int) -> str:
    return clip(shown(text), limit)


def tag_list(tags: list[str], limit: int | None = None) -> str:
    """`#a #b …` as HTML, within `limit` visible units (cut with "…" before a tag)."""
    words = [f"#{shown(tag)}" for tag in tags]
    if limit is None or units(" ".join(words)) <= limit:
        return " ".join(esc(w) for w in words)
    kept: list[str] = []
    used = 0
    for word in words:
        width = units(word) + (1 if kept else 0)
        if used + width > limit - 2:  # room for " …"
            break
        kept.append(word)
        used += width
    return " ".join([*(esc(w) for w in kept), ELLIPSIS])


def link_title(record: LinkRecord, limit: int = TITLE_MAX) -> str:
    """The page title as a link (the URL itself when the page had no title)."""
    title = _clip(record.title or record.url, limit)
    return f'<a href="{esc(record.url)}">{esc(title)}</a>'


def caption(
    record: LinkRecord,
    texts: Texts,
    *,
    saved_on: datetime | None = None,
    partial: bool = False,
    tail: str = "",
) -> str:
    """Screenshot caption: title link, domain, tags, note, then `tail` (a line of the
    bot's own); within CAPTION_LIMIT however many tags or however long the note.

    `partial` (or `record.partial`): the snapshot was taken when the capture budget ran
    out (Snapshot.partial), and the caption says so.
    """
    head = [
        f"<b>{link_title(record)}</b>",
        f"🌐 {esc(_clip(domain(record.final_url or record.url), DOMAIN_MAX))}",
    ]
    foot: list[str] = []
    if record.http_status and record.http_status >= 400:
        foot.append(texts.http_status_note.format(status=record.http_status))
    if partial or record.partial:
        foot.append(texts.partial_note)
    if saved_on is not None:
        foot.append(texts.saved_on.format(date=saved_on.strftime("%Y-%m-%d")))
    if tail:
        foot.append(f"\n{tail}")
    fixed = visible_len("\n".join(head + foot)) + 2  # the newlines before tags and note
    tags, note = _tags_and_note(record, CAPTION_LIMIT - fixed)
    return "\n".join([*head, *(x for x in (tags, note) if x), *foot])


def _tags_and_note(record: LinkRecord, room: int) -> tuple[str, str]:
    """The tag line and the note line sharing `room` units: the note keeps up to a third
    of it when both are long (it is one line; tags are cut with "…")."""
    note_text = shown(record.note).strip()
    tags_need = units(" ".join(f"#{t}" for t in record.tags)) if record.tags else 0
    note_need = min(units(note_text), NOTE_MAX) if note_text else 0
    if tags_need + note_need > room:
        note_need = min(note_need, max(room // 3, room - tags_need))
    tags = tag_list(record.tags, max(0, room - note_need)) if record.tags else ""
    note = f"<i>{esc(clip(note_text, note_need))}</i>" if note_text and note_need > 1 else ""
    return tags, note


def file_size(size: int) -> str:
    """1 536 → "1.5 KB"; binary units, as Telegram shows file sizes."""
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def failure_line(texts: Texts, url: str, error: str, why: str | None = None) -> str:
    """The line telling a user why a link failed: `why` as its stage worded it (escaped),
    else from its stored `error` ("reason: detail"; reason "telegram" when Telegram
    refused the photo)."""
    reason, _, detail = error.partition(": ")
    if reason == "telegram":
        why = esc(clip(detail, 300)) if why is None else why
        return texts.snapshot_refused.format(url=esc(clip(url, 300)), reason=why)
    if why is None:
        why = texts.capture_reasons.get(reason, texts.capture_reasons["browser"])
    return texts.failed_link.format(url=esc(url[:300]), reason=why)


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
    """The user's tags with counts, most used first, within one message."""
    if not counts:
        return texts.tags_none
    rows = [texts.tags_header]
    used = visible_len(texts.tags_header)
    for index, c in enumerate(counts):
        row = f"#{esc(shown(c.tag))} — {c.count}"
        after = len(counts) - index - 1
        room = 1 + visible_len(texts.tags_more.format(count=after)) if after else 0
        if used + 1 + visible_len(row) + room > TEXT_LIMIT:
            rows.append(texts.tags_more.format(count=len(counts) - index))
            break
        rows.append(row)
        used += 1 + visible_len(row)
    return "\n".join(rows)


def find_message(result: Page, query: str, texts: Texts) -> str:
    """A page of /find: the query echoed and each row cut so that the page always fits
    one message, however long the titles, tags or query."""
    query = esc(clip(shown(query), QUERY_MAX))
    if result.total == 0:
        return texts.find_none.format(query=query or "…")
    header = (
        texts.find_header.format(query=query, total=result.total)
        if query
        else texts.find_latest_header.format(total=result.total)
    )
    footer = texts.page_of.format(page=result.page + 1, pages=result.pages)
    count = max(1, len(result.items))
    room = (TEXT_LIMIT - visible_len(header) - visible_len(footer) - 4) // count - 1
    first = result.page * result.page_size + 1
    rows = [_find_row(r, first + i, texts, room) for i, r in enumerate(result.items)]
    return "\n".join([header, "", *rows, "", footer])


def _find_row(record: LinkRecord, number: int, texts: Texts, room: int) -> str:
    """One row within `room` units: title up to ROW_TITLE_MAX, then tags in what is left."""
    date = record.created_at.strftime("%Y-%m-%d")
    gone = f" {texts.link_gone}" if record.alive is False else ""
    where = esc(_clip(domain(record.url), min(DOMAIN_MAX, room // 4)))
    fixed = visible_len(f"{number}.  — {where}, {date}{gone}")
    title = link_title(record, max(8, min(ROW_TITLE_MAX, (room - fixed) * 2 // 3)))
    left = room - fixed - visible_len(title) - 1
    tags = f" {tag_list(record.tags, min(ROW_TAGS_MAX, left))}" if record.tags and left > 4 else ""
    return f"{number}. {title} — {where}, {date}{tags}{gone}"


def digest_message(
    items: list[GoneItem],
    first: int,
    total: int,
    when: str,
    texts: Texts,
    page: int,
    pages: int,
) -> str:
    """One page of a link-rot digest: the count, the pages (numbered from `first`, as
    their 📸 buttons are), how to see them and how to stop these notes."""
    header = texts.digest_header.format(count=total, when=esc(when))
    rows = [
        f'{first + i}. <a href="{esc(item.url)}">{esc(_clip(item.title or item.url, 80))}</a>'
        f" — {esc(domain(item.url))}"
        for i, item in enumerate(items)
    ]
    footer = [texts.digest_footer]
    if pages > 1:
        footer.append(texts.page_of.format(page=page + 1, pages=pages))
    return "\n".join([header, "", *rows, "", *footer])

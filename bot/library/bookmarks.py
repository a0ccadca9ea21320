"""Bookmark files in and out: Netscape HTML, the bot's own JSON, CSV, plain text.

Netscape bookmark files (what browsers, Pocket, Raindrop, Karakeep and Linkwarden
write) are loose HTML: `<DT>` and `<DD>` are never closed. libxml2's HTML parser (lxml,
already installed for trafilatura) reads them as a stream of tags, which is all the
format needs, in C and in time linear in the file: the standard library's HTMLParser of
Python 3.11.7 takes 34 s for 30 KB of unclosed `<a ` (its quadratic end-of-file handling
was only fixed in later security releases), and the one PyPI parser for the format
(bookmarks-parser) has had no release since 2019. The innermost folder names and `TAGS` become tags (through the one
tag normaliser, at most MAX_TAGS_PER_LINK a link), `<DD>` becomes the note.

Everything here is pure: bytes in, bookmarks out (and back); no Telegram, no database.
The bot reads files in a child process (bot/library/import_reader.py), bounded in time and
memory; every cost here is bounded by the file's size and MAX_ENTRIES.
"""

from __future__ import annotations

import codecs
import csv
import html
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from lxml import etree

from bot.chat.links import check_url
from bot.tags import cap_tags, clean_tag, clean_tags, merge_tags
from storage.errors import LinksnapError

FORMAT_NAME = "linksnap"
FORMAT_VERSION = 1
MAX_TITLE = 1000
MAX_NOTE = 4000
MAX_ENTRIES = 100_000  # entries read from one file (a 20 MB file could hold far more)
FOLDER_TAGS = 3  # a bookmark in a/b/c/d/e is tagged #c #d #e
MAX_JSON_DEPTH = 64  # a bookmark export nests a handful of levels
_BINARY_MAGIC = (b"%PDF", b"PK\x03\x04", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"\x1f\x8b", b"7z")
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""
_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON string (skipped whole, possessively: linear on any input) or a bracket.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')
# Browser root folders: a tag on every bookmark says nothing.
_ROOT_FOLDERS = frozenset(
    {
        "bookmarks",
        "bookmarks bar",
        "bookmarks toolbar",
        "bookmarks menu",
        "other bookmarks",
        "mobile bookmarks",
        "favorites bar",
        "favourites bar",
        "unsorted",
        "书签栏",
        "其他书签",
        "移动设备书签",
        "收藏夹栏",
    }
)


class ImportRefused(LinksnapError):
    """A file that yields nothing to import; subclasses say why."""


class UnknownFormat(ImportRefused):
    """Not a bookmark file at all (a PDF, an image, an archive…)."""


class BadEncoding(UnknownFormat):
    """Text, perhaps, but neither UTF-8 nor UTF-16."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Malformed(ImportRefused):
    """Looks like a known format but cannot be read; nothing from it is used."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class TooDeep(ImportRefused):
    """Nested deeper than a bookmark file ever is (JSON arrays in arrays…)."""


class TooMany(ImportRefused):
    """More entries than one import takes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} entries")
        self.limit = limit


class NoLinks(ImportRefused):
    """Readable, but without a single web link."""


@dataclass
class Bookmark:
    url: str
    title: str | None = None
    tags: list[str] = field(default_factory=list)
    note: str = ""
    created_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # own-JSON fields kept as they were


@dataclass
class Parsed:
    kind: str  # "Netscape HTML", "JSON", "CSV", "text"
    bookmarks: list[Bookmark]
    invalid: int  # entries whose address is not an http(s) web link
    repeats: int = 0  # entries naming a page the file already had
    capped: int = 0  # links that had more than MAX_TAGS_PER_LINK tags (the first kept)

    @property
    def entries(self) -> int:
        """Entries with a web link in the file, repeats included."""
        return len(self.bookmarks) + self.repeats


def text_of(raw: object) -> str:
    """A string from a file as it may be stored: lone surrogates (which a JSON file can
    hold as `\\ud800` escapes and no database can store) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", str(raw))


def _when(raw: object) -> datetime | None:
    """Unix seconds (or ms / µs), or an ISO 8601 string."""
    if raw is None or raw == "":
        return None
    text = text_of(raw).strip()[:64]
    try:
        number = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    while number > 1e11:  # milliseconds or microseconds
        number /= 1000
    try:
        return datetime.fromtimestamp(number, UTC) if number > 0 else None
    except (OverflowError, OSError, ValueError):
        return None


# --- reading -------------------------------------------------------------------------


def parse(data: bytes) -> Parsed:
    """Read any supported file; ImportRefused (with a reason) when nothing can be used.

    The format is told by reading, not by a word near the start: text that opens with
    `{` or `[` and reads as JSON is JSON (a linksnap export whose notes mention `<DT>` is
    still JSON; a Markdown list of `[title](url)` is not), a
    first line naming a url column is CSV, markup with links in it is a bookmark page,
    and anything else is searched for web links.
    """
    if any(data.startswith(m) for m in _BINARY_MAGIC) or b"\0" in data[:8192]:
        raise UnknownFormat("binary file")
    text = _decode(data)
    body = text.lstrip()
    parsed = _json(text) if body.startswith(("{", "[")) else None
    if parsed is None:
        parsed = _csv(text) if _csv_header(body[:2048]) is not None else _markup_or_plain(text)
    if not parsed.bookmarks:
        raise NoLinks(parsed.kind)
    return parsed


def _markup_or_plain(text: str) -> Parsed:
    markup = _netscape(text) if "<" in text else None
    found_any = markup is not None and (markup.bookmarks or markup.invalid)
    return markup if markup is not None and found_any else _plain(text)


def _decode(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise BadEncoding(f"broken UTF-16 at byte {exc.start}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadEncoding(f"not UTF-8 at byte {exc.start}") from None


class _Collector:
    """Bookmarks, de-duplicated by address within one file, invalid ones counted, tags
    capped per link."""

    def __init__(self) -> None:
        self.items: dict[str, Bookmark] = {}
        self.invalid = 0
        self.repeats = 0
        self.capped: set[str] = set()

    def add(self, mark: Bookmark) -> Bookmark | None:
        if len(self.items) + self.repeats + self.invalid >= MAX_ENTRIES:
            raise TooMany(MAX_ENTRIES)
        url, _ = check_url(mark.url.strip())
        if url is None or not mark.url.strip().lower().startswith(("http://", "https://")):
            self.invalid += 1
            return None
        mark.url = url
        mark.title = text_of(mark.title or "").strip()[:MAX_TITLE] or None
        mark.note = text_of(mark.note).strip()[:MAX_NOTE]
        seen = self.items.get(url)
        if seen is not None:  # the same page in two folders: one link, both tags
            self.repeats += 1
            seen.tags, dropped = merge_tags(seen.tags, mark.tags)
            if dropped:
                self.capped.add(url)
            return seen
        mark.tags, dropped = cap_tags(mark.tags)
        if dropped:
            self.capped.add(url)
        self.items[url] = mark
        return mark

    def result(self, kind: str) -> Parsed:
        items = list(self.items.values())
        return Parsed(kind, items, self.invalid, self.repeats, len(self.capped))


def _tags(names: Iterable[object]) -> list[str]:
    """Tag names from a file, each through the one normaliser (bot/tags.py)."""
    return clean_tags([text_of(n) for n in names])


class _NetscapeReader:
    """lxml's parser target for a Netscape bookmark page: the stream of its tags, folders
    as a stack whose innermost FOLDER_TAGS names tag each bookmark (a folder is cleaned
    once, when it opens)."""

    def __init__(self) -> None:
        self.found = _Collector()
        self.named: list[str] = []  # the open folders' tags, outermost first
        self._opened: list[bool] = []  # per open <DL>: whether it pushed onto `named`
        self._heading: list[str] | None = None
        self._heading_tag: str | None = None  # the next <DL>'s folder
        self._skip_heading = False
        self._anchor: list[str] | None = None
        self._attrs: dict[str, str] = {}
        self._last: Bookmark | None = None
        self._note: list[str] | None = None

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._end_note()
        named = {k.lower(): v or "" for k, v in attrib.items()}
        if tag == "h3":
            self._heading = []
            self._skip_heading = named.get("personal_toolbar_folder", "").lower() == "true"
        elif tag == "dl":
            self._opened.append(self._heading_tag is not None)
            if self._heading_tag is not None:
                self.named.append(self._heading_tag)
            self._heading_tag = None
        elif tag == "a" and "href" in named:
            self._anchor, self._attrs = [], named
        elif tag == "dd" and self._last is not None:
            self._note = []

    def end(self, tag: str) -> None:
        if tag == "h3" and self._heading is not None:
            name = "".join(self._heading).strip()
            keep = not self._skip_heading and name.casefold() not in _ROOT_FOLDERS
            self._heading_tag = clean_tag(name) if keep else None
            self._heading = None
        elif tag == "dl":
            self._end_note()
            if self._opened and self._opened.pop():
                self.named.pop()
        elif tag == "a" and self._anchor is not None:
            attrs = self._attrs
            given = attrs.get("tags", "").split(",")
            mark = Bookmark(
                url=attrs.get("href", ""),
                title="".join(self._anchor),
                tags=list(dict.fromkeys([*self.named[-FOLDER_TAGS:], *_tags(given)])),
                created_at=_when(attrs.get("add_date") or attrs.get("time_added")),
            )
            self._last = self.found.add(mark)
            self._anchor = None

    def data(self, data: str) -> None:
        if self._heading is not None:
            self._heading.append(data)
        elif self._anchor is not None:
            self._anchor.append(data)
        elif self._note is not None:
            self._note.append(data)

    def _end_note(self) -> None:
        if self._note is not None and self._last is not None:
            note = "".join(self._note).strip()
            if note and not self._last.note:
                self._last.note = note[:MAX_NOTE]
        self._note = None

    def close(self) -> Parsed:
        self._end_note()
        return self.found.result("Netscape HTML")


def _netscape(text: str) -> Parsed:
    reader = _NetscapeReader()
    parser = etree.HTMLParser(
        target=reader, recover=True, huge_tree=True, no_network=True, remove_comments=True
    )
    try:
        parser.feed(text)
        parser.close()
    except etree.LxmlError:  # nothing the parser could make sense of
        pass
    return reader.found.result("Netscape HTML")


def _json_depth_over(text: str, limit: int) -> bool:
    """Whether brackets nest deeper than `limit` (the decoder would recurse that deep)."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group(0)
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth -= 1
    return False


def _not_json(text: str, exc: json.JSONDecodeError) -> bool:
    """Whether text opening with `[`/`{` was never JSON (a Markdown link `[a](https://…)`,
    `[1] https://…`): the decoder stopped at the first thing after the bracket, or read a
    whole value followed by more text. A JSON file cut or broken further in is Malformed."""
    opener = len(text) - len(text.lstrip())
    return exc.msg == "Extra data" or not text[opener + 1 : exc.pos].strip()


def _json(text: str) -> Parsed | None:
    """The file read as JSON; None when it is not JSON at all (read as text instead)."""
    if _json_depth_over(text, MAX_JSON_DEPTH):
        raise TooDeep("JSON")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if _not_json(text, exc):
            return None
        raise Malformed("JSON", f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:  # the decoder nests one call per level
        raise TooDeep("JSON") from None
    items: object = data
    if isinstance(data, dict):
        items = data.get("links", data.get("bookmarks", data.get("items")))
    if not isinstance(items, list):
        raise Malformed("JSON", "no list of links in it")
    if len(items) > MAX_ENTRIES:
        raise TooMany(MAX_ENTRIES)
    found = _Collector()
    for item in items:
        mark = _json_item(item)
        if mark is None:
            found.invalid += 1
        else:
            found.add(mark)
    return found.result("JSON")


_OWN_EXTRA = ("description", "site_name", "lang", "summary")


def _json_item(item: object) -> Bookmark | None:
    if isinstance(item, str):
        return Bookmark(url=text_of(item))
    if not isinstance(item, dict):
        return None
    raw_content = item.get("content")
    content: dict[str, Any] = raw_content if isinstance(raw_content, dict) else {}
    url = item.get("url") or item.get("link") or item.get("href") or content.get("url")
    if not isinstance(url, str):
        return None
    raw_tags = item.get("tags") or []
    if isinstance(raw_tags, str):
        raw_tags = raw_tags.split(",")
    if not isinstance(raw_tags, list):
        raw_tags = []
    names = [t.get("name", "") if isinstance(t, dict) else t for t in raw_tags]
    title = item.get("title") or content.get("title")
    note = item.get("note") or item.get("excerpt") or ""
    return Bookmark(
        url=text_of(url),
        title=text_of(title) if title else None,
        tags=_tags(names),
        note=text_of(note),
        created_at=_when(item.get("created_at") or item.get("createdAt") or item.get("created")),
        extra={k: text_of(item[k]) for k in _OWN_EXTRA if isinstance(item.get(k), str)},
    )


_URL_COLUMNS = ("url", "link", "href", "address")


def _csv_header(head: str) -> list[str] | None:
    first = head.splitlines()[0] if head else ""
    if "," not in first and ";" not in first and "\t" not in first:
        return None
    cells = [c.strip().strip('"').casefold() for c in re.split(r"[,;\t]", first)]
    return cells if any(c in _URL_COLUMNS for c in cells) else None


def _csv(text: str) -> Parsed:
    first = text.lstrip().splitlines()[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.DictReader(io.StringIO(text.lstrip()), delimiter=delimiter)
    found = _Collector()
    try:
        for row in reader:
            found_row = _csv_row({(k or "").strip().casefold(): v or "" for k, v in row.items()})
            if found_row is None:
                found.invalid += 1
            else:
                found.add(found_row)
    except csv.Error as exc:
        raise Malformed("CSV", f"line {reader.line_num}: {exc}") from None
    return found.result("CSV")


def _csv_row(row: dict[str, Any]) -> Bookmark | None:
    url = next((str(row[c]) for c in _URL_COLUMNS if row.get(c)), None)
    if url is None:
        return None
    raw = str(row.get("tags") or "")
    names = re.split(r"[|,]", raw) if raw else []
    folder = str(row.get("folder") or "")
    if folder:
        names = [*folder.split("/")[-FOLDER_TAGS:], *names]
    return Bookmark(
        url=url.strip(),
        title=str(row.get("title") or "") or None,
        tags=_tags(n for n in names if n.strip()),
        note=str(row.get("note") or row.get("excerpt") or row.get("description") or ""),
        created_at=_when(row.get("created") or row.get("time_added") or row.get("created_at")),
    )


def _plain(text: str) -> Parsed:
    found = _Collector()
    for match in _URL_IN_TEXT.finditer(text):
        found.add(Bookmark(url=match.group(0).rstrip(_TRAILING)))
    return found.result("text")


# --- writing -------------------------------------------------------------------------


def _unix(value: object) -> str:
    return str(int(value.timestamp())) if isinstance(value, datetime) else ""


NETSCAPE_HEAD = (
    "<!DOCTYPE NETSCAPE-Bookmark-file-1>\n"
    "<!-- This is an automatically generated file. -->\n"
    '<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=UTF-8">\n'
    "<TITLE>Bookmarks</TITLE>\n<H1>linksnap</H1>\n<DL><p>\n"
)
NETSCAPE_TAIL = "</DL><p>\n"


def netscape_entry(doc: dict[str, Any]) -> str:
    """One link as `<DT><A HREF ADD_DATE TAGS>title</A>`, its note as `<DD>`."""
    url = html.escape(str(doc.get("url", "")), quote=True)
    attrs = f' HREF="{url}" ADD_DATE="{_unix(doc.get("created_at"))}"'
    updated = _unix(doc.get("updated_at"))
    if updated:
        attrs += f' LAST_MODIFIED="{updated}"'
    tags = ",".join(str(t) for t in doc.get("tags") or [])
    if tags:
        attrs += f' TAGS="{html.escape(tags, quote=True)}"'
    title = html.escape(str(doc.get("title") or doc.get("url") or ""), quote=False)
    line = f"    <DT><A{attrs}>{title}</A>\n"
    note = str(doc.get("note") or "").strip()
    if note:
        line += f"    <DD>{html.escape(note, quote=False)}\n"
    return line


def _plain_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_value(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return None  # binaries stay out of the export
    return value


def json_record(doc: dict[str, Any]) -> dict[str, Any]:
    """One stored link as JSON: every field, ids and dates as strings."""
    out = {"id" if k == "_id" else k: _plain_value(v) for k, v in doc.items()}
    return {k: v for k, v in out.items() if v is not None}


def json_head(exported_at: datetime) -> str:
    """`{"format": "linksnap", "version": 1, "exported_at": …, "links": [` … `]}`."""
    return (
        f'{{"format": "{FORMAT_NAME}", "version": {FORMAT_VERSION}, '
        f'"exported_at": "{exported_at.astimezone(UTC).isoformat()}", "links": [\n'
    )


def json_entry(doc: dict[str, Any], *, first: bool) -> str:
    return ("" if first else ",\n") + json.dumps(json_record(doc), ensure_ascii=False)


JSON_TAIL = "\n]}\n"

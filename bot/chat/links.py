"""Read links, #tags and a note out of a Telegram message; normalise URLs.

Entities come first: Telegram has already found the URLs (`url`), hidden links
(`text_link`, whose target is `entity.url`) and hashtags, in text and captions alike.
"""

from __future__ import annotations

import bisect
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from courlan import normalize_url

from bot.tags import HASH_MARKS, cap_tags, clean_tag

if TYPE_CHECKING:
    from telegram import Message, MessageEntity

# Telegram's entity types by value (MessageEntity.URL, ...): importing `telegram` here
# would load it (~75 ms, ~10 MB) into the import reader's child, which needs check_url.
_URL, _TEXT_LINK, _HASHTAG = "url", "text_link", "hashtag"

MAX_LINKS = 10
MAX_URL_LENGTH = 2048
ACCEPTED_SCHEMES = frozenset({"http", "https"})
# Schemes people paste that Telegram does not mark as links; named so the reply can say why.
_SCHEME_WORD = re.compile(
    r"(?<![\w/])(?:file|data|javascript|vbscript|chrome|chrome-extension|about|ftp|view-source|blob|"
    r"gopher|ws|wss|smb|ssh|tel|intent|content|jar|ldap|dict|sftp):\S+",
    re.IGNORECASE,
)
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_GLUED_SCHEME = re.compile(r"(?<![\w-])(?:view-source|blob|jar|feed|filesystem):$", re.IGNORECASE)


@dataclass
class Rejected:
    url: str
    reason: str  # "scheme", "too_long", "malformed"


@dataclass
class ParsedMessage:
    urls: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    note: str = ""
    skipped: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    tags_dropped: int = 0  # distinct tags past MAX_TAGS_PER_LINK

    def add_tags(self, tags: list[str]) -> None:
        """More (clean) tags, the whole kept within the per-link cap."""
        self.tags, dropped = cap_tags([*self.tags, *tags])
        self.tags_dropped += dropped


def _with_scheme(raw: str) -> str:
    """Telegram marks `example.com/x` as a url; browsers want a scheme."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", raw) or _SCHEME_WORD.fullmatch(raw):
        return raw
    return "https://" + raw


def check_url(raw: str) -> tuple[str | None, str | None]:
    """(url to open, None) or (None, rejection reason)."""
    url = _with_scheme(raw.strip())
    if len(url) > MAX_URL_LENGTH:
        return None, "too_long"
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    if scheme not in ACCEPTED_SCHEMES:
        return None, "scheme"
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port
    except ValueError:
        return None, "malformed"
    if not parts.hostname or any(c.isspace() for c in url):
        return None, "malformed"
    return url, None


def url_key(url: str) -> str:
    """Identity of a link: case, default port, fragment and tracking parameters removed."""
    try:
        normal = normalize_url(url)
    except (ValueError, UnicodeError):
        normal = url
    return urllib.parse.urlsplit(normal)._replace(fragment="").geturl()


def _entities(message: Message) -> tuple[str, dict[MessageEntity, str]]:
    if message.text is not None:
        return message.text, message.parse_entities()
    return message.caption or "", message.parse_caption_entities()


def parse_message(message: Message, *, max_links: int = MAX_LINKS) -> ParsedMessage:
    """Links (capped, de-duplicated), tags and note of one message."""
    text, entities = _entities(message)
    out = ParsedMessage()
    tags: list[str] = []
    candidates: list[str] = []
    spans: list[tuple[int, int]] = []
    marked: list[int] = []  # where Telegram's hashtag entities start
    for entity, value in sorted(entities.items(), key=lambda item: item[0].offset):
        if entity.type == _URL:
            # `view-source:http://…`: Telegram links the http part; the user meant the whole.
            prefix = _GLUED_SCHEME.search(text[: _span(text, value, spans)[0]])
            candidates.append(prefix.group(0) + value if prefix else value)
        elif entity.type == _TEXT_LINK and entity.url:
            candidates.append(entity.url)
            continue  # the visible words of a text_link stay in the note
        elif entity.type == _HASHTAG:
            marked.append(_span(text, value, spans)[0])
            continue
        else:
            continue
        spans.append(_span(text, value, spans))
    if not candidates:
        candidates = _SCHEME_WORD.findall(text)
        spans.extend(_span(text, c, spans) for c in candidates)
    _accept(out, candidates, max_links)
    for tag, span in _typed_tags(text, marked, spans):
        tags.append(tag)
        spans.append(span)
    out.add_tags(tags)
    out.note = _note(text, spans)
    return out


def _typed_tags(
    text: str, marked: list[int], taken: list[tuple[int, int]]
) -> Iterator[tuple[str, tuple[int, int]]]:
    """Each tag typed in `text` and where it stands. Telegram ends a hashtag entity at
    the first non-word character (`#a&b` → `#a`, `#😀` unmarked); a tag here runs from
    its `#` (marked by Telegram, or starting a word) to the next whitespace, as on the
    web pages and in imports, so the one normaliser sees the whole of what was typed."""
    starts = sorted(marked)
    for word in re.finditer(r"\S+", text):
        first = bisect.bisect_left(starts, word.start())
        inside = first < len(starts) and starts[first] < word.end()
        start = starts[first] if inside else word.start()
        if text[start] not in HASH_MARKS or _overlaps((word.start(), word.end()), taken):
            continue
        value = _trim(text[start : word.end()])
        tag = clean_tag(value)
        if tag is not None:
            yield tag, (start, start + len(value))


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(a < span[1] and span[0] < b for a, b in taken)


def _span(text: str, value: str, taken: list[tuple[int, int]]) -> tuple[int, int]:
    start = 0
    while True:
        pos = text.find(value, start)
        if pos < 0:
            return (0, 0)
        if all(not (a <= pos < b) for a, b in taken):
            return (pos, pos + len(value))
        start = pos + 1


def _accept(out: ParsedMessage, candidates: list[str], max_links: int) -> None:
    seen: set[str] = set()
    for raw in candidates:
        url, reason = check_url(raw)
        if url is None:
            out.rejected.append(Rejected(raw[:200], reason or "malformed"))
            continue
        key = url_key(url)
        if key in seen:
            continue
        seen.add(key)
        if len(out.urls) >= max_links:
            out.skipped += 1
        else:
            out.urls.append(url)


def _note(text: str, spans: list[tuple[int, int]]) -> str:
    """The message minus its links and tags, whitespace tidied."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    lines = (re.sub(r"\s+", " ", line).strip() for line in "".join(chars).splitlines())
    return "\n".join(line for line in lines if line)


# Typed or pasted on the platform's pages, where no Telegram client has marked the links:
# a word with a scheme (`https://…`, and `javascript:…` to be refused by name), or one
# starting `www.`; punctuation that ends a sentence is not part of the link.
_TYPED_LINK = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://\S+|www\.\S+\.\S+)$")
_TYPED_TAG = re.compile(r"^[#＃]\S+$")
_TRAILING = ".,;:!?)]}'\"，。；：！？）」』"


def parse_text(text: str, *, max_links: int = MAX_LINKS) -> ParsedMessage:
    """Links (capped, de-duplicated), #tags and note of text typed on a page, read as
    `parse_message` reads a message."""
    out = ParsedMessage()
    candidates: list[str] = []
    spans: list[tuple[int, int]] = []
    for word in re.finditer(r"\S+", text):
        value = word.group(0)
        if _TYPED_TAG.match(value):
            name = clean_tag(_trim(value))
            if name is not None:
                out.add_tags([name])
        elif _TYPED_LINK.match(value) or _SCHEME_WORD.fullmatch(value):
            candidates.append(_trim(value))
        else:
            continue
        spans.append((word.start(), word.end()))
    _accept(out, candidates, max_links)
    out.note = _note(text, spans)
    return out


def _trim(word: str) -> str:
    """`https://x.org/a.` → `https://x.org/a`; a `)` closing one opened in the link stays."""
    while len(word) > 1 and word[-1] in _TRAILING:
        if word[-1] in ")）" and word.count("(") >= word.count(")"):
            break
        word = word[:-1]
    return word

"""The one tag normaliser: a tag typed, imported, retagged, tapped or sent from the web
pages is stored the same way.

A tag keeps what people type (CJK, emoji, `&`, `+`, accents) and loses what they cannot
see: invisible and direction-control characters (a right-to-left override inside a tag
would make a caption read as something else), control characters and lone surrogates.
Whitespace and commas become `_` (a folder "Tech News" is `#tech_news`; the bookmark
export joins tags with commas, so a comma inside one would not come back as one tag).
Only the standard library's Unicode tables are needed (NFKC, categories, casefold).
"""

from __future__ import annotations

import re
import unicodedata

MAX_TAG_LENGTH = 48  # characters (code points) of a stored tag
MAX_TAGS_PER_LINK = 50
HASH_MARKS = "#＃"
# Format characters (category Cf) are invisible; these are kept because visible text
# needs them: ZWNJ/ZWJ join letters (Persian) and emoji sequences (👨‍👩‍👧), and the
# TAG characters spell subdivision flags (🏴󠁧󠁢󠁳󠁣󠁴󠁿).
_KEPT_FORMAT = frozenset({"\u200c", "\u200d"})
_TAG_CHARS = range(0xE0020, 0xE0080)
# Private-use and unassigned code points stay: a newer emoji than this Python's Unicode
# tables is unassigned here.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
_SEPARATORS = re.compile(r"[\s,]+")
_JOINERS = "\u200c\u200d"


def _visible(char: str) -> bool:
    if char in _KEPT_FORMAT or ord(char) in _TAG_CHARS:
        return True
    return unicodedata.category(char) not in _DROPPED_CATEGORIES


def strip_invisible(text: str) -> str:
    """`text` without control, invisible and direction-control characters (U+200E/F,
    U+202A–E, U+2066–9, U+061C…) and lone surrogates."""
    if text.isprintable():  # the common case, in C: nothing of category C* in it
        return text
    return "".join(c for c in text if _visible(c))


def clean_tag(raw: str) -> str | None:
    """The tag as stored: `#`/`＃` stripped, invisible characters dropped, whitespace and
    commas as `_`, case-folded, NFKC (a Chinese keyboard's full-width `ＡＩ` is `ai`), at
    most MAX_TAG_LENGTH characters; None when nothing is left."""
    text = strip_invisible(unicodedata.normalize("NFKC", raw)).strip().lstrip(HASH_MARKS)
    words = [w for w in _SEPARATORS.split(text) if w]
    tag = unicodedata.normalize("NFKC", "_".join(words).casefold())
    if len(tag) > MAX_TAG_LENGTH:
        tag = tag[:MAX_TAG_LENGTH].rstrip("_")
    tag = tag.strip(_JOINERS)  # a joiner with nothing to join, or cut from its emoji
    return tag or None


def clean_tags(raws: list[str]) -> list[str]:
    """Each cleaned, empty ones left out, first spelling kept (not capped)."""
    out: dict[str, None] = {}  # an ordered set: a file may hold thousands for one link
    for raw in raws:
        tag = clean_tag(raw)
        if tag is not None:
            out.setdefault(tag)
    return list(out)


def cap_tags(tags: list[str]) -> tuple[list[str], int]:
    """Tags (already clean) de-duplicated in order and cut to MAX_TAGS_PER_LINK, and how
    many distinct tags were left out."""
    unique = list(dict.fromkeys(tags))
    kept = unique[:MAX_TAGS_PER_LINK]
    return kept, len(unique) - len(kept)


def merge_tags(current: list[str], added: list[str]) -> tuple[list[str], int]:
    """`current` then the new ones of `added`, capped; how many of `added` did not fit."""
    kept, _ = cap_tags(current)
    fresh = [t for t in dict.fromkeys(added) if t not in kept]
    room = max(0, MAX_TAGS_PER_LINK - len(kept))
    return kept + fresh[:room], max(0, len(fresh) - room)


def normalise(tags: list[str]) -> list[str]:
    """Stored tags as they should be: each cleaned, de-duplicated, capped (the migration
    passes every link's tags through this)."""
    return cap_tags(clean_tags(tags))[0]

"""Tag suggestions for a snapshot, never a near-twin of a tag the user already has.

Users' most common complaint about AI tagging is a growing pile of near-duplicates:
`#js` beside `#javascript`, `#AI` beside `#ai`, `#tool` beside `#tools`. So every
proposal, from the model or from the page's words, is first mapped onto the user's
existing tags: a near-twin of one of them becomes that tag, and a tag the link already
carries (or a twin of one) is not offered.

Two tags are near-twins when they are equal after case-folding and dropping `_`/`-`/`.`,
after a short list of well-known abbreviations and translations, after a plural `s`, when
one is the initials of the other's words (`#ml`, `#machine_learning`), or when they differ
by one letter in a long word (a typo) but not in a digit (`#python2` is not `#python3`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from cachetools import TTLCache
from telegram import InlineKeyboardMarkup

from bot.chat.callbacks import codec_for, snapshot_keyboard
from bot.futures import retrieved
from bot.i18n import Texts
from bot.summarize import PageText, Summarizer
from bot.tags import clean_tag
from storage.models import LinkRecord, LlmUsage
from storage.repository import LinkStore
from storage.terms import tokenize

log = logging.getLogger(__name__)

MAX_SUGGESTIONS = 3
EXISTING_SENT = 40  # the user's most used tags the model chooses from first
LLM_PATIENCE = 20.0  # seconds; the buttons are not worth holding the summary's last edit for

# Spellings of one idea, each mapped to one key. Keys are themselves canonical forms.
ALIASES: dict[str, str] = {
    "js": "javascript",
    "ecmascript": "javascript",
    "ts": "typescript",
    "py": "python",
    "python3": "python",
    "golang": "go",
    "rb": "ruby",
    "rs": "rust",
    "k8s": "kubernetes",
    "kube": "kubernetes",
    "pg": "postgresql",
    "postgres": "postgresql",
    "mongo": "mongodb",
    "node": "nodejs",
    "reactjs": "react",
    "vuejs": "vue",
    "ai": "artificialintelligence",
    "人工智能": "artificialintelligence",
    "ml": "machinelearning",
    "机器学习": "machinelearning",
    "dl": "deeplearning",
    "深度学习": "deeplearning",
    "llm": "largelanguagemodel",
    "大模型": "largelanguagemodel",
    "nlp": "naturallanguageprocessing",
    "db": "database",
    "数据库": "database",
    "ux": "userexperience",
    "ui": "userinterface",
    "fe": "frontend",
    "前端": "frontend",
    "be": "backend",
    "后端": "backend",
    "devops": "devops",
    "sec": "security",
    "安全": "security",
    "doc": "documentation",
    "docs": "documentation",
    "编程": "programming",
    "prog": "programming",
    "阅读": "reading",
    "读书": "reading",
}
_NOT_PLURAL = frozenset({"news", "ios", "macos", "kubernetes", "devops", "analytics", "physics"})
_SPLIT = re.compile(r"[_\-.\s]+")


def _words(tag: str) -> list[str]:
    return [w for w in _SPLIT.split(tag.casefold().lstrip("#＃")) if w]


def key(tag: str) -> str:
    """The canonical form two near-twins share (abbreviations, plurals, case, separators)."""
    joined = "".join(_words(tag))
    joined = ALIASES.get(joined, joined)
    plural = len(joined) > 3 and joined.endswith("s") and not joined.endswith("ss")
    if plural and joined not in _NOT_PLURAL:
        singular = joined[:-1]
        joined = ALIASES.get(singular, singular)
    return joined


def _initials(tag: str) -> str | None:
    words = _words(tag)
    return "".join(w[0] for w in words) if len(words) >= 2 else None


def _one_letter_apart(a: str, b: str) -> bool:
    """A typo: one letter inserted, dropped or changed, or two swapped, in words long
    enough to tell."""
    if a == b:
        return True
    if min(len(a), len(b)) < 5 or max(len(a), len(b)) < 6 or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        swapped = a[i : i + 2] == b[i : i + 2][::-1] and a[i + 2 :] == b[i + 2 :]
        if swapped and i + 1 < len(a):
            return True  # two letters swapped: `javascirpt`
        differ = (a[i], b[i])
        rest_a, rest_b = a[i + 1 :], b[i + 1 :]
    else:
        differ = ("", b[i])
        rest_a, rest_b = a[i:], b[i + 1 :]
    if rest_a != rest_b:
        return False
    return not any(c.isdigit() for c in differ)


def near_twins(a: str, b: str) -> bool:
    ka, kb = key(a), key(b)
    if ka == kb:
        return True
    if _initials(a) == kb or _initials(b) == ka:
        return True
    return _one_letter_apart(ka, kb)


def resolve(
    proposed: Iterable[str],
    existing: Sequence[str],
    on_link: Sequence[str],
    limit: int = MAX_SUGGESTIONS,
) -> list[str]:
    """Proposals as the user would want them: a near-twin of an existing tag becomes that
    tag; none that the link has (or a twin of); no two alike; at most `limit`."""
    out: list[str] = []
    for raw in proposed:
        tag = _clean(raw)
        if tag is None:
            continue
        twin = next((t for t in existing if near_twins(t, tag)), None)
        tag = twin or tag
        if any(near_twins(tag, t) for t in [*on_link, *out]):
            continue
        out.append(tag)
        if len(out) >= limit:
            break
    return out


def _clean(raw: str) -> str | None:
    """A model's word as a tag: its words joined by `_`, then the one normaliser."""
    words = re.findall(r"\w+", raw.casefold().lstrip("#＃"))
    return clean_tag("_".join(words)[:32])


def from_page(existing: Sequence[str], on_link: Sequence[str], *texts: str | None) -> list[str]:
    """Without a model: the user's own tags (most used first) whose words all appear in
    the page."""
    terms = set(tokenize(" ".join(t for t in texts if t)))
    found = []
    for tag in existing:
        words = [w for part in _words(tag) for w in tokenize(part)]
        if words and all(w in terms for w in words):
            found.append(tag)
    return resolve(found, existing, on_link)


_HASHTAG = re.compile(r"[#＃]?(\w[\w-]*)")


def parse_model_tags(text: str) -> list[str]:
    """`#a #b, #c` (or `a, b, c`) from a model's answer."""
    return [m.group(1) for m in _HASHTAG.finditer(text)][: MAX_SUGGESTIONS * 2]


@dataclass
class Suggested:
    """Tags for the ＋#tag buttons, and what the model call cost (None without one)."""

    tags: list[str]
    usage: LlmUsage | None = None


# Seconds a user's tags, as suggestions are chosen from, are read again at most once.
KNOWN_TAGS_FOR = 10.0
# Seconds the listing index may lag the latest writes for that read: its upkeep catches
# up every 2 s (storage/index/upkeep.TICK), so a user new to this process is answered
# without a catch-up of their own (in a burst from many users, 11 of a link's 48 database
# commands). A tag shows among the suggestions at most KNOWN_TAGS_FOR + this after it was
# added.
TAGS_STALE_UP_TO = 3.0


async def known_tags(store: LinkStore, owner_id: int) -> list[str]:
    """The user's tags, most used first: what suggestions are chosen from."""
    counts = await store.tag_counts(owner_id, limit=200, stale_up_to=TAGS_STALE_UP_TO)
    return [c.tag for c in counts]


class KnownTags:
    """`known_tags`, read once per user every KNOWN_TAGS_FOR seconds (askers meanwhile
    share the read): suggestions a tag used seconds ago would rarely change. Well within
    the minute every read must converge in."""

    def __init__(self, ttl: float = KNOWN_TAGS_FOR, clock: Callable[[], float] = time.monotonic):
        self._reads: TTLCache[int, asyncio.Future[list[str]]] = TTLCache(10_000, ttl, timer=clock)

    async def of(self, store: LinkStore, owner_id: int) -> list[str]:
        read = self._reads.get(owner_id)
        if read is None or (read.done() and (read.cancelled() or read.exception())):
            read = self._reads[owner_id] = asyncio.ensure_future(known_tags(store, owner_id))
            read.add_done_callback(retrieved)  # a failed read: the next asker reads again
        return list(await asyncio.shield(read))  # an asker given up leaves it to the others


async def propose(
    store: LinkStore,
    summarizer: Summarizer | None,
    record: LinkRecord,
    texts: Texts,
    existing: Awaitable[list[str]] | None = None,
) -> Suggested:
    """Up to three tags for `record`'s ＋#tag buttons ([] when nothing fits), and the
    model's token usage when it was asked. Never raises for the model: its failure falls
    back to the page's words. `existing`: the user's tags, if already being read."""
    existing_tags = await (existing or known_tags(store, record.owner_id))
    page_words = (record.title, record.description, record.text)
    usage: LlmUsage | None = None
    if summarizer is not None:
        page = PageText(
            record.title, record.description, record.text, record.final_url or record.url
        )
        offered = " ".join(f"#{t}" for t in existing_tags[:EXISTING_SENT]) or "-"
        prompt = texts.tag_prompt.format(tags=offered)
        try:
            answer, used = await asyncio.wait_for(
                summarizer.propose_tags_counted(page, prompt), LLM_PATIENCE
            )
        except Exception as exc:  # the model is optional here; the summary already told
            log.info("tag proposal failed: %s", type(exc).__name__)
        else:
            usage = LlmUsage(used.model, used.prompt_tokens, used.completion_tokens)
            found = resolve(parse_model_tags(answer), existing_tags, record.tags)
            if found:
                return Suggested(found, usage)
    return Suggested(from_page(existing_tags, record.tags, *page_words), usage)


async def suggest(
    store: LinkStore,
    summarizer: Summarizer | None,
    record: LinkRecord,
    texts: Texts,
    existing: Awaitable[list[str]] | None = None,
) -> list[str]:
    """Up to three tags for `record`'s ＋#tag buttons; [] when nothing fits."""
    return (await propose(store, summarizer, record, texts, existing)).tags


async def snapshot_markup(
    bot_token: str,
    store: LinkStore,
    summarizer: Summarizer | None,
    record: LinkRecord,
    texts: Texts,
    existing: Awaitable[list[str]] | None = None,
) -> InlineKeyboardMarkup:
    """The keyboard a finished snapshot shows: 🏷 🗑 🔄 and up to three ＋#tag buttons.
    Never raises for the suggestions (a failure only leaves them out)."""
    try:
        tags = await suggest(store, summarizer, record, texts, existing)
    except Exception:  # the buttons are a nicety: a database hiccup must not cost the reply
        log.warning("tag suggestions failed", exc_info=True)
        tags = []
    return snapshot_keyboard(codec_for(bot_token), record, texts, tags)

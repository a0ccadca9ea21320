"""A consent rule's URL pattern is compiled for a document only when the URL holds one of
its hints (bot/browser/pattern_hints.url_hints): text every URL it matches contains. A hint
that a matching URL lacks would leave that site's banner in the shot, so: every string
drawn from each installed pattern holds a hint, and Chromium picks the same rules for a
document with the hints as without them."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

from bot.browser.binary import find_chromium
from bot.browser.consent import DEFAULT_RULES_DIR, SELECT_JS, ConsentRules, load_rules
from bot.browser.pattern_hints import url_hints

C = re._constants  # type: ignore[attr-defined]


def _draw(nodes: Any, rng: random.Random) -> str:
    """A string the parsed pattern `nodes` may match (checked by the caller): each
    repetition drawn 0-3 times over its minimum, each alternative at random."""
    out = []
    for op, arg in nodes:
        if op is C.LITERAL:
            out.append(chr(arg))
        elif op is C.NOT_LITERAL:
            out.append("a" if chr(arg) != "a" else "b")
        elif op is C.ANY:
            out.append(rng.choice("a.-/"))
        elif op is C.IN:
            out.append(_one_of(arg, rng))
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
            low, high, sub = arg
            times = rng.randint(low, min(high, low + 3))
            out += [_draw(sub, rng) for _ in range(times)]
        elif op is C.SUBPATTERN:
            out.append(_draw(arg[3], rng))
        elif op is C.BRANCH:
            out.append(_draw(rng.choice(arg[1]), rng))
        elif op is C.ATOMIC_GROUP:
            out.append(_draw(arg, rng))
        # AT (anchors) and lookarounds add nothing; the caller keeps only real matches.
    return "".join(out)


def _one_of(items: Any, rng: random.Random) -> str:
    choices: list[str] = []
    for op, arg in items:
        if op is C.NEGATE:
            return "~"  # anything but the set: rare in URL patterns; checked afterwards
        if op is C.LITERAL:
            choices.append(chr(arg))
        elif op is C.RANGE:
            choices.append(chr(rng.randint(*arg)))
        elif op is C.CATEGORY:
            choices.append({C.CATEGORY_DIGIT: "7", C.CATEGORY_SPACE: " "}.get(arg, "q"))
    return rng.choice(choices) if choices else "q"


def matching_strings(pattern: str, count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    nodes = re._parser.parse(pattern)  # type: ignore[attr-defined]
    drawn = {_draw(nodes, rng) for _ in range(count * 3)}
    return [s for s in drawn if re.search(pattern, s)][:count]


@pytest.fixture(scope="module")
def rules() -> ConsentRules:
    loaded = load_rules(str(DEFAULT_RULES_DIR))
    assert loaded is not None
    return loaded


def test_hints_of_patterns_like_the_rules() -> None:
    assert url_hints(r"^https?://(www\.)?dropbox\.com/") == ["dropbox.com/"]
    # A group matched in place continues the text around it; a branch gives one each.
    assert url_hints(r"^https://(?:www\.)?(shop\.example)\.org/") == ["shop.example.org/"]
    assert url_hints(r"^https?://(plex\.tv|support\.plex\.tv)/") == ["plex.tv", "support.plex.tv"]
    # What may be absent or repeated ends the text: `colou?r.io/` holds "https://colo"
    # (nothing beyond a scheme) and "r.io/"; `ab+cdefgh` holds "cdefgh", for "abcdefgh"
    # is not in "abbcdefgh".
    assert url_hints(r"^https://colou?r\.io/") == ["r.io/"]
    assert url_hints(r"ab+cdefgh") == ["cdefgh"]
    # Only a scheme and www. tell nothing; nor does a pattern matched case-blind, one
    # branch without a hint, or what Python cannot read.
    assert url_hints(r"^https://www\.[a-z]+\.io/") is None
    assert url_hints(r"(?i)^https://example\.com/") is None
    assert url_hints(r"^https://(example\.com|x)/") is None
    assert url_hints(r"^https://(?<name>example)\.com/") is None
    # Python reads these escapes as one character, JavaScript as the letter itself
    # (`exam\aple` matches "examaple" there): no hints rather than wrong ones.
    assert url_hints(r"^https://exam\aple\.com/") is None
    assert url_hints(r"^https://abcde\N{DIGIT ONE}fghij/") is None
    assert url_hints("^https://example\\.com/[😀]") is None


def test_every_string_an_installed_pattern_matches_holds_one_of_its_hints(
    rules: ConsentRules,
) -> None:
    assert len(rules.hints) > 500  # nearly every pattern has hints
    unsampled = []
    for pattern, hints in rules.hints.items():
        drawn = matching_strings(pattern, 20)
        for text in drawn:
            assert any(h in text for h in hints), (pattern, hints, text)
        if not drawn:
            unsampled.append(pattern)
    assert len(unsampled) < 10, unsampled  # the drawing reaches nearly all of them


@pytest.fixture(scope="module")
async def blank_page() -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=find_chromium())
        page = await browser.new_page()
        yield page
        await browser.close()


async def test_chromium_picks_the_same_rules_with_the_hints_as_without(
    rules: ConsentRules, blank_page: Page
) -> None:
    urls = ["https://news.example.org/a?b=c", "http://127.0.0.1:8000/cmp/onetrust"]
    for pattern in sorted(rules.hints)[::4]:
        urls += [f"{text}index.html" for text in matching_strings(pattern, 2)]
    picked = await blank_page.evaluate(
        """([select, rules, hints, urls]) => {
            const pick = eval(select);
            const all = JSON.parse(rules);
            const names = (c) => c.r.map((rule) => JSON.stringify(rule)).join("\\n");
            return urls.map((url) => [true, false].map((main) =>
                [names(pick(all, hints, url, main)), names(pick(all, {}, url, main))]));
        }""",
        [SELECT_JS, rules.rules_json, rules.hints, urls],
    )
    site_rules = 0
    for url, per_frame in zip(urls, picked, strict=True):
        for with_hints, without in per_frame:
            assert with_hints == without, url
        site_rules += per_frame[0][0].count("\n") >= 200  # the generic rules, and more
    assert site_rules > 100  # the drawn URLs did reach site rules

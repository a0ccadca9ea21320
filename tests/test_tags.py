"""The one tag normaliser (bot/tags.py)."""

from __future__ import annotations

import pytest

from bot.tags import MAX_TAG_LENGTH, MAX_TAGS_PER_LINK, cap_tags, clean_tag, merge_tags


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("#AI", "ai"),
        ("＃技术", "技术"),
        ("#a&b", "a&b"),
        ("#😀", "😀"),
        ("#c++", "c++"),
        ("#👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),  # the joiners of an emoji stay
        ("Tech News", "tech_news"),  # a folder name
        (" read, later ", "read_later"),  # a comma would split it in an export
        ("#ab\u202ecd", "abcd"),  # right-to-left override
        ("\u2066#x\u2069", "x"),  # isolates
        ("#\u200ey\u200f", "y"),  # direction marks
        ("#a\ud800b", "ab"),  # a lone surrogate from a JSON file
        ("#Cafe\u0301", "café"),  # one spelling of é
        ("#ＡＩ", "ai"),  # full-width, as a Chinese keyboard types it
    ],
)
def test_tags_are_stored_as_typed_minus_what_cannot_be_seen(raw: str, stored: str) -> None:
    assert clean_tag(raw) == stored


@pytest.mark.parametrize("raw", ["", "#", "＃#", " \u200e\u202e ", "#\u2066\u2069", ",,"])
def test_nothing_left_is_no_tag(raw: str) -> None:
    assert clean_tag(raw) is None


def test_long_tags_are_cut() -> None:
    tag = clean_tag("#" + "长" * 100)
    assert tag == "长" * MAX_TAG_LENGTH
    cut = clean_tag("a" * (MAX_TAG_LENGTH - 1) + " bcd")
    assert cut == "a" * (MAX_TAG_LENGTH - 1)  # no trailing "_" where it was cut


def test_cap_keeps_the_first_and_counts_the_rest() -> None:
    tags = [f"t{i}" for i in range(MAX_TAGS_PER_LINK + 7)]
    kept, dropped = cap_tags(["t0", *tags, "t1"])
    assert kept == tags[:MAX_TAGS_PER_LINK]
    assert dropped == 7


def test_merge_counts_only_new_tags_that_did_not_fit() -> None:
    current = [f"t{i}" for i in range(MAX_TAGS_PER_LINK - 1)]
    merged, dropped = merge_tags(current, ["t0", "x", "y", "x"])
    assert merged == [*current, "x"]
    assert dropped == 1

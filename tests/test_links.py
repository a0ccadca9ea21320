"""Reading links, tags and notes out of messages as Telegram delivers them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from telegram import Chat, Message, MessageEntity, User

from bot.chat.links import MAX_LINKS, parse_message, parse_text, url_key


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def message(
    text: str, entities: list[tuple[str, str, str | None]], *, caption: bool = False
) -> Message:
    """Build a Message whose entities point at the given substrings (UTF-16 offsets)."""
    built = []
    for kind, value, url in entities:
        start = text.index(value)
        offset = utf16_len(text[:start])
        built.append(MessageEntity(kind, offset, utf16_len(value), url=url))
    chat = Chat(1, "private")
    user = User(1, "Ann", False)
    if caption:
        return Message(
            1, datetime.now(UTC), chat, from_user=user, caption=text, caption_entities=built
        )
    return Message(1, datetime.now(UTC), chat, from_user=user, text=text, entities=built)


def test_android_share_keeps_title_as_note() -> None:
    text = "Some Page Title 🙂\nhttps://example.com/a?utm_source=share"
    parsed = parse_message(message(text, [("url", "https://example.com/a?utm_source=share", None)]))
    assert parsed.urls == ["https://example.com/a?utm_source=share"]
    assert parsed.note == "Some Page Title 🙂"


def test_text_link_target_comes_from_entity_url_and_words_stay() -> None:
    text = "Read this great post #技术 #AI"
    parsed = parse_message(
        message(
            text,
            [
                ("text_link", "great post", "https://blog.example/p/1"),
                ("hashtag", "#技术", None),
                ("hashtag", "#AI", None),
            ],
        )
    )
    assert parsed.urls == ["https://blog.example/p/1"]
    assert parsed.tags == ["技术", "ai"]
    assert parsed.note == "Read this great post"


def test_caption_entities_and_schemeless_links() -> None:
    text = "🙂 see example.org/x #a"
    parsed = parse_message(
        message(text, [("url", "example.org/x", None), ("hashtag", "#a", None)], caption=True)
    )
    assert parsed.urls == ["https://example.org/x"]
    assert parsed.tags == ["a"]


def test_more_than_ten_links_are_counted_as_skipped() -> None:
    urls = [f"https://e{i}.example/" for i in range(13)]
    text = " ".join(urls)
    parsed = parse_message(message(text, [("url", u, None) for u in urls]))
    assert len(parsed.urls) == MAX_LINKS
    assert parsed.skipped == 3


def test_refused_schemes_are_named() -> None:
    parsed = parse_message(message("file:///etc/passwd and javascript:alert(1)", []))
    assert parsed.urls == []
    assert [r.reason for r in parsed.rejected] == ["scheme", "scheme"]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("HTTPS://Example.COM:443/a?b=1#frag", "https://example.com/a?b=1"),
        ("https://example.com/a?utm_source=x&utm_medium=y&b=1", "https://example.com/a?b=1"),
        ("https://example.com/a?fbclid=abc&gclid=1", "https://example.com/a"),
        ("http://example.com:80/", "http://example.com/"),
    ],
)
def test_url_key_normalises(a: str, b: str) -> None:
    assert url_key(a) == url_key(b)


def test_url_key_keeps_meaningful_differences() -> None:
    assert url_key("https://example.com/a?id=1") != url_key("https://example.com/a?id=2")
    assert url_key("https://example.com/A") != url_key("https://example.com/a")


def detected(text: str) -> Message:
    """A message whose entities are those the fake Bot API detects, as Telegram does."""
    from tests.fakes.telegram_rules import detect_entities

    built = [MessageEntity(e["type"], e["offset"], e["length"]) for e in detect_entities(text)]
    return Message(1, datetime.now(UTC), Chat(1, "private"), text=text, entities=built)


def test_a_typed_tag_runs_to_the_next_space_as_on_the_web_pages() -> None:
    """Telegram stops a hashtag at `&`, `+` and emoji; the tag is what was typed, and a
    sentence's closing punctuation is not part of it."""
    text = "https://example.org/x #a&b #😀 #C++ ＃全角 (see #py). issue"
    parsed = parse_message(detected(text))
    assert parsed.tags == ["a&b", "😀", "c++", "全角", "py"]
    assert parsed.note == "(see ). issue"
    assert parse_text(text).tags == parsed.tags
    # Where Telegram marks one inside a word, the tag starts at its mark.
    assert parse_message(detected("mid,#a&b")).tags == ["a&b"]


def test_a_fragment_in_a_link_is_not_a_tag() -> None:
    parsed = parse_message(detected("https://example.org/page#part and #kept"))
    assert parsed.urls == ["https://example.org/page#part"] and parsed.tags == ["kept"]

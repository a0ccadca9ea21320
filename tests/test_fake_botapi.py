"""The Bot API fake is as strict as Telegram: proven here with a real PTB Bot."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image
from telegram import (
    Bot,
    InlineQueryResultArticle,
    InlineQueryResultCachedPhoto,
    InputTextMessageContent,
    Message,
)
from telegram.error import BadRequest, RetryAfter

from bot.chat.outbound import retry_seconds
from tests.fakes.botapi import FakeBotAPI


@pytest.fixture
async def tg(botapi: FakeBotAPI) -> AsyncIterator[Bot]:
    botapi.send_message(7, "hi")  # a chat exists only once a user has written
    bot = Bot(botapi.token, base_url=f"{botapi.root}/bot", base_file_url=f"{botapi.root}/file/bot")
    async with bot:
        yield bot


def jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(out, "JPEG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ({"text": "x" * 4097}, "message is too long"),
        ({"text": "<b>unclosed", "parse_mode": "HTML"}, "can't parse entities"),
        ({"text": "a < b", "parse_mode": "HTML"}, "can't parse entities"),
        ({"text": "<script>x</script>", "parse_mode": "HTML"}, "can't parse entities"),
        ({"text": "ok", "api_kwargs": {"bogus": 1}}, "unknown parameter bogus"),
        ({"text": "   "}, "message text is empty"),
    ],
)
async def test_send_message_rejections(tg: Bot, call: dict, error: str) -> None:
    with pytest.raises(BadRequest, match=rf"(?i){error}"):
        await tg.send_message(7, **call)


async def test_html_is_measured_after_parsing(tg: Bot, botapi: FakeBotAPI) -> None:
    text = "<b>" + "é" * 4096 + "</b>"
    message = await tg.send_message(7, text, parse_mode="HTML")
    assert botapi.message_text(7, message.message_id) == "é" * 4096
    with pytest.raises(BadRequest, match=r"(?i)too long"):
        await tg.send_message(7, "🙂" * 2049)  # 4098 UTF-16 units


async def test_photo_rules(tg: Bot) -> None:
    ok = await tg.send_photo(7, jpeg(1280, 800), caption="c" * 1024)
    assert ok.photo[-1].width == 1280
    with pytest.raises(BadRequest, match=r"(?i)PHOTO_INVALID_DIMENSIONS"):
        await tg.send_photo(7, jpeg(100, 3000))
    with pytest.raises(BadRequest, match=r"(?i)caption is too long"):
        await tg.send_photo(7, jpeg(10, 10), caption="c" * 1025)
    await asyncio.sleep(2.1)  # a raw Bot has no pacing: stay within burst 3, then 1/s
    with pytest.raises(BadRequest, match=r"(?i)IMAGE_PROCESS_FAILED"):
        await tg.send_photo(7, b"not an image")
    again = await tg.send_photo(7, ok.photo[-1].file_id)
    assert again.photo[-1].file_id == ok.photo[-1].file_id


async def test_reactions_and_edits(tg: Bot) -> None:
    message: Message = await tg.send_message(7, "hello")
    assert await tg.set_message_reaction(7, message.message_id, "👌")
    with pytest.raises(BadRequest, match=r"(?i)REACTION_INVALID"):
        await tg.set_message_reaction(7, message.message_id, "✅")
    with pytest.raises(BadRequest, match=r"(?i)not modified"):
        await tg.edit_message_text("hello", 7, message.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await tg.edit_message_text("x", 7, 9999)
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await tg.send_message(123456789, "nobody wrote from here")


async def test_flood_control_answers_retry_after(tg: Bot, botapi: FakeBotAPI) -> None:
    botapi.violations_expected = True
    with pytest.raises(RetryAfter) as caught:
        for i in range(12):
            await tg.send_message(7, f"quick {i}")
    # (an int or a timedelta, as PTB_TIMEDELTA says: a test before may have built a bot)
    assert retry_seconds(caught.value) >= 1
    with pytest.raises(RetryAfter):
        await tg.set_message_reaction(7, 1, "👌")
    assert len(botapi.flood_violations) == 1


def test_entities_use_utf16_offsets(botapi: FakeBotAPI) -> None:
    text = "Title 🙂\nhttps://a.example/x?y=1 #技术 #AI 🙂 example.org/p"
    sent = botapi.send_message(7, text)
    message = Message.de_json(sent, None)  # type: ignore[arg-type]
    assert message is not None
    found: dict[str, list[str]] = {e.type: [] for e in message.entities}
    for entity, value in message.parse_entities().items():
        found[entity.type].append(value)
    assert found == {
        "url": ["https://a.example/x?y=1", "example.org/p"],
        "hashtag": ["#技术", "#AI"],
    }


async def test_captions_and_texts_past_telegrams_limits_are_refused(
    tg: Bot, botapi: FakeBotAPI
) -> None:
    """Every way the bot shows user data: measured after entity parsing, in UTF-16 units."""
    photo = await tg.send_photo(
        7, jpeg(10, 10), caption="<b>" + "c" * 1024 + "</b>", parse_mode="HTML"
    )
    with pytest.raises(BadRequest, match=r"(?i)caption is too long"):
        await tg.edit_message_caption(7, photo.message_id, caption="🙂" * 513)  # 1026 units
    with pytest.raises(BadRequest, match=r"(?i)caption is too long"):
        await tg.send_document(7, b"some file", filename="a.txt", caption="d" * 1025)
    await asyncio.sleep(2.1)  # a raw Bot has no pacing: stay within burst 3, then 1/s
    text = await tg.send_message(7, "t")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await tg.edit_message_text(
            "<i>" + "长" * 4097 + "</i>", 7, text.message_id, parse_mode="HTML"
        )


async def test_inline_results_past_telegrams_limits_are_refused(
    tg: Bot, botapi: FakeBotAPI
) -> None:
    file_id = botapi.stored_photo(b"shot", 1280, 800)
    caption = InlineQueryResultCachedPhoto("1", file_id, caption="x" * 1025)
    article = InlineQueryResultArticle("2", "t", InputTextMessageContent("y" * 4097))
    fitting = InlineQueryResultCachedPhoto(
        "3", file_id, caption="<b>" + "z" * 1024 + "</b>", parse_mode="HTML"
    )
    for results, error in (([caption], "MEDIA_CAPTION_TOO_LONG"), ([article], "MESSAGE_TOO_LONG")):
        query_id = botapi.send_inline_query(7, "q")
        with pytest.raises(BadRequest, match=rf"(?i){error}"):
            await tg.answer_inline_query(query_id, results)
    query_id = botapi.send_inline_query(7, "q")
    assert await tg.answer_inline_query(query_id, [fitting])

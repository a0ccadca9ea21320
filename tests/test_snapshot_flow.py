"""Link in, snapshot out: through the real Application, FerretDB, Chromium and the Bot API fake."""

from __future__ import annotations

import io
import time
from typing import Any

from PIL import Image

from bot.chat.callbacks import Recapture, codec_for
from storage.models import Status
from tests.fakes.pages import QUADRANTS
from tests.harness import BotHarness


def button(params: dict[str, Any], text: str) -> str:
    """The callback data of the button labelled `text` in a sent message's keyboard."""
    rows = params["reply_markup"]["inline_keyboard"]
    [data] = [b["callback_data"] for row in rows for b in row if b["text"] == text]
    return str(data)


def _index(bot: BotHarness, method: str, predicate: object = None) -> int:
    for i, call in enumerate(bot.api.calls):
        if call.method == method and call.ok and (predicate is None or predicate(call)):  # type: ignore[operator]
            return i
    raise AssertionError(f"no {method} call")


async def test_android_share_gives_photo_and_record(bot: BotHarness) -> None:
    url = bot.pages.url("/colors")
    sent = bot.send(42, f"Colour test\n{url} #Design #技术")
    assert await bot.finished(sent) == "👌"
    photos = bot.photos_for(sent)
    assert len(photos) == 1
    eyes = _index(bot, "setMessageReaction", lambda c: c.params["reaction"][0]["emoji"] == "👀")
    assert eyes < bot.api.calls.index(photos[0])
    caption = photos[0].result["caption"]
    assert "Colour test page" in caption and "#design" in caption and "#技术" in caption
    rows = photos[0].result["reply_markup"]["inline_keyboard"]
    assert [b["text"] for b in rows[0]] == ["🏷 Tags", "🗑 Delete", "🔄 Capture again"]
    [record] = await bot.records(42)
    assert record.url == url and record.tags == ["design", "技术"]
    assert record.note == "Colour test"
    assert record.title == "Colour test page"
    assert record.site_name == "Linksnap Test Site"
    assert record.http_status == 200 and record.status == Status.DONE
    assert record.screenshot is not None
    assert record.screenshot.file_id == photos[0].result["photo"][-1]["file_id"]


async def test_photo_shows_the_page_pixels(bot: BotHarness) -> None:
    sent = bot.send(42, bot.pages.url("/colors"))
    await bot.finished(sent)
    [photo] = bot.photos_for(sent)
    raw = Image.open(io.BytesIO(bot.api.download(photo.result["photo"][-1]["file_id"])))
    image = raw.convert("RGB")
    w, h = image.size
    assert (w, h) == (1280, 800)
    spots = {
        "top_left": (w // 4, h // 4),
        "top_right": (3 * w // 4, h // 4),
        "bottom_left": (w // 4, 3 * h // 4),
        "bottom_right": (3 * w // 4, 3 * h // 4),
    }
    for name, xy in spots.items():
        got = image.getpixel(xy)
        assert isinstance(got, tuple)
        want = QUADRANTS[name]
        assert all(abs(g - e) <= 24 for g, e in zip(got, want, strict=False)), (name, got, want)


async def test_ios_bare_url_with_comment_just_before(bot: BotHarness) -> None:
    comment = bot.send(42, "for the weekend #reading")
    sent = bot.send(42, bot.pages.url("/article/ios"))
    assert await bot.finished(sent) == "👌"
    [record] = await bot.records(42)
    assert record.tags == ["reading"] and record.note == "for the weekend"
    assert len(bot.photos_for(sent)) == 1
    assert not [
        c
        for c in bot.api.calls_of("sendMessage")
        if c.params.get("chat_id") == comment["chat"]["id"]
    ]


async def test_forwarded_text_link_and_photo_caption(bot: BotHarness) -> None:
    target = bot.pages.url("/article/fwd")
    text = "Worth reading: this post #fwd"
    start = text.index("this post")
    entities = [
        {"type": "text_link", "offset": start, "length": len("this post"), "url": target},
        {"type": "hashtag", "offset": text.index("#fwd"), "length": 4},
    ]
    origin = {
        "type": "channel",
        "chat": {"id": -1001, "type": "channel", "title": "News"},
        "message_id": 9,
        "date": int(time.time()),
    }
    forwarded = bot.send(42, text, entities=entities, forward_origin=origin)
    captioned = bot.send(43, caption=f"pic {bot.pages.url('/article/cap')} #pic", photo=True)
    assert await bot.finished(forwarded) == "👌"
    assert await bot.finished(captioned) == "👌"
    [fwd] = await bot.records(42)
    assert fwd.url == target and fwd.tags == ["fwd"] and fwd.title == "Article fwd"
    [cap] = await bot.records(43)
    assert cap.url.endswith("/article/cap") and cap.tags == ["pic"]
    assert len(bot.photos_for(forwarded)) == 1 and len(bot.photos_for(captioned)) == 1


async def test_three_links_in_one_message(bot: BotHarness) -> None:
    urls = [bot.pages.url(f"/article/{n}") for n in ("one", "two", "three")]
    sent = bot.send(42, "three: " + " ".join(urls) + " #multi")
    assert await bot.finished(sent) == "👌"
    records = await bot.records(42)
    assert sorted(r.url for r in records) == sorted(urls)
    assert all(r.tags == ["multi"] and r.status == Status.DONE for r in records)
    photos = bot.photos_for(sent)
    assert len(photos) == 3
    assert sorted(p.result["caption"].split("\n")[0] for p in photos) == [
        "Article one",
        "Article three",
        "Article two",
    ]


async def test_duplicate_merges_tags_and_resends_file_id(bot: BotHarness) -> None:
    url = bot.pages.url("/article/dup")
    first = bot.send(42, f"{url} #a")
    await bot.finished(first)
    second = bot.send(42, f"{url}?utm_source=x#part #b")
    assert await bot.finished(second) == "👌"
    [record] = await bot.records(42)
    assert record.tags == ["a", "b"]
    [again] = bot.photos_for(second)
    assert again.params["photo"] == record.screenshot.file_id  # type: ignore[union-attr]
    assert "Saved on" in again.result["caption"]
    again_button = button(again.params, "🔄 Capture again")
    assert codec_for(bot.settings.token).decode(again_button, 42) == Recapture(record.id)
    assert bot.pages.hits.get("/article/dup") == 1  # no second capture


async def test_recapture_button_captures_again(bot: BotHarness) -> None:
    url = bot.pages.url("/article/re")
    first = bot.send(42, url)
    await bot.finished(first)
    second = bot.send(42, url)
    await bot.finished(second)
    [again] = bot.photos_for(second)
    bot.api.press_button(42, again.result, button(again.params, "🔄 Capture again"))
    await bot.api.wait_until(lambda: bot.pages.hits.get("/article/re") == 2, timeout=30)
    await bot.api.wait_until(
        lambda: len(bot.api.calls_of("sendPhoto", ok_only=True)) == 3, timeout=30
    )


async def test_browser_is_relaunched_after_it_dies(bot: BotHarness, capturer: Any) -> None:
    browser = capturer._browser  # the process's one browser
    await browser.close()  # as if Chromium crashed
    assert not browser.is_connected()
    sent = bot.send(42, bot.pages.url("/article/phoenix"))
    said = lambda: [c.params.get("text") for c in bot.api.calls_of("sendMessage", 42)]  # noqa: E731
    assert await bot.finished(sent) == "👌", said()
    assert len(bot.photos_for(sent)) == 1
    assert capturer._browser is not browser and capturer._browser.is_connected()


async def test_group_chatter_without_links_gets_no_reply(bot: BotHarness) -> None:
    group = -100500
    chatter = bot.send(42, "lunch at noon?", chat_id=group, chat_type="supergroup")
    sent = bot.send(
        43, bot.pages.url("/article/grp") + " #team", chat_id=group, chat_type="supergroup"
    )
    assert await bot.finished(sent) == "👌"
    [record] = await bot.records(43)
    assert record.chat_id == group and record.tags == ["team"]
    await bot.handled(chatter)  # its handler returned (a reply would have been sent by then)
    assert bot.api.calls_of("sendMessage", group) == []

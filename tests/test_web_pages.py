"""The platform's two pages in real Chromium, opened as Telegram opens a Mini App (the
app's URL with signed launch data in its hash), and in a plain browser through a /web
sign-in link. The bot behind them is the real Application against the Bot API fake."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Browser, BrowserContext, Locator, Page, Route, expect

from bot.browser.types import ArtifactKind
from bot.chat.callbacks import MakeFile, codec_for
from bot.chat.render import plain_text
from bot.i18n import texts_for
from storage.models import Status
from storage.websessions import Sessions, WebUser
from tests.conftest import free_port
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.openai_server import FakeOpenAI, Script
from tests.fakes.pages import PageServer
from tests.harness import BotHarness
from tests.web_helpers import (
    DARK,
    LIGHT,
    app_url,
    front_and_worker,
    init_data,
    launch_url,
    seed,
    signin_link,
)

ANN = 42
TIMEOUT = 30_000  # ms: for what the bot does (a capture), not for the page's own speed
# The page's own steps too wait for their sign, not a speed: a loaded machine (tests run
# side by side) may take longer than Playwright's 5 s default to draw five cards.
expect.set_options(timeout=20_000)
SHOTS = os.environ.get("WEB_SCREENSHOTS_DIR")  # set to write the README's pictures


async def mini_app(
    browser: Browser,
    bot: BotHarness,
    user: int = ANN,
    *,
    lang: str = "en",
    theme: dict[str, str] | None = None,
    width: int = 1100,
    query: str = "",
    init_script: str | None = None,
) -> tuple[BrowserContext, Page]:
    """The library opened from the bot's menu button."""
    context = await browser.new_context(viewport={"width": width, "height": 900})
    if init_script is not None:
        await context.add_init_script(init_script)
    page = await context.new_page()
    url = launch_url(app_url(bot) + query, init_data(user, lang=lang), theme)
    await page.goto(url)
    await expect(page.locator("body[data-ready=true]")).to_be_attached(timeout=TIMEOUT)
    return context, page


async def chat_started(bot: BotHarness, user: int = ANN, lang: str = "en") -> None:
    """The user has a chat with the bot (the Mini App is opened from it)."""
    start = len(bot.api.calls)
    bot.send(user, "/start", language_code=lang)
    await bot.api.wait_for(lambda c: c.method == "sendMessage" and c.ok, timeout=20, since=start)


async def tiles(page: Page) -> list[str]:
    return await page.locator("#grid .card .title").all_text_contents()


# --- 添加链接 --------------------------------------------------------------------------


async def test_add_a_link_and_watch_stage_screenshot_and_summary_stream_in(
    ui_browser: Browser, harness_factory: Any, llm: FakeOpenAI
) -> None:
    # The model is held mid-way on purpose: the bot must not give up on it meanwhile.
    bot: BotHarness = await harness_factory(
        openai_api_key="sk-test", openai_base_url=llm.base_url, summary_stall_timeout="300"
    )
    hold = asyncio.Event()
    chunks = ["Snapshots ", "keep ", "pages ", "as ", "they ", "were."]
    llm.enqueue(Script(chunks=chunks, hold_after=3, hold=hold))
    await chat_started(bot)
    context, page = await mini_app(ui_browser, bot, query="?view=add")
    url = bot.pages.url("/article/web-added")
    await page.fill("#add-text", f"{url} #Reading http://10.0.0.1/admin javascript:alert(1) a note")
    await page.click("#add-submit")
    item = page.locator("#add-results .progress").first
    # the summary, caught mid-way: what the model has written so far, and no more
    await expect(item.locator(".summary")).to_have_text("Snapshots keep pages", timeout=TIMEOUT)
    assert await item.get_attribute("data-stage") == "summarizing"
    shot = item.locator("img.shot")
    await expect(shot).to_be_visible()
    assert await shot.evaluate("img => img.complete && img.naturalWidth > 1000")
    hold.set()
    await expect(item).to_have_attribute("data-stage", "done", timeout=TIMEOUT)
    await expect(item.locator(".summary")).to_have_text("Snapshots keep pages as they were.")
    await expect(item.locator(".stage")).to_have_text("Done")
    # refused here with the chat's own words
    texts = texts_for("en")
    refused = await page.locator("#add-refused p").all_text_contents()
    assert refused == [
        plain_text(texts.refused_scheme.format(url="javascript:alert(1)")),
        plain_text(texts.refused_blocked.format(url="http://10.0.0.1/admin")),
    ]
    # the same path as a chat message: recorded with its tag and note, photo sent to
    # the chat, the summary streamed into its caption ending with the same text
    [record] = await bot.records(ANN)
    assert record.tags == ["reading"] and record.note == "a note"
    assert record.status == Status.DONE and record.summary == "".join(chunks)
    [photo] = bot.api.calls_of("sendPhoto", ANN, ok_only=True)
    last = bot.api.message_text(ANN, photo.result["message_id"]) or ""
    assert last.endswith("Snapshots keep pages as they were.")
    await context.close()


# --- link管理 ---------------------------------------------------------------------------


async def library(bot: BotHarness) -> None:
    store = bot.store
    await seed(store, ANN, "Rust async book", ["rust", "async"], minutes_ago=5)
    await seed(store, ANN, "Tokio internals", ["rust", "async", "tokio"], minutes_ago=4)
    await seed(store, ANN, "Rust ownership", ["rust"], minutes_ago=3)
    await seed(store, ANN, "Python asyncio", ["python", "async"], minutes_ago=2)
    await seed(
        store, ANN, "网页快照的中文文章", ["中文"], text="这是一篇关于网页快照的文章", minutes_ago=1
    )
    await seed(store, 99, "Someone else's rust page", ["rust", "async"])


async def test_a_filter_changed_while_the_last_is_loading_shows_the_newest(
    ui_browser: Browser, bot: BotHarness
) -> None:
    """Two chips pressed quickly: the list is the second press's, whatever order the
    answers come in. Here the first press's answer is held until after the second's."""
    await library(bot)
    context, page = await mini_app(ui_browser, bot)
    await page.click(".chip[data-tag=rust]")
    await page.click(".chip[data-tag=async]")
    await expect(page.locator("#grid .card")).to_have_count(2)  # rust and async
    held, asked = asyncio.Event(), asyncio.Event()

    async def hold_async_alone(route: Route) -> None:
        if "tags=async" in route.request.url:
            asked.set()
            await held.wait()
        await route.continue_()

    await page.route("**/api/links?*", hold_async_alone)
    await page.click(".chip[data-tag=rust]")  # rust off: #async alone, held on its way
    await asyncio.wait_for(asked.wait(), 20)
    await page.click(".chip[data-tag=async]")  # async off too: every link
    await expect(page.locator("#grid .card")).to_have_count(5)  # not left waiting
    async with page.expect_event("requestfinished", lambda r: "tags=async" in r.url):
        held.set()
    # The held answer (three links) has come; the list is still the newest press's.
    await expect(page.locator("#grid .card")).to_have_count(5)
    await context.close()


async def test_library_filters_by_two_tags_searches_chinese_and_opens_a_link(
    ui_browser: Browser, bot: BotHarness
) -> None:
    await library(bot)
    context, page = await mini_app(ui_browser, bot)
    await expect(page.locator("#grid .card")).to_have_count(5, timeout=TIMEOUT)
    assert await tiles(page) == [  # newest first, only Ann's
        "网页快照的中文文章",
        "Python asyncio",
        "Rust ownership",
        "Tokio internals",
        "Rust async book",
    ]
    await expect(page.locator(".chip[data-tag=rust]")).to_have_text("#rust 3")
    await page.click(".chip[data-tag=rust]")
    await expect(page.locator("#grid .card")).to_have_count(3)
    await page.click(".chip[data-tag=async]")  # rust AND async
    await expect(page.locator("#grid .card")).to_have_count(2)
    assert await tiles(page) == ["Tokio internals", "Rust async book"]
    await expect(page.locator("#total")).to_have_text("2 links")
    await page.click(".chip[data-tag=rust]")
    await page.click(".chip[data-tag=async]")
    await expect(page.locator("#grid .card")).to_have_count(5)
    await page.fill("#search", "快照")
    await page.press("#search", "Enter")
    await expect(page.locator("#grid .card")).to_have_count(1)
    assert await tiles(page) == ["网页快照的中文文章"]
    thumb = page.locator("#grid .card img.thumb")
    await expect(thumb).to_have_js_property("complete", True)
    assert await thumb.evaluate("img => img.naturalWidth") == 400
    await page.locator("#grid .card").first.click()
    await expect(page.locator("#detail-title")).to_have_text("网页快照的中文文章")
    full = page.locator("#detail-shot")
    await expect(full).to_have_js_property("complete", True)
    assert await full.evaluate("img => img.naturalWidth") == 1280  # the full screenshot
    href = await page.locator("#detail-shot-link").get_attribute("href")
    assert href is not None
    shot = await page.request.get(app_url(bot).rstrip("/") + href)
    assert shot.ok and shot.headers["content-type"] == "image/jpeg"
    await page.click("#detail-back")
    await expect(page.locator("#grid .card")).to_have_count(1)
    await context.close()


async def test_offline_pages_are_marked_and_have_their_own_filter(
    ui_browser: Browser, bot: BotHarness
) -> None:
    """Link-rot's "gone" shows on the tile and the 📭 chip lists only those pages; a tag
    chip leaves that view again (issue 21)."""
    alive = await seed(bot.store, ANN, "Still here", ["news"], minutes_ago=1)
    dead = [
        await seed(bot.store, ANN, f"Went away {n}", ["news"], minutes_ago=2 + n) for n in range(2)
    ]
    for record in dead:
        await bot.store.set_alive(record.id, False)
    await bot.store.set_alive(alive.id, True)
    context, page = await mini_app(ui_browser, bot)
    await expect(page.locator("#grid .card")).to_have_count(3, timeout=TIMEOUT)
    gone_text = texts_for("en").web_ui["status_gone"]
    marked = page.locator("#grid .card", has=page.locator(".badge.warn", has_text=gone_text))
    await expect(marked).to_have_count(2)
    await page.click("#gone-filter")
    await expect(page.locator("#gone-filter")).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#total")).to_have_text("2 links")
    assert await tiles(page) == ["Went away 0", "Went away 1"]
    await page.click(".chip[data-tag=news]")  # a tag leaves the offline view
    await expect(page.locator("#total")).to_have_text("3 links")
    await expect(page.locator("#gone-filter")).to_have_attribute("aria-pressed", "false")
    await context.close()


async def test_library_loads_more_as_you_scroll(ui_browser: Browser, bot: BotHarness) -> None:
    for n in range(65):
        await seed(bot.store, ANN, f"Link {n:02d}", ["bulk"], minutes_ago=n)
    context, page = await mini_app(ui_browser, bot, width=360)
    await expect(page.locator("#grid .card")).to_have_count(60, timeout=TIMEOUT)
    await page.locator("#more").scroll_into_view_if_needed()
    await expect(page.locator("#grid .card")).to_have_count(65)
    titles = await tiles(page)
    assert titles[0] == "Link 00" and titles[-1] == "Link 64"
    await context.close()


async def test_a_stored_title_with_markup_is_shown_as_text(
    ui_browser: Browser, bot: BotHarness
) -> None:
    evil = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    await seed(bot.store, ANN, evil, ["x"], note="<b>note</b>", summary="<i>sum</i>")
    context, page = await mini_app(ui_browser, bot)
    title = page.locator("#grid .card .title")
    await expect(title).to_have_text(evil)
    assert await page.locator("#grid .card script, #grid .card .meta img").count() == 0
    await page.locator("#grid .card").click()
    await expect(page.locator("#detail-title")).to_have_text(evil)
    await expect(page.locator("#detail-note")).to_have_text("<b>note</b>")
    await expect(page.locator("#detail-summary")).to_have_text("<i>sum</i>")
    assert await page.locator("#detail script, #detail b, #detail i").count() == 0
    assert await page.evaluate("window.pwned === undefined")
    await context.close()


# --- changes reach the chat --------------------------------------------------------------


async def open_card(page: Page, title: str) -> None:
    await page.locator("#grid .card", has_text=title).click()
    await expect(page.locator("#detail-title")).to_have_text(title)


async def test_edit_tags_delete_undo_and_the_chat_follows(
    ui_browser: Browser, bot: BotHarness
) -> None:
    photo = await bot.snapshot(ANN, "/article/managed", "#draft")
    context, page = await mini_app(ui_browser, bot)
    [record] = await bot.records(ANN)
    title = record.title or ""
    await open_card(page, title)
    start = len(bot.api.calls)
    await page.fill("#detail-tags", "#reading #机器学习")
    await page.click("#detail-save-tags")
    caption = (await bot.caption_edit(photo, start))["caption"]
    assert "#reading #机器学习" in caption and "#draft" not in caption
    assert "#reading — 1" in await bot.answer(ANN, "/tags")
    assert title in await bot.answer(ANN, "/find #机器学习")
    assert "No links match" in await bot.answer(ANN, "/find #draft")
    inline = bot.api.send_inline_query(ANN, "#机器学习")
    await bot.api.wait_until(lambda: inline in bot.api.inline_answers, timeout=20)
    assert [r["id"] for r in bot.api.inline_answers[inline]["results"]] == [str(record.id)]
    # delete, and undo
    start = len(bot.api.calls)
    await page.click("#detail-delete")
    await expect(page.locator("#toast")).to_contain_text("Deleted")
    assert "Deleted" in (await bot.caption_edit(photo, start))["caption"]
    assert await bot.records(ANN) == []
    assert "No links match" in await bot.answer(ANN, "/find #reading")
    start = len(bot.api.calls)
    await page.click("#toast button")
    await expect(page.locator("#toast")).to_have_text("Restored.")
    restored = (await bot.caption_edit(photo, start))["caption"]
    assert "#reading #机器学习" in restored and "Deleted" not in restored
    await expect(page.locator("#grid .card")).to_have_count(1)
    assert title in await bot.answer(ANN, "/find #reading")
    await context.close()


async def select(page: Page, *titles: str) -> None:
    await page.click("#select")
    for title in titles:
        await page.locator("#grid .card", has_text=title).click()
    await expect(page.locator("#bulk-count")).to_have_text(f"{len(titles)} selected")


async def test_bulk_retag_and_rename_a_tag_across_links(
    ui_browser: Browser, bot: BotHarness
) -> None:
    photo = await bot.snapshot(ANN, "/article/bulk-a", "#js")
    sent = "Article bulk-a"  # the link sent in the chat: its caption follows each change
    await seed(bot.store, ANN, "Second", ["js"], minutes_ago=10)
    await seed(bot.store, ANN, "Third", ["python"], minutes_ago=20)
    await seed(bot.store, ANN, "Both", ["js", "javascript"], minutes_ago=30)
    context, page = await mini_app(ui_browser, bot, width=360)
    await expect(page.locator("#grid .card")).to_have_count(4, timeout=TIMEOUT)
    start = len(bot.api.calls)
    await select(page, sent, "Third")
    await page.fill("#bulk-tag", "#web")
    await page.click("#bulk-add")
    await expect(page.locator(".chip[data-tag=web]")).to_have_text("#web 2")
    assert {r.title: r.tags for r in await bot.records(ANN)}["Third"] == ["python", "web"]
    assert "#web" in (await bot.caption_edit(photo, start))["caption"]
    # and a tag taken off several links at once
    start = len(bot.api.calls)
    await select(page, sent)
    await page.fill("#bulk-tag", "#web")
    await page.click("#bulk-remove")
    await expect(page.locator(".chip[data-tag=web]")).to_have_text("#web 1")
    assert "#web" not in (await bot.caption_edit(photo, start))["caption"]
    # rename #js into #javascript: every link, and the chat's snapshot caption; a link
    # that had both ends with one
    start = len(bot.api.calls)
    await page.click(".rename summary")
    await page.fill("#rename-from", "#js")
    await page.fill("#rename-to", "#javascript")
    await page.click("#rename-submit")
    await expect(page.locator("#toast")).to_have_text("#js → #javascript: 3 links changed.")
    await expect(page.locator(".chip[data-tag=javascript]")).to_have_text("#javascript 3")
    await expect(page.locator(".chip[data-tag=js]")).to_have_count(0)
    assert "#javascript" in (await bot.caption_edit(photo, start))["caption"]
    assert {r.title: r.tags for r in await bot.records(ANN)}["Both"] == ["javascript"]
    tags = await bot.answer(ANN, "/tags")
    assert "#javascript — 3" in tags and "#js —" not in tags
    # bulk delete, with undo; the chat's snapshot says so
    start = len(bot.api.calls)
    await select(page, sent, "Third")
    await page.click("#bulk-delete")
    await expect(page.locator("#grid .card")).to_have_count(2)
    assert "Deleted" in (await bot.caption_edit(photo, start))["caption"]
    start = len(bot.api.calls)
    await page.click("#toast button")
    await expect(page.locator("#grid .card")).to_have_count(4)
    assert "Deleted" not in (await bot.caption_edit(photo, start))["caption"]
    await context.close()


# Every stage a link's progress item on the add page is shown in, in order.
WATCH_STAGES = """() => {
  window.stagesSeen = [];
  new MutationObserver(() => {
    const item = document.querySelector("#add-results .progress");
    const seen = window.stagesSeen;
    if (item && seen[seen.length - 1] !== item.dataset.stage) seen.push(item.dataset.stage);
  }).observe(document.body, { subtree: true, childList: true, attributes: true });
}"""


async def test_capture_again_and_files_from_the_page(ui_browser: Browser, bot: BotHarness) -> None:
    await bot.snapshot(ANN, "/article/files", "#f")
    context, page = await mini_app(ui_browser, bot)
    [record] = await bot.records(ANN)
    await open_card(page, record.title or "")
    assert "null" not in (await page.locator("#detail").inner_text())  # nothing absent shown
    await page.click("#detail-file-pdf")
    assert (await download(page, bot, "pdf")).startswith(b"%PDF")
    kept = await bot.store.db["link_files"].count_documents({})
    opened = bot.pages.hits["/article/files"]
    await page.click("#detail-file-pdf")  # made once: the second press finds it kept
    await expect(page.locator("#detail-files a.download[data-kind=pdf]")).to_have_count(2)
    assert await bot.store.db["link_files"].count_documents({}) == kept == 1
    assert bot.pages.hits["/article/files"] == opened  # the page was not opened again
    # the full page and the offline copy, with their real types
    await page.click("#detail-file-full_page")
    full = await download(page, bot, "full_page")
    assert full.startswith(b"\xff\xd8")  # a JPEG
    await page.click("#detail-file-mhtml")
    offline = await download(page, bot, "mhtml")
    assert b"multipart/related" in offline[:2000] and b"Article files" in offline
    # capture again: the page follows the link from "queued" to a new screenshot
    photos = len(bot.api.calls_of("sendPhoto", ANN, ok_only=True))
    await page.evaluate(WATCH_STAGES)
    await page.click("#detail-recapture")
    item = page.locator("#add-results .progress").first
    await expect(item).to_have_attribute("data-stage", "done", timeout=TIMEOUT)
    stages = await page.evaluate("window.stagesSeen")
    assert stages[0] == "pending" and stages[-1] == "done", stages
    await bot.api.wait_until(lambda: len(bot.api.calls_of("sendPhoto", ANN, ok_only=True)) > photos)
    [again] = await bot.records(ANN)
    assert again.screenshot and record.screenshot
    new_shot = str(again.screenshot.gridfs_id)
    assert new_shot != str(record.screenshot.gridfs_id)
    await expect(item.locator("img.shot")).to_have_attribute("src", re.compile(new_shot))
    await context.close()


async def test_page_and_chat_pressing_at_once_make_the_file_once(bot: BotHarness) -> None:
    """The page's 🖨 and the chat's 🖨 pressed together: the page is printed once, and
    both get that one file."""
    photo = await bot.snapshot(ANN, "/article/race", "#f")
    [record] = await bot.records(ANN)
    opened = bot.pages.hits["/article/race"]
    start = len(bot.api.calls)
    button = codec_for(bot.settings.token).encode(MakeFile(record.id, ArtifactKind.PDF), ANN)
    url = app_url(bot) + f"api/links/{record.id}/files/pdf"
    async with aiohttp.ClientSession(headers={"Authorization": "tma " + init_data(ANN)}) as http:
        asking = asyncio.ensure_future(http.post(url))
        bot.api.press_button(ANN, photo, button)
        async with await asking as answer:
            assert answer.status == 200
            made = await answer.json()
        async with http.get(app_url(bot).rstrip("/") + made["url"]) as served:
            from_page = await served.read()
    document = await bot.api.wait_for(
        lambda c: c.method == "sendDocument" and c.ok and c.params["chat_id"] == ANN,
        since=start,
        timeout=60,
    )
    assert bot.pages.hits["/article/race"] == opened + 1  # printed once
    assert bot.api.download(document.result["document"]["file_id"]) == from_page
    assert from_page.startswith(b"%PDF")


async def download(page: Page, bot: BotHarness, kind: str) -> bytes:
    """The file the page offers for `kind`, fetched as the browser would."""
    link = page.locator(f"#detail-files a.download[data-kind={kind}]").first
    await expect(link).to_be_visible(timeout=TIMEOUT)
    href = await link.get_attribute("href")
    assert href is not None
    answer = await page.request.get(app_url(bot).rstrip("/") + href)
    assert answer.ok, answer.status
    return await answer.body()


async def test_a_front_without_a_browser_has_files_made_by_a_worker(
    ui_browser: Browser, botapi: FakeBotAPI, mongodb_uri: str, pages: PageServer, capturer: Any
) -> None:
    """`python -m bot front` has no browser: the page's PDF and the chat's 🗄 button are
    made by the worker beside it, through the database."""
    async with front_and_worker(botapi, mongodb_uri, pages, capturer) as bot:
        assert bot.services.capturer is None and bot.services.worker is None
        photo = await bot.snapshot(ANN, "/article/front-files", "#f")  # the worker shot it
        [record] = await bot.records(ANN)
        context, page = await mini_app(ui_browser, bot)
        await open_card(page, record.title or "")
        await page.click("#detail-file-pdf")
        assert (await download(page, bot, "pdf")).startswith(b"%PDF")
        # and the chat's archive button, pressed in the same front
        start = len(botapi.calls)
        archive = MakeFile(record.id, ArtifactKind.MHTML)
        botapi.press_button(ANN, photo, codec_for(bot.settings.token).encode(archive, ANN))
        document = await botapi.wait_for(
            lambda c: c.method == "sendDocument" and c.ok and c.params["chat_id"] == ANN,
            since=start,
            timeout=60,
        )
        assert document.result["document"]["file_name"].endswith(".mhtml")
        assert await bot.store.db["file_orders"].count_documents({}) == 0
        await context.close()


# The Telegram client's side of the WebView bridge, recording what the SDK asks of it.
BRIDGE = """
window.bridgeEvents = [];
window.TelegramWebviewProxy = {
  postEvent(type, data) { window.bridgeEvents.push([type, data ? JSON.parse(data) : null]); },
};
"""
BACK_BUTTON = """(visible) => window.bridgeEvents.filter((e) => e[0] === "web_app_setup_back_button")
  .map((e) => e[1].is_visible).at(-1) === visible"""


async def test_inside_telegram_the_back_button_haptics_and_theme_are_the_clients(
    ui_browser: Browser, bot: BotHarness
) -> None:
    await library(bot)
    theme = {**LIGHT, "bg_color": "#123456", "text_color": "#fedcba"}
    context, page = await mini_app(ui_browser, bot, theme=theme, init_script=BRIDGE)
    # the client's own colours, not the page's fallbacks
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == (
        "rgb(18, 52, 86)"
    )
    assert await page.evaluate("getComputedStyle(document.body).color") == "rgb(254, 220, 186)"
    await page.click(".chip[data-tag=rust]")  # a light tap under the finger
    await page.wait_for_function(
        """() => window.bridgeEvents.some((e) => e[0] === "web_app_trigger_haptic_feedback"
            && e[1].type === "selection_change")"""
    )
    await expect(page.locator("#grid .card")).to_have_count(3)
    await open_card(page, "Rust ownership")
    await page.wait_for_function(BACK_BUTTON, arg=True)  # Telegram's back button shown
    await page.evaluate("window.Telegram.WebView.receiveEvent('back_button_pressed')")
    await expect(page.locator("#detail")).to_be_hidden()  # pressing it closes the link
    await expect(page.locator("#grid .card")).to_have_count(3)
    await page.wait_for_function(BACK_BUTTON, arg=False)  # and hides the button again
    await context.close()


async def test_the_find_and_tags_buttons_open_the_library_filtered_the_same_way(
    ui_browser: Browser, harness_factory: Any
) -> None:
    """An https WEBAPP_URL with a path (/app/): the buttons /find and /tags send, and the
    page they open, served under that path."""
    port = free_port()
    bot: BotHarness = await harness_factory(
        webapp_url="https://links.example/app/", web_listen=f"127.0.0.1:{port}"
    )
    await library(bot)
    found = await bot.command(ANN, "/find #rust #async tokio")
    assert found.ok and "Tokio internals" in found.result["text"]
    url = found.params["reply_markup"]["inline_keyboard"][-1][0]["web_app"]["url"]
    assert url == "https://links.example/app/?view=manage&tags=rust%2Casync&q=tokio"
    tags = await bot.command(ANN, "/tags")
    assert tags.params["reply_markup"]["inline_keyboard"][-1][0]["web_app"]["url"] == (
        "https://links.example/app/?view=manage"
    )
    # what Telegram opens, here served on this machine under the same path
    local = url.replace("https://links.example/", f"http://127.0.0.1:{port}/")
    context = await ui_browser.new_context()
    page = await context.new_page()
    await page.goto(launch_url(local, init_data(ANN)))
    await expect(page.locator("#grid .card")).to_have_count(1, timeout=TIMEOUT)
    assert await tiles(page) == ["Tokio internals"]
    for tag in ("rust", "async"):
        await expect(page.locator(f".chip[data-tag={tag}]")).to_have_attribute(
            "aria-pressed", "true"
        )
    await expect(page.locator("#search")).to_have_value("tokio")
    thumb = page.locator("#grid .card img.thumb")
    await expect(thumb).to_have_js_property("complete", True)
    assert await thumb.evaluate("img => img.naturalWidth") == 400  # media under /app/ too
    await context.close()


# --- in a browser, and in Chinese ------------------------------------------------------------


async def test_signin_with_a_web_link_in_a_browser_shows_the_same_library(
    ui_browser: Browser, bot: BotHarness
) -> None:
    await library(bot)
    link = await signin_link(bot, ANN)
    context = await ui_browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(link)
    await page.click("button[type=submit]")
    await expect(page.locator("#grid .card")).to_have_count(5, timeout=TIMEOUT)
    assert (await tiles(page))[0] == "网页快照的中文文章"
    await expect(page.locator("#sign-out")).to_be_visible()
    await page.reload()  # the session outlives the page
    await expect(page.locator("#grid .card")).to_have_count(5, timeout=TIMEOUT)
    await page.click("#sign-out")
    await expect(page.locator("#refusal")).to_contain_text("signed out")
    await page.goto(link)  # spent: a clear page, no library
    await expect(page.locator("body")).to_contain_text("used or has run out")
    await page.goto(app_url(bot))
    await expect(page.locator("#refusal")).to_be_visible()
    assert await page.locator("#grid").count() == 0
    await context.close()


async def refused(
    ui_browser: Browser, bot: BotHarness, data: str, shows: Callable[[Locator], Awaitable[None]]
) -> None:
    """The library opened with launch data `data` shows a refusal (`shows` checks it), and
    no link."""
    await library(bot)
    context = await ui_browser.new_context()
    page = await context.new_page()
    await page.goto(launch_url(app_url(bot), data))
    await shows(page.locator("#refusal"))
    assert await page.locator("#grid .card").count() == 0
    await context.close()


async def test_forged_launch_data_shows_a_clear_page_and_no_data(
    ui_browser: Browser, bot: BotHarness
) -> None:
    forged = init_data(ANN, token="123456:SOMEONE-else")
    await refused(ui_browser, bot, forged, lambda r: expect(r).to_contain_text("not from Telegram"))


async def test_expired_launch_data_shows_a_clear_page_and_no_data(
    ui_browser: Browser, bot: BotHarness
) -> None:
    old = init_data(ANN, auth_date=time.time() - 25 * 3600)
    expired = plain_text(texts_for("en").web_ui["expired"])
    await refused(ui_browser, bot, old, lambda r: expect(r).to_have_text(expired))


async def test_a_chinese_users_browser_session_shows_chinese(
    ui_browser: Browser, bot: BotHarness
) -> None:
    await library(bot)
    token = await Sessions(bot.store.db).start(WebUser(ANN, "zh-hans", "安"))
    context = await ui_browser.new_context()
    await context.add_cookies([{"name": "linksnap_session", "value": token, "url": app_url(bot)}])
    page = await context.new_page()
    await page.goto(app_url(bot))
    await expect(page.locator("#total")).to_have_text("共 5 个链接", timeout=TIMEOUT)
    await expect(page.locator("header h1")).to_have_text("链接快照平台")
    await expect(page.locator("#nav-add")).to_have_text("添加链接")
    await expect(page.locator("#nav-manage")).to_have_text("link管理")
    await context.close()


async def test_chinese_ui_names_both_pages_on_a_phone_screen(
    ui_browser: Browser, bot: BotHarness
) -> None:
    await library(bot)
    context, page = await mini_app(ui_browser, bot, lang="zh-hans", width=360, theme=DARK)
    await expect(page.locator("header h1")).to_have_text("链接快照平台")
    await expect(page.locator("#nav-add")).to_have_text("添加链接")
    await expect(page.locator("#nav-manage")).to_have_text("link管理")
    await expect(page.locator("#total")).to_have_text("共 5 个链接")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways
    await page.click("#nav-add")
    await expect(page.locator("#nav-add")).to_have_attribute("aria-current", "page")
    await expect(page.locator("header h1")).to_have_text("链接快照平台")
    await expect(page.locator("#add-submit")).to_have_text("添加")
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(23, 33, 43)"  # Telegram's dark theme colour, from its params
    await context.close()


async def test_screenshots_of_both_pages_light_and_dark(
    ui_browser: Browser, bot: BotHarness, tmp_path: Path
) -> None:
    """The README's pictures, made by this browser (WEB_SCREENSHOTS_DIR=docs writes them)."""
    colours = ["#e4572e", "#17bebb", "#ffc914", "#76b041", "#3a7bd5", "#9b5de5"]
    titles = [
        ("How Rust's async works", ["rust", "async"]),
        ("网页快照的中文文章", ["中文", "阅读"]),
        ("A field guide to link rot", ["archive"]),
        ("Tokio internals", ["rust", "tokio"]),
        ("Designing a tag system", ["design"]),
        ("Python asyncio in depth", ["python", "async"]),
    ]
    await chat_started(bot, lang="zh-hans")
    for n, (title, tags) in enumerate(titles):
        await seed(bot.store, ANN, title, tags, minutes_ago=n, colour=colours[n])
    out = Path(SHOTS) if SHOTS else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    for scheme, theme in (("light", LIGHT), ("dark", DARK)):
        context, page = await mini_app(ui_browser, bot, lang="zh-hans", theme=theme, width=900)
        await expect(page.locator("#grid .card img.thumb").nth(5)).to_have_js_property(
            "complete", True
        )
        await page.screenshot(path=str(out / f"web-manage-{scheme}.png"))
        await page.click("#nav-add")
        await page.fill("#add-text", f"{bot.pages.url('/zh')} #阅读 值得一读")
        await page.click("#add-submit")
        item = page.locator("#add-results .progress").first
        await expect(item).to_have_attribute("data-stage", "done", timeout=TIMEOUT)
        await expect(item.locator("img.shot")).to_be_visible()
        await expect(item.locator("img.shot")).to_have_js_property("complete", True)
        await page.fill("#add-text", "https://example.com/article #阅读")
        await page.screenshot(path=str(out / f"web-add-{scheme}.png"))
        await context.close()
    assert all(
        (out / f"web-{p}-{s}.png").stat().st_size > 10_000
        for p in ("manage", "add")
        for s in ("light", "dark")
    )

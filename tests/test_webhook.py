"""Webhook mode (the Procfile's `web:` process): binds $PORT and takes Telegram's POSTs."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import bot.chat.receipts as receipts_module
from bot.chat.receipts import SETTLE_AT_MOST
from storage.models import LinkRecord
from storage.repository import LinkStore
from tests.conftest import INDEX_DIR, free_port
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.pages import PageServer
from tests.harness import BotHarness
from tests.processes import all_done, bot_env, start, stop


def start_update(update_id: int, user_id: int, language: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "Ann"},
            "from": {
                "id": user_id,
                "is_bot": False,
                "first_name": "Ann",
                "language_code": language,
            },
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def test_webhook_serves_port_and_checks_secret(harness_factory: Any) -> None:
    port = free_port()
    bot: BotHarness = await harness_factory(
        webhook_url="https://bot.example/hook/abc", port=str(port), webhook_secret="s3cret-value"
    )
    [hook] = bot.api.calls_of("setWebhook", ok_only=True)
    assert hook.params["url"] == "https://bot.example/hook/abc"
    assert hook.params["secret_token"] == "s3cret-value"
    bot.api.send_message(7, "hello")  # registers the chat with the fake; not delivered by polling
    url = f"http://127.0.0.1:{port}/hook/abc"
    async with aiohttp.ClientSession() as http:
        forged = await http.post(url, json=start_update(1, 7, "en"))
        assert forged.status == 403
        ok = await http.post(
            url,
            data=json.dumps(start_update(2, 7, "zh-hans")),
            headers={
                "X-Telegram-Bot-Api-Secret-Token": "s3cret-value",
                "Content-Type": "application/json",
            },
        )
        assert ok.status == 200
    reply = await bot.api.wait_for(lambda c: c.method == "sendMessage" and c.ok, timeout=20)
    assert "保存快照" in reply.result["text"]
    assert not bot.api.calls_of("getUpdates")


def link_update(update_id: int, user_id: int, url: str) -> dict[str, Any]:
    update = start_update(update_id, user_id, "en")
    update["message"]["text"] = url
    update["message"]["entities"] = [{"type": "url", "offset": 0, "length": len(url)}]
    return update


async def test_a_webhook_delivery_is_answered_once_its_links_are_written(
    harness_factory: Any, pages: PageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram does not deliver an answered update again: answered before its link was
    written, a kill in between would lose a link its user saw 👀 for."""
    port = free_port()
    bot: BotHarness = await harness_factory(
        webhook_url="https://bot.example/hook/abc", port=str(port)
    )
    # The POST's wait is capped (five seconds): not reached here however slow the host.
    monkeypatch.setattr(receipts_module, "SETTLE_AT_MOST", 600.0)
    entered, release = asyncio.Event(), asyncio.Event()
    write = LinkStore.add_pending

    async def held(store: LinkStore, record: LinkRecord) -> tuple[LinkRecord, bool]:
        entered.set()
        await release.wait()
        return await write(store, record)

    monkeypatch.setattr(LinkStore, "add_pending", held)
    bot.api.send_message(9, "hello")  # registers the chat with the fake
    link = pages.url("/article/hooked")
    async with aiohttp.ClientSession() as http:
        post = asyncio.ensure_future(
            http.post(f"http://127.0.0.1:{port}/hook/abc", json=link_update(3, 9, link))
        )
        await asyncio.wait_for(entered.wait(), 30)
        # 👀 went out (a round trip to the Bot API after the update was queued), and the
        # POST is still waiting for the link to be written.
        try:
            await bot.api.wait_for(lambda c: c.method == "setMessageReaction" and c.ok, 30)
            assert not post.done()
        finally:
            release.set()
        answer = await asyncio.wait_for(post, 30)
        assert answer.status == 200
    assert [r.url for r in await bot.records(9)] == [link]


async def _urls_written(uri: str, owner_id: int) -> set[str]:
    store = LinkStore.connect(uri, index_dir=INDEX_DIR)
    try:
        return {d["url"] async for d in store.links.find({"owner_id": owner_id}, {"url": 1})}
    finally:
        await store.close()


async def _deliver(http: aiohttp.ClientSession, url: str, update: dict[str, Any]) -> float | None:
    """One POST as Telegram makes it: seconds until it was answered 200, or None."""
    began = time.monotonic()
    try:
        async with http.post(url, json=update) as answer:
            return time.monotonic() - began if answer.status == 200 else None
    except aiohttp.ClientError:
        return None


@pytest.mark.timeout(300)
async def test_a_webhook_killed_before_it_answered_loses_no_link(
    botapi: FakeBotAPI, mongodb_uri: str, pages: PageServer, tmp_path: Path
) -> None:
    """Ten messages delivered at once; the bot SIGKILLed at its first 👀. Every update it
    had answered has its link written; Telegram delivers the others again, to the next
    start, which takes them although the first had seen them: each link recorded, done."""
    port = free_port()
    env = bot_env(botapi, mongodb_uri, webhook_url="https://bot.example/hook/abc", port=str(port))
    hook = f"http://127.0.0.1:{port}/hook/abc"
    botapi.send_message(46, "hello")  # registers the chat with the fake
    links = [pages.url(f"/article/hook-{i}") for i in range(10)]
    updates = [link_update(100 + i, 46, link) for i, link in enumerate(links)]
    first = await start(env, tmp_path)
    try:
        await botapi.wait_for(lambda c: c.method == "setWebhook" and c.ok, timeout=60)
        async with aiohttp.ClientSession() as http:
            posts = [asyncio.ensure_future(_deliver(http, hook, u)) for u in updates]
            reacted = lambda: bool(botapi.calls_of("setMessageReaction", 46, ok_only=True))  # noqa: E731
            await botapi.wait_until(reacted, timeout=60)
            first.send_signal(signal.SIGKILL)
            answered = await asyncio.gather(*posts)
    finally:
        if first.returncode is None:
            first.kill()
        await first.wait()
    written = await _urls_written(mongodb_uri, 46)
    assert len(written) < len(links)  # the kill came while they were being written
    # Answered before the answer's cap (one answered at SETTLE_AT_MOST may come before
    # its link, by design: a database outage must not hold Telegram's delivery).
    in_time = {
        link
        for link, took in zip(links, answered, strict=True)
        if took is not None and took < SETTLE_AT_MOST
    }
    assert in_time <= written
    second = await start(env, tmp_path)
    try:
        await botapi.wait_until(lambda: len(botapi.calls_of("setWebhook", ok_only=True)) == 2, 60)
        async with aiohttp.ClientSession() as http:
            again = [u for u, took in zip(updates, answered, strict=True) if took is None]
            took_again = await asyncio.gather(*(_deliver(http, hook, u) for u in again))
            assert None not in took_again
        assert await all_done(mongodb_uri, [46], len(links), timeout=120)
    finally:
        await stop(second)
    assert await _urls_written(mongodb_uri, 46) == set(links)


async def test_a_stop_waits_for_a_settled_mark_so_a_repeat_is_not_answered_twice(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivered update, once handled, is marked settled in the database so that its
    repeat is skipped. A stop reached while that mark is on its way (here held until the
    stop waits for marks, or else until the database closes) must let it land: lost,
    the repeat Telegram sends after the cut POST is handled again by the next start, and
    the user gets a second answer."""
    hook = "https://bot.example/hook/abc"
    port = free_port()
    first: BotHarness = await harness_factory(webhook_url=hook, port=str(port))
    # The stop's wait for marks is capped (five seconds): not reached here however slow
    # the host.
    monkeypatch.setattr(receipts_module, "SETTLE_AT_MOST", 600.0)
    store = first.services.store
    go = asyncio.Event()

    async def held_mark(update_id: int) -> None:
        await go.wait()
        await store.settle_update(update_id)

    first.app.bot_data.receipts.keep_with(held_mark)
    marked = receipts_module.Receipts.marked

    async def waited(receipts: receipts_module.Receipts) -> None:
        go.set()  # the stop waits for marks now: the held one may go on its way
        await marked(receipts)

    monkeypatch.setattr(receipts_module.Receipts, "marked", waited)
    close = store.close

    async def closing() -> None:
        await close()
        go.set()  # without that wait: the mark goes once the database has closed

    monkeypatch.setattr(store, "close", closing)
    first.api.send_message(11, "hello")  # registers the chat with the fake
    update = start_update(40, 11, "en")
    async with aiohttp.ClientSession() as http:
        post = asyncio.ensure_future(_deliver(http, f"http://127.0.0.1:{port}/hook/abc", update))
        await first.api.wait_for(lambda c: c.method == "sendMessage" and c.ok, 30)
        await first.stop()  # the POST waits for the mark: the stop cuts it (after 1 s)
        await post
        again_port = free_port()
        second: BotHarness = await harness_factory(webhook_url=hook, port=str(again_port))
        await _deliver(http, f"http://127.0.0.1:{again_port}/hook/abc", update)  # the repeat
        await second.handled(update["message"])
    answers = [c for c in second.api.calls_of("sendMessage") if c.params["chat_id"] == 11]
    assert len(answers) == 1  # the first start's only

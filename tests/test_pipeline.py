"""One pipeline, many workers: stages claimed through MongoDB by separate processes.

`python -m bot front` takes updates; `python -m bot worker` processes claim link stages
with leases from the same FerretDB. The strict Bot API fake fails the test on any call
inside a retry_after window, so workers writing to one chat must pace together.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.chat.links import MAX_LINKS
from tests.conftest import free_port
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.pages import PageServer
from tests.harness import BotHarness
from tests.processes import all_done, bot_env, print_logs, start, stop


def photos(api: FakeBotAPI) -> list[tuple[tuple[int, int | None], float]]:
    """Each photo sent: (chat, the message it answers), and when it arrived."""
    return [
        ((c.params["chat_id"], (c.params.get("reply_parameters") or {}).get("message_id")), c.at)
        for c in api.calls
        if c.method == "sendPhoto" and c.ok
    ]


def photos_per_message(api: FakeBotAPI) -> Counter[tuple[int, int | None]]:
    return Counter(message for message, _ in photos(api))


@pytest.mark.timeout(420)
async def test_front_and_three_workers_one_killed_midway(
    botapi: FakeBotAPI, mongodb_uri: str, pages: PageServer, tmp_path: Path
) -> None:
    env = bot_env(botapi, mongodb_uri, capture_concurrency="1")
    front = await start(env, tmp_path, "front")
    workers = [await start(env, tmp_path, "worker") for _ in range(3)]
    try:
        await botapi.wait_for(lambda c: c.method == "getUpdates", timeout=150)
        sent = [
            botapi.send_message(user, pages.url(f"/article/w{user}-{i}"))
            for i in range(8)  # enough that the killed worker leaves claims behind
            for user in (301, 302, 303)
        ]
        procs = (front, *workers)
        await botapi.wait_until(
            lambda: (
                sum(photos_per_message(botapi).values()) >= 6
                or any(p.returncode is not None for p in procs)
            ),
            180,
        )
        assert all(p.returncode is None for p in procs), "a process stopped by itself"
        workers[0].send_signal(signal.SIGKILL)  # its leases must run out and move on
        await workers[0].wait()
        dead_at = time.monotonic()
        wanted = {(m["chat"]["id"], m["message_id"]) for m in sent}
        await botapi.wait_until(lambda: wanted <= set(photos_per_message(botapi)), timeout=300)
        done = await all_done(env["MONGODB_URI"], [301, 302, 303], len(sent), timeout=120)
    finally:
        for proc in (front, *workers):
            await stop(proc)
        print_logs(tmp_path)
    counts = photos_per_message(botapi)
    assert set(counts) == wanted
    # Exactly once, but for sends in flight at the instant of the kill (the Bot API has
    # no idempotency key): a second copy comes only after the kill, one per message at
    # most, and no more of them than the killed worker had slots sending (its capture
    # slot and its delivery slots: `Worker`'s default of 8).
    arrivals: dict[tuple[int, int | None], list[float]] = {}
    for message, at in photos(botapi):
        arrivals.setdefault(message, []).append(at)
    again = {key: at for key, at in arrivals.items() if len(at) > 1}
    assert all(len(at) == 2 and at[1] > dead_at for at in again.values()), again
    assert len(again) <= 1 + 8, counts
    assert done


@pytest.mark.timeout(300)
async def test_a_single_link_is_not_stuck_behind_another_users_two_hundred(
    harness_factory: Any, pages: PageServer, late_answers: dict[str, float]
) -> None:
    bot: BotHarness = await harness_factory(user_rate_per_minute="1000")
    # The first user's pages answer after 5 s: the slots wait rather than work, while
    # the order in which pages are opened, which is the point here, stays the same.
    late_answers["/article/many-"] = 5.0
    urls = [pages.url(f"/article/many-{i}") for i in range(200)]
    for first in range(0, 200, MAX_LINKS):  # as many to a message as a message takes
        bot.send(401, " ".join(urls[first : first + MAX_LINKS]))
    # One user's links are queued in the order sent: the last one queued means all are.
    await bot.wait_queued(401, pages.url("/article/many-199"), timeout=120)
    many = lambda: [p for p in pages.hits if p.startswith("/article/many-")]  # noqa: E731
    assert len(many()) < 150  # the queue is still long when the second user comes
    single = bot.send(402, pages.url("/article/single"))
    await bot.wait_queued(402, pages.url("/article/single"))
    # Counted from the moment the single link has its turn, in the order pages were
    # opened (the page server keeps first hits in order): an order, not a speed.
    queued_at = set(many())
    await bot.api.wait_until(lambda: bool(bot.photos_for(single)), timeout=90)
    order = list(pages.hits)
    jumped = [
        p
        for p in order[: order.index("/article/single")]
        if p.startswith("/article/many-") and p not in queued_at
    ]
    # The single link's turn is next after the head of the queue: the first user's links
    # opened after it was queued are at most that head and a claim already under way in
    # each of the two capture slots, not the 190-odd still waiting.
    assert len(jumped) <= 3, (len(queued_at), jumped)


@pytest.mark.timeout(240)
async def test_two_webhook_fronts_handle_each_update_once(
    botapi: FakeBotAPI, mongodb_uri: str, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    secret = "s3cret-webhook"
    fronts = []
    for port in ports:
        env = bot_env(
            botapi,
            mongodb_uri,
            webhook_url="https://bot.example/hook",
            webhook_secret=secret,
            port=str(port),
        )
        fronts.append(await start(env, tmp_path, "front"))
    try:
        await botapi.wait_until(lambda: len(botapi.calls_of("setWebhook", ok_only=True)) == 2, 60)
        updates = []
        for i in range(5):
            message = botapi.send_message(501, "/start")  # queued for polling too; unused
            updates.append({"update_id": 9000 + i, "message": message})
        async with aiohttp.ClientSession() as http:
            for update in updates:
                for port in ports:  # the same update reaches both fronts
                    await _post_until_up(http, port, secret, update)
        await botapi.wait_until(
            lambda: len(botapi.calls_of("sendMessage", 501, ok_only=True)) >= 5, timeout=60
        )
        # Each update was also seen by the other front, which skipped it (its log says
        # so): a signal that no second answer is still on its way.
        await botapi.wait_until(lambda: _skipped(tmp_path) >= 5, timeout=60)
    finally:
        for proc in fronts:
            await stop(proc)
        print_logs(tmp_path)
    assert len(botapi.calls_of("sendMessage", 501, ok_only=True)) == 5


def _skipped(logs: Path) -> int:
    """Updates the fronts skipped as handled already, from their logs."""
    return sum(
        log.read_text(errors="replace").count("was handled already: skipped")
        for log in logs.glob("*.log")
    )


async def _post_until_up(
    http: aiohttp.ClientSession, port: int, secret: str, update: dict[str, Any]
) -> None:
    for _ in range(100):
        try:
            async with http.post(
                f"http://127.0.0.1:{port}/hook",
                data=json.dumps(update),
                headers={
                    "Content-Type": "application/json",
                    "X-Telegram-Bot-Api-Secret-Token": secret,
                },
            ) as response:
                assert response.status == 200
                return
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.3)
    raise AssertionError(f"front on port {port} never answered")

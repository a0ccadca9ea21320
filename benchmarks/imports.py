"""`python -m benchmarks imports`: hostile import files of about 1 MB, each sent to the bot
(front role: recorded, not captured) while another user sends /help every 250 ms.

For each file: how long until it was read (the first count, or the refusal, in the
import's message), how long the whole import took, and how long another user waited for
each /help answer (update queued at the Bot API fake → its sendMessage received; each
/help from a new user, so that no chat's own pacing, 1 message a second after a burst,
is measured instead of the bot's event loop), and the longest the event loop was busy.
Results print as JSON and go to benchmarks/imports.json.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import fresh_ferretdb, settings
from bot import eventloop
from bot.app import build_application, running
from bot.services import Role
from tests.fakes.botapi import Call, FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent
DEAD = "http://127.0.0.1:1"
HELP_EVERY = 0.25


def nested(depth: int = 10_000) -> bytes:
    lines = ["<!DOCTYPE NETSCAPE-Bookmark-file-1>", "<DL><p>"]
    for level in range(depth):
        lines += [f"<DT><H3>lvl{level}</H3>", "<DL><p>", f'<DT><A HREF="{DEAD}/n{level}">l</A>']
    return "\n".join([*lines, *["</DL><p>"] * (depth + 1)]).encode()


def flat(count: int = 12_000) -> bytes:
    rows = [f'<DT><A HREF="{DEAD}/f{i}" ADD_DATE="1700000000">page {i}</A>' for i in range(count)]
    return "\n".join(["<!DOCTYPE NETSCAPE-Bookmark-file-1>", "<DL><p>", *rows, "</DL>"]).encode()


def many_tags(links: int = 100, tags: int = 2_000) -> bytes:
    names = ",".join(f"tag{i}" for i in range(tags))
    rows = [f'<DT><A HREF="{DEAD}/t{i}" TAGS="{names}">t</A>' for i in range(links)]
    return "\n".join(["<DL><p>", *rows, "</DL>"]).encode()


def deep_json() -> bytes:
    return b"[" * 500_000 + b"]" * 500_000


def text_links(count: int = 30_000) -> bytes:
    return "\n".join(f"{DEAD}/x{i}" for i in range(count)).encode()


def csv_rows(count: int = 15_000) -> bytes:
    rows = [f"{DEAD}/c{i},Title {i},a|b|c,Work/Sub/Deeper/Deepest" for i in range(count)]
    return "\n".join(["url,title,tags,folder", *rows]).encode()


def open_comments() -> bytes:
    return b"<DL>" + b"<!--<a " * 150_000


SHAPES: dict[str, Callable[[], bytes]] = {
    "nested 10 000 folders": nested,
    "flat 12 000 links": flat,
    "100 links x 2 000 TAGS": many_tags,
    "JSON nested 500 000 deep": deep_json,
    "text, 30 000 links": text_links,
    "CSV, 15 000 rows, 4-deep folders": csv_rows,
    "unclosed comments": open_comments,
}


def _answer_to(chat_id: int) -> Callable[[Call], bool]:
    return lambda c: c.method == "sendMessage" and c.params["chat_id"] == chat_id


class LoopLag:
    """How late a task that asks to wake every 50 ms wakes: the longest stretch the
    bot's event loop (the bench runs the bot in its own process) was kept busy."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.05)
            self.worst = max(self.worst, time.monotonic() - before - 0.05)

    def stop(self) -> float:
        self._task.cancel()
        return round(self.worst, 3)


async def one_file(api: FakeBotAPI, user: int, name: str, data: bytes) -> dict[str, Any]:
    lag = LoopLag()
    start = len(api.calls)
    sent_at = time.monotonic()
    api.send_document(user, data, f"{name}.txt")
    reply = await api.wait_for(
        lambda c: c.method == "sendMessage" and c.ok and c.params["chat_id"] == user,
        timeout=60,
        since=start,
    )
    message_id = reply.result["message_id"]
    waits: list[float] = []
    read_at: float | None = None
    while True:
        text = api.message_text(user, message_id) or ""
        if read_at is None and "Reading" not in text:
            read_at = time.monotonic()
        if "Imported" in text or "Nothing was imported" in text or "stopped" in text:
            break
        before = len(api.calls)
        asker = user * 1000 + len(waits)  # a new chat each time: no chat's pacing in it
        asked = time.monotonic()
        api.send_message(asker, "/help")
        await api.wait_for(_answer_to(asker), timeout=120, since=before)
        waits.append(time.monotonic() - asked)
        await asyncio.sleep(HELP_EVERY)
    done_at = time.monotonic()
    return {
        "bytes": len(data),
        "read_s": round((read_at or done_at) - sent_at, 2),
        "total_s": round(done_at - sent_at, 2),
        "answer": (api.message_text(user, message_id) or "")[:120],
        "help_n": len(waits),
        "help_p50_s": round(statistics.median(waits), 3) if waits else None,
        "help_max_s": round(max(waits), 3) if waits else None,
        "loop_lag_max_s": lag.stop(),
    }


async def run() -> dict[str, Any]:
    with fresh_ferretdb("bench-ferretdb-") as (base, _):
        return await _measure(f"{base}/imports")


async def _measure(mongo: str) -> dict[str, Any]:
    api = FakeBotAPI(private_burst=1000, private_rate=1000)
    await api.start()
    results: dict[str, Any] = {}
    index_dir = tempfile.mkdtemp(prefix="bench-index-")
    try:
        cfg = settings(api, mongo, search_index_dir=index_dir)
        async with running(build_application(cfg, role=Role.FRONT), cfg):
            await api.wait_for(lambda c: c.method == "getUpdates", timeout=60)
            for index, (name, make) in enumerate(SHAPES.items()):
                results[name] = await one_file(api, 1000 + 10 * index, name, make())
                print(name, results[name], flush=True)
    finally:
        await api.stop()
        shutil.rmtree(index_dir, ignore_errors=True)
    return results


def main() -> None:
    results = eventloop.run(run())
    print(json.dumps(results, indent=2, ensure_ascii=False))
    (ROOT / "benchmarks" / "imports.json").write_text(
        json.dumps(results, indent=2, ensure_ascii=False) + "\n"
    )

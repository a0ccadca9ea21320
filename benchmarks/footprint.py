"""Memory of the whole set `make run` starts, and the first link after an idle close.

The set: FerretDB started as scripts/run.sh starts it (same binary, same GOMEMLIMIT),
and `python -m bot` in its own process (with run.sh's MALLOC_ARENA_MAX) (with its Playwright driver and Chromium while
the browser is open). Memory is PSS summed over all of them (bot/procmem.py).

1. at start (browser open, nothing done yet);
2. peak while busy: two pages in flight, then the 30 real pages of the burst bench;
3. idle after the idle close: BROWSER_IDLE_CLOSE is set short here (BENCH_IDLE_CLOSE,
   default 20 s, instead of 300) so the bench does not wait five minutes; measured
   once the bot's browser processes are gone and 10 s more have passed;
4. the first link after that: update → photo, against a bare Playwright shot on a cold
   browser (start Playwright, launch Chromium, new page, goto, screenshot).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

from benchmarks.common import RUN_GO_GC
from benchmarks.realpages import RealPages
from bot.browser.binary import find_chromium
from bot.procmem import process_memory, pss
from tests.conftest import FERRETDB, ferretdb_env, free_port
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.pages import PageServer

ROOT = Path(__file__).resolve().parent.parent
IDLE_CLOSE = float(os.environ.get("BENCH_IDLE_CLOSE", "20"))
MIB = 2**20


async def cold_bare(url: str, runs: int = 3) -> list[float]:
    """A bare shot with nothing running: Playwright and Chromium start for it."""
    samples = []
    executable = find_chromium()
    for _ in range(runs):
        start = time.monotonic()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=executable)
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(url)
            await page.screenshot(type="jpeg", quality=80)
            samples.append(time.monotonic() - start)
            await browser.close()
    return samples


class WholeSet:
    """FerretDB and `python -m bot`, each its own process, as `make run` starts them."""

    def __init__(self, api: FakeBotAPI) -> None:
        self.api = api
        self.fdb: asyncio.subprocess.Process | None = None
        self.bot: asyncio.subprocess.Process | None = None
        self.data: Path | None = None  # FerretDB's files and the index: removed at stop

    async def start(self) -> None:
        data = self.data = Path(tempfile.mkdtemp(prefix="bench-whole-"))
        port = free_port()
        self.fdb = await asyncio.create_subprocess_exec(
            str(FERRETDB),
            "--listen-addr",
            f"127.0.0.1:{port}",
            "--sqlite-url",
            f"file:{data}/",
            env=ferretdb_env(RUN_GO_GC),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await asyncio.sleep(1.0)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TELEGRAM_BOT_TOKEN": self.api.token,
            "TELEGRAM_API_URL": self.api.root,
            "MONGODB_URI": f"mongodb://127.0.0.1:{port}/linksnap",
            "CAPTURE_ALLOW_PRIVATE": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "WEB_LISTEN": "127.0.0.1:0",
            "SEARCH_INDEX_DIR": str(data / "index"),
            "BROWSER_IDLE_CLOSE": str(IDLE_CLOSE),
            "USER_RATE_PER_MINUTE": "1000",
            "MALLOC_ARENA_MAX": "2",  # as scripts/run.sh
        }
        mark = len(self.api.calls)
        self.bot = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await self.api.wait_for(lambda c: c.method == "getUpdates", timeout=90, since=mark)

    def pss(self) -> int:
        assert self.bot is not None and self.fdb is not None
        return process_memory(self.bot.pid).total + pss(self.fdb.pid)

    def parts(self) -> dict[str, float]:
        assert self.bot is not None and self.fdb is not None
        bot = process_memory(self.bot.pid)
        return {
            "bot_mib": round(bot.own / MIB, 1),
            "browser_mib": round(bot.children / MIB, 1),
            "ferretdb_mib": round(pss(self.fdb.pid) / MIB, 1),
        }

    def browser_open(self) -> bool:
        assert self.bot is not None
        return process_memory(self.bot.pid).children > 0

    async def stop(self) -> None:
        for proc in (self.bot, self.fdb):
            if proc is not None and proc.returncode is None:
                proc.terminate()
                await proc.wait()
        if self.data is not None:
            shutil.rmtree(self.data, ignore_errors=True)


async def photos(api: FakeBotAPI, since: int, count: int, peak: list[int], s: WholeSet) -> None:
    """Wait for `count` photos after call `since`, sampling the set's memory meanwhile."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        peak.append(s.pss())
        answered = [  # a photo, or the line saying why there is none
            c
            for c in api.calls[since:]
            if c.ok
            and (
                c.method in {"sendPhoto", "sendDocument"}
                or (c.method == "sendMessage" and c.params.get("reply_parameters"))
            )
        ]
        if len(answered) >= count:
            return
        await asyncio.sleep(0.1)


async def run(api: FakeBotAPI, pages: PageServer, real: RealPages) -> dict[str, Any]:
    whole = WholeSet(api)
    await whole.start()
    out: dict[str, Any] = {
        "idle_close_s": IDLE_CLOSE,
        "ferretdb_gomemlimit": RUN_GO_GC["GOMEMLIMIT"],
    }
    try:
        await asyncio.sleep(1)
        out["start_mib"] = round(whole.pss() / MIB, 1)
        out["start_parts"] = whole.parts()
        peak: list[int] = []
        mark = len(api.calls)
        for i in range(3):  # two pages in flight, three times
            api.send_message(700 + i, f"{pages.url('/big')}?a={i} {pages.url('/tall')}?b={i}")
        await photos(api, mark, 6, peak, whole)
        out["peak_two_in_flight_mib"] = round(max(peak) / MIB, 1)
        mark = len(api.calls)
        for i, url in enumerate(real.urls()):
            api.send_message(800 + i % 3, url)
            peak.append(whole.pss())
            await asyncio.sleep(0.3)
        await photos(api, mark, len(real.urls()), peak, whole)
        out["peak_with_real_burst_mib"] = round(max(peak) / MIB, 1)
        out["busy_parts_at_end"] = whole.parts()
        closed_after = time.monotonic()
        while whole.browser_open() and time.monotonic() - closed_after < IDLE_CLOSE + 120:  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.5)
        out["browser_closed_after_s"] = round(time.monotonic() - closed_after, 1)
        await asyncio.sleep(10)
        samples = []
        for _ in range(5):
            samples.append(whole.pss())
            await asyncio.sleep(1)
        out["idle_after_close_mib"] = round(statistics.median(samples) / MIB, 1)
        out["idle_parts"] = whole.parts()
        mark = len(api.calls)
        sent = time.monotonic()
        api.send_message(799, pages.url("/article/after-idle"))
        call = await api.wait_for(lambda c: c.method == "sendPhoto" and c.ok, 120, since=mark)
        out["first_link_after_idle_s"] = round(call.at - sent, 3)
    finally:
        await whole.stop()
    bare = await cold_bare(pages.url("/article/cold"))
    out["bare_cold_shot_s"] = round(statistics.median(bare), 3)
    out["first_link_minus_cold_bare_s"] = round(
        out["first_link_after_idle_s"] - out["bare_cold_shot_s"], 3
    )
    return out

"""`make bench`: the targets, measured against the real parts on this machine.

1. 👀 reaction latency: update queued at the Bot API fake → setMessageReaction received.
2. link → photo vs a bare Playwright screenshot, both on a warm browser, same local page,
   for a link sent on its own (1 s after the previous photo) and for links back to back.
3. summary visibility: each chunk written by the OpenAI fake → first edit showing it.
4. memory of the whole set `make run` starts (bot, Chromium, FerretDB): at start, peak
   busy, idle after the browser's idle close, and the first link after it against a
   bare shot on a cold browser (benchmarks/footprint.py).
4b. a burst of 30 real pages from three users against bare Playwright, with where the
   bot's time goes per page (benchmarks/burst.py, pages from benchmarks/realpages.py).
5. /find and /tags at 100 000 links (benchmarks/find.py; `python -m benchmarks find` alone).
6. the library's first page for a user with 100 000 links: API, thumbnails, the page in
   headless Chromium (benchmarks/web.py; `python -m benchmarks web` alone).
7. link-rot checks per hour for one worker (benchmarks/linkrot.py; `python -m benchmarks
   linkrot` alone).
8. what the egress proxy costs the 30-page burst, bare Playwright without and with it
   (benchmarks/proxy.py; `python -m benchmarks proxy` alone, not part of a full run).

Results print as a table and are written to benchmarks/results.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

from benchmarks import burst, common, footprint
from benchmarks.realpages import RealPages
from bot import eventloop
from bot.app import build_application, running, set_heap_aside
from bot.browser.binary import find_chromium
from bot.config import Settings
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.openai_server import FakeOpenAI, Script
from tests.fakes.pages import PageServer

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "20"))


def summary(values: list[float]) -> dict[str, float]:
    return common.summary(values, 4)


def loadavg() -> str:
    """The machine's load (1, 5, 15 min): other work on the same cores skews timings."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def settings(api: FakeBotAPI, mongo: str, **extra: str) -> Settings:
    env = {"user_rate_per_minute": "1000", "web_listen": "127.0.0.1:0", **extra}
    return common.settings(api, mongo, **env)


async def bench_reaction(api: FakeBotAPI, pages: PageServer) -> dict[str, float]:
    samples = []
    for i in range(RUNS):
        before = len(api.calls)
        queued = time.monotonic()
        api.send_message(100 + i, pages.url(f"/article/react{i}"))
        call = await api.wait_for(lambda c: c.method == "setMessageReaction", 30, since=before)
        samples.append(call.at - queued)
        await api.wait_for(lambda c: c.method == "sendPhoto" and c.ok, 60, since=before)
    return summary(samples)


async def bare_screenshots(url: str, gap: float) -> list[float]:
    """The yardstick: a warm browser, a new page, goto, screenshot."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=find_chromium())
        samples = []
        for _ in range(RUNS):
            await asyncio.sleep(gap)
            start = time.monotonic()
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(url)
            await page.screenshot(type="jpeg", quality=80)
            await page.close()
            samples.append(time.monotonic() - start)
        await browser.close()
    return samples


async def bench_capture(api: FakeBotAPI, pages: PageServer, gap: float) -> dict[str, Any]:
    """Each link sent `gap` seconds after the previous photo arrived (the yardstick's
    shots as far apart): 1 s is a link sent on its own; 0 is links back to back, where
    the bot's work after a photo (its spare page, the stored capture) meets the next."""
    url = pages.url("/article/bench")
    bare = await bare_screenshots(url, gap)
    ours = []
    for i in range(RUNS):
        await asyncio.sleep(gap)
        before = len(api.calls)
        queued = time.monotonic()
        # A new user and URL each time: the duplicate short-cut never applies.
        api.send_message(300 + int(gap * 1000) + i, f"{url}?run={gap}-{i}")
        call = await api.wait_for(lambda c: c.method == "sendPhoto" and c.ok, 60, since=before)
        ours.append(call.at - queued)
    ratio = statistics.median(ours) / statistics.median(bare)
    return {"bare": summary(bare), "link_to_photo": summary(ours), "ratio_p50": round(ratio, 3)}


async def bench_summary(api: FakeBotAPI, llm: FakeOpenAI, pages: PageServer) -> dict[str, Any]:
    chunks = [f"c{i:03d} " for i in range(60)]
    llm.enqueue(Script(chunks=chunks, interval=0.1))
    llm.chunk_times.clear()
    api.send_message(500, pages.url("/article/summary"))
    await api.wait_for(
        lambda c: (
            c.method == "setMessageReaction"
            and c.params.get("chat_id") == 500
            and c.params["reaction"][0]["emoji"] in {"👌", "🤷"}
        ),
        timeout=90,
    )
    edits = [
        c
        for c in api.calls
        if c.method in {"editMessageCaption", "editMessageText"}
        and c.ok
        and c.params.get("chat_id") == 500
    ]
    lags = []
    for piece, written in llm.chunk_times:
        shown = [
            e.at
            for e in edits
            if piece.strip() in str(e.params.get("caption") or e.params.get("text"))
        ]
        if shown:
            lags.append(min(shown) - written)
    flood = [c for c in api.calls if c.error_code == 429]
    return {"visible_after_written": summary(lags), "edits": len(edits), "flood_errors": len(flood)}


async def main(only_burst: bool = False) -> None:
    """Every part; `only_burst`: links back to back and the 30-page burst alone."""
    with common.fresh_ferretdb("bench-ferretdb-") as (base, _):
        await _measure(f"{base}/bench", only_burst)


async def _measure(mongo: str, only_burst: bool) -> None:
    pages, api, llm = PageServer(), FakeBotAPI(private_burst=1000, private_rate=1000), FakeOpenAI()
    real = RealPages()
    for server in (pages, api, llm, real):
        await server.start()
    results: dict[str, Any] = {}
    try:
        async with running(build_application(settings(api, mongo)), settings(api, mongo)):
            set_heap_aside()  # as `python -m bot` does once started
            await api.wait_for(lambda c: c.method == "getUpdates", timeout=60)
            if not only_burst:
                results["reaction_s"] = await bench_reaction(api, pages)
                results["capture_s"] = await bench_capture(api, pages, gap=1.0)
            results["load_before_captures"] = loadavg()
            results["capture_back_to_back_s"] = await bench_capture(api, pages, gap=0.0)
            results["load_during_captures"] = loadavg()
            bare_burst = await burst.bare(real.urls())
            bot_burst = await burst.through_bot(api, real.urls())
            results["burst_30_real_pages"] = {
                "bare_playwright": bare_burst,
                "bot": bot_burst,
                "ratio_bare_last_over_bot_last": burst.ratio(bot_burst, bare_burst),
                "load": loadavg(),
            }
        if only_burst:
            return
        strict = FakeBotAPI()
        await strict.start()
        cfg = settings(strict, mongo + "2", openai_api_key="sk-test", openai_base_url=llm.base_url)
        async with running(build_application(cfg), cfg):
            await strict.wait_for(lambda c: c.method == "getUpdates", timeout=60)
            results["summary_s"] = await bench_summary(strict, llm, pages)
        await strict.stop()
        results["whole_set"] = await footprint.run(api, pages, real)
        results["whole_set"]["load"] = loadavg()
    finally:
        for server in (pages, api, llm, real):
            await server.stop()
        _report(results, "results-burst.json" if only_burst else "results.json")


def _report(results: dict[str, Any], name: str) -> None:
    results["runs"] = RUNS
    results["machine"] = f"{os.cpu_count()} cores"
    print(json.dumps(results, indent=2, ensure_ascii=False))
    (ROOT / "benchmarks" / name).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    # `python -m benchmarks find` (or `web`, `linkrot`, `imports`) runs that bench alone; no
    # argument runs all seven (the hostile import files only when asked: benchmarks/imports.py).
    # `burst`: only links back to back and the 30-real-page burst (results-burst.json).
    chosen = sys.argv[1:]
    if chosen == ["burst"]:
        eventloop.run(main(only_burst=True))
        sys.exit()
    if chosen == ["proxy"]:
        from benchmarks import proxy

        eventloop.run(proxy.main())
        sys.exit()
    if chosen == ["imports"]:
        from benchmarks import imports

        imports.main()
        sys.exit()
    if not chosen:
        eventloop.run(main())
    from benchmarks import find, linkrot, web

    if chosen in ([], ["find"]):
        find.main()
    if chosen in ([], ["web"]):
        web.main()
    if chosen in ([], ["linkrot"]):
        linkrot.main()

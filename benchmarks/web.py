"""`python -m benchmarks web`: the library's first page for a user with 100 000 links.

Seeds BENCH_WEB_LINKS links (default 100 000) of one user into a fresh FerretDB started
as `make run` starts it (the newest 60 with screenshots of their own, 1280×800 JPEGs),
builds the derived listing index, then runs the real bot (front and workers) against
the Bot API fake and measures, on its pages' server:

- the API: `GET api/links` (the first 60 tiles' data, what link管理 loads first), with
  Telegram launch data checked on every call; and the same filtered by a tag;
- thumbnails: the first 60 made from their screenshots (cold), then served again;
  their sizes;
- the page in headless Chromium (a browser of its own, a fresh profile each time):
  from navigation to 60 tiles in the page (interactive), and to every thumbnail of the
  first screen drawn (those further down load as the user scrolls).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import async_playwright

from benchmarks.common import fresh_ferretdb, merge_results, seed_links, settings, summary
from bot import eventloop
from bot.app import build_application, running
from bot.browser.binary import find_chromium
from bot.web.thumbnails import make as make_thumbnail
from storage.models import LinkRecord, Screenshot, Status
from storage.repository import LinkStore
from tests.fakes.botapi import FakeBotAPI
from tests.records import owned
from tests.web_helpers import init_data, launch_url, picture

LINKS = int(os.environ.get("BENCH_WEB_LINKS", "100000"))
SAMPLES = int(os.environ.get("BENCH_WEB_SAMPLES", "60"))
PAGE_RUNS = int(os.environ.get("BENCH_WEB_PAGE_RUNS", "10"))
USER = 7
TOKEN = "123456:BENCH-token"
FIRST_PAGE = 60
TAGS = [f"t{i}" for i in range(50)]
T0 = datetime(2025, 1, 1, tzinfo=UTC)
# Thumbnails below the fold load lazily, as the user scrolls: the first screen's count.
ALL_DRAWN = (
    "() => [...document.querySelectorAll('#grid img.thumb')]"
    ".filter(i => i.getBoundingClientRect().top < innerHeight).every(i => i.complete)"
)
FIRST_PAGE_MARK = "() => performance.getEntriesByName('linksnap:first-page')[0].startTime"
COLOURS = ["#e4572e", "#17bebb", "#ffc914", "#76b041", "#3a7bd5", "#9b5de5"]
rng = random.Random(17)


def stats(samples: list[float]) -> dict[str, float]:
    return summary(samples, 1)


async def seed(store: LinkStore) -> dict[str, float]:
    started = time.monotonic()
    shared = await store.put_image(picture(colour="#888888"), "shared.jpg")
    newest = {LINKS - 1 - i for i in range(FIRST_PAGE)}
    batch: list[LinkRecord] = []
    for n in range(LINKS):
        image = shared
        if n in newest:
            image = await store.put_image(picture(colour=COLOURS[n % len(COLOURS)]), f"{n}.jpg")
        url = f"https://site{n % 997}.example/{n}"
        batch.append(
            owned(
                USER,
                url,
                tags=rng.sample(TAGS, rng.randint(1, 3)),
                title=f"Page {n} about something worth keeping",
                final_url=url,
                status=Status.DONE,
                screenshot=Screenshot(1280, 800, gridfs_id=image),
                created_at=T0 + timedelta(seconds=n * 7),
            )
        )
        if len(batch) == 2000:
            await seed_links(store, batch)
            batch = []
    await seed_links(store, batch)
    seeded = time.monotonic() - started
    started = time.monotonic()
    await store.index.sync()
    return {
        "links": LINKS,
        "seed_s": round(seeded, 1),
        "index_build_s": round(time.monotonic() - started, 1),
    }


async def api_times(base: str, query: str) -> dict[str, float]:
    samples = []
    async with aiohttp.ClientSession() as http:
        for _ in range(SAMPLES):
            headers = {"Authorization": "tma " + init_data(USER, token=TOKEN)}
            start = time.perf_counter()
            async with http.get(base + "api/links" + query, headers=headers) as response:
                body = await response.json()
            samples.append((time.perf_counter() - start) * 1000)
            assert response.status == 200, body
            assert len(body["items"]) == min(FIRST_PAGE, body["total"])
    return stats(samples)


async def find_times(store: LinkStore) -> dict[str, float]:
    """The listing query alone (`LinkStore.find`, as /find runs it), for the API's share."""
    samples = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        await store.find(USER, [], "", page=0, page_size=FIRST_PAGE)
        samples.append((time.perf_counter() - start) * 1000)
    return stats(samples)


async def thumbnails(base: str) -> dict[str, Any]:
    headers = {"Authorization": "tma " + init_data(USER, token=TOKEN)}
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "api/links", headers=headers) as response:
            items = (await response.json())["items"]
        urls = [base.rstrip("/") + item["thumb"] for item in items]
        out: dict[str, Any] = {}
        for name in ("cold", "warm"):
            times, sizes = [], []
            for url in urls:
                start = time.perf_counter()
                async with http.get(url) as response:
                    data = await response.read()
                times.append((time.perf_counter() - start) * 1000)
                sizes.append(len(data))
            out[f"{name}_ms"] = stats(times)
            out["bytes"] = {
                "mean": round(statistics.mean(sizes)),
                "max": max(sizes),
                "first_page_total": sum(sizes),
            }
    return out


async def page_times(base: str) -> dict[str, Any]:
    interactive: list[float] = []
    wall: list[float] = []
    drawn: list[float] = []
    executable = find_chromium()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable)
        for _ in range(PAGE_RUNS + 1):  # the first run warms the browser binary's caches
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            url = launch_url(base, init_data(USER, token=TOKEN))
            start = time.perf_counter()
            await page.goto(url, wait_until="commit")
            await page.wait_for_selector(f"#grid[data-loaded='{FIRST_PAGE}']", timeout=30_000)
            shown = time.perf_counter()
            # Polled with evaluate: wait_for_function evaluates a string, which the page's
            # policy (no eval) refuses.
            deadline = time.monotonic() + 30
            while not await page.evaluate(ALL_DRAWN) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            done = time.perf_counter()
            # As the browser counts it from the navigation's start (User Timing mark the page
            # sets when the first page is on screen); the wall clock around it adds
            # Playwright's own round trips.
            mark = await page.evaluate(FIRST_PAGE_MARK)
            interactive.append(mark)
            wall.append((shown - start) * 1000)
            drawn.append((done - start) * 1000)
            last = page
            if len(interactive) <= PAGE_RUNS:
                await context.close()
        # Thumbnails of real renders (the seeded screenshots are plain drawings, which
        # compress far better than a page does): this library page, shot as captures are.
        real = [len(make_thumbnail(await last.screenshot(type="jpeg", quality=80)))]
        await last.locator("#grid .card").first.click()
        await last.wait_for_selector("#detail-title")
        real.append(len(make_thumbnail(await last.screenshot(type="jpeg", quality=80))))
        await browser.close()
    return {
        "thumbnail_bytes_of_real_renders": real,
        "interactive_ms": stats(interactive[1:]),
        "interactive_wall_clock_ms": stats(wall[1:]),
        "first_screen_drawn_ms": stats(drawn[1:]),
    }


async def run(uri: str, index_dir: Path) -> dict[str, Any]:
    store = LinkStore.connect(uri, index_dir=index_dir)
    try:
        await store.ensure_indexes()
        results: dict[str, Any] = {"seed": await seed(store)}
    finally:
        await store.close()
    api = FakeBotAPI(token=TOKEN)
    await api.start()
    cfg = settings(api, uri, search_index_dir=str(index_dir), web_listen="127.0.0.1:0")
    try:
        async with running(build_application(cfg), cfg) as app:
            web = app.bot_data.require_services().web
            assert web is not None
            base = web.base
            results["thumbnails"] = await thumbnails(base)
            results["api_first_page_ms"] = await api_times(base, "")
            results["api_first_page_one_tag_ms"] = await api_times(base, "?tags=t7")
            store = app.bot_data.require_services().store
            results["store_find_first_page_ms"] = await find_times(store)
            results["page"] = await page_times(base)
    finally:
        await api.stop()
    return results


def main() -> None:
    """A fresh FerretDB (SQLite, as `make run` starts it) for the run, stopped after."""
    with fresh_ferretdb("bench-web-") as (base, data):
        results = eventloop.run(run(f"{base}/linksnap", data / "index"))
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results["machine"] = f"{os.cpu_count()} cores"
    merge_results("web", results)
    api = max(results["api_first_page_ms"]["p95"], results["api_first_page_one_tag_ms"]["p95"])
    page = results["page"]["interactive_ms"]["p95"]
    print(f"web api p95 {api:.0f} ms; page interactive p95 {page:.0f} ms")


if __name__ == "__main__":
    main()

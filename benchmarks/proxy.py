"""What the egress proxy costs a burst: bare Playwright without and with it, interleaved.

`python -m benchmarks proxy` (rounds: BENCH_PROXY_ROUNDS, default 3). The 30 real pages
of benchmarks/realpages.py, released 0.3 s apart, two at a time, each in a context of
its own, `load` or the 8 s budget, then the shot (burst.py's yardstick). Mode "direct":
no proxy. Mode "proxy": the bot's `GuardProxy` in this process (as in the bot, on the
event loop that also drives Playwright), each context given its own session (its own
port). Runs alternate direct/proxy so that a machine whose load drifts skews both.

Besides the wall times it reports CPU seconds per run: this process's (the proxy and
Playwright's client), the Playwright driver's and Chromium's (every descendant process,
those already reaped included), read from /proc. On a shared machine CPU time moves far
less than wall time.
"""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path
from typing import Any

from playwright.async_api import Browser

from benchmarks.burst import paced, shoot, warm_chromium
from benchmarks.realpages import RealPages
from bot.guard.egress import GuardProxy
from bot.guard.netguard import NetGuard

ROUNDS = int(os.environ.get("BENCH_PROXY_ROUNDS", "3"))
RESULTS = Path(__file__).resolve().parent / "results-proxy.json"


def _cpu_by_kind() -> dict[str, float]:
    """CPU seconds of this process and its descendants, summed per kind of process."""
    ticks = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        # utime, stime, and the same for reaped children (Chromium's renderers come and go)
        table[int(entry)] = (int(fields[1]), name, sum(map(int, fields[11:15])) / ticks)
    me, out = os.getpid(), {"this process": 0.0, "driver": 0.0, "chromium": 0.0}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["this process"] = usage.ru_utime + usage.ru_stime
    for pid, (_, name, seconds) in table.items():
        ancestor = table[pid][0]
        while ancestor not in (0, 1, me):
            ancestor = table.get(ancestor, (0, "", 0.0))[0]
        if ancestor == me:
            out["chromium" if "chrom" in name else "driver"] += seconds
    return out


async def _burst(browser: Browser, urls: list[str], proxy: GuardProxy | None) -> dict[str, Any]:
    async def work(url: str) -> None:
        session = await proxy.open_session() if proxy else None
        options: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
        if proxy and session:
            options["proxy"] = proxy.browser_proxy(session)
        context = await browser.new_context(**options)
        await shoot(await context.new_page(), url)
        await context.close()
        if proxy and session:
            proxy.close_session(session)

    before = _cpu_by_kind()
    burst = await paced(urls, work)
    after = _cpu_by_kind()
    per_page = sorted(burst.work)
    return {
        "last_s": round(max(burst.done), 2),
        "per_page_p50_s": round(per_page[len(per_page) // 2], 2),
        "cpu_s": {kind: round(after[kind] - before[kind], 2) for kind in after},
        "load": round(os.getloadavg()[0], 1),
    }


async def main() -> None:
    real = RealPages()
    await real.start()
    proxy = GuardProxy(NetGuard(["127.0.0.1"]))
    await proxy.start()
    runs: list[dict[str, Any]] = []
    try:
        async with warm_chromium(real.urls()[0]) as browser:
            for round_ in range(ROUNDS):
                for mode in ("direct", "proxy"):
                    result = await _burst(browser, real.urls(), proxy if mode == "proxy" else None)
                    runs.append({"round": round_, "mode": mode, **result})
                    print(json.dumps(runs[-1]), flush=True)
    finally:
        await proxy.stop()
        await real.stop()
    RESULTS.write_text(json.dumps(runs, indent=2) + "\n")

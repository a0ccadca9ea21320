"""`python -m benchmarks linkrot`: link-rot checks per hour for one worker.

Seeds BENCH_ROT_LINKS saved links (default 20 000) over BENCH_ROT_HOSTS host names
(default 60; a few large hosts and a long tail, as bookmarks are) into a fresh FerretDB
started as `make run` starts it, and serves every host from one local server with
realistic answers: each host answers in 50–400 ms, one in ten in 1–3 s; one in ten
refuses HEAD (405, so the check asks again with GET); of the pages, 3 % answer 404, 1 %
410 and 2 % 503. The names resolve to 127.0.0.1 through the network guard's resolver,
which still judges every request.

Then one worker's round (bot/library/rotround.py, its production settings: 32 hosts at once, one
request a second per host) runs for BENCH_ROT_SECONDS (default 120): every check reads
its link, asks the server and writes its answer to the database, as in use. The rate is
the checks answered and written over the round's whole time, until its last check
ended. The server also checks the promise the round makes: no host saw two requests
less than a second apart.

The last line is `linkrot N checks/hour`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from benchmarks.common import fresh_ferretdb, merge_results, seed_links
from bot import eventloop
from bot.guard.netguard import NetGuard
from bot.library.rotround import IN_FLIGHT, CheckRound
from storage.models import LinkRecord, Status, utcnow
from storage.repository import LinkStore
from tests.fakes.web import serve

LINKS = int(os.environ.get("BENCH_ROT_LINKS", "20000"))
HOSTS = int(os.environ.get("BENCH_ROT_HOSTS", "60"))
SECONDS = float(os.environ.get("BENCH_ROT_SECONDS", "120"))

rng = random.Random(2121)


@dataclass
class Host:
    latency: tuple[float, float]
    refuses_head: bool


@dataclass
class World:
    """The web as the bench's server plays it."""

    hosts: dict[str, Host] = field(default_factory=dict)
    pages: dict[str, int] = field(default_factory=dict)  # path → status of the page
    seen: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    methods: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    async def answer(self, request: web.Request) -> web.Response:
        name = request.host.rsplit(":", 1)[0]
        self.seen[name].append(time.monotonic())
        self.methods[request.method] += 1
        host = self.hosts[name]
        await asyncio.sleep(rng.uniform(*host.latency))
        if request.method == "HEAD" and host.refuses_head:
            return web.Response(status=405)
        return web.Response(status=self.pages.get(request.path, 200))

    def closest_gap(self) -> float:
        gaps = [b - a for times in self.seen.values() for a, b in itertools.pairwise(times)]
        return min(gaps, default=float("inf"))


def make_world() -> World:
    world = World()
    for i in range(HOSTS):
        slow = rng.random() < 0.1
        latency = (1.0, 3.0) if slow else (0.05, 0.4)
        world.hosts[f"h{i}.bench"] = Host(latency, refuses_head=rng.random() < 0.1)
    return world


def make_links(world: World, port: int) -> list[LinkRecord]:
    """Links spread over the hosts by a Zipf-like law: host i gets weight 1/(i+1)."""
    names = list(world.hosts)
    weights = [1 / (i + 1) for i in range(len(names))]
    records = []
    for n, name in enumerate(rng.choices(names, weights=weights, k=LINKS)):
        path = f"/{name}/{n}"
        draw = rng.random()
        if draw < 0.03:
            world.pages[path] = 404
        elif draw < 0.04:
            world.pages[path] = 410
        elif draw < 0.06:
            world.pages[path] = 503
        url = f"http://{name}:{port}{path}"
        owner = 1 + n % 500
        records.append(
            LinkRecord(
                owner_id=owner, chat_id=owner, url=url, url_key=url, status=Status.DONE, title=path
            )
        )
    return records


async def bench_names(host: str, port: int) -> list[str]:
    if host.endswith(".bench"):
        return ["127.0.0.1"]
    raise OSError(f"{host}: Name or service not known")


async def run(uri: str, index_path: Path) -> dict[str, Any]:
    world = make_world()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", world.answer)
    runner, port = await serve(app)
    store = LinkStore.connect(uri, index_path=index_path)
    try:
        await store.ensure_indexes()
        started = time.monotonic()
        await seed_links(store, make_links(world, port))
        seeded = time.monotonic() - started
        guard = NetGuard(["127.0.0.1"], resolver=bench_names)
        round_ = CheckRound(store, guard, checked_before=utcnow(), until=time.time() + SECONDS)
        started = time.monotonic()
        result = await round_.run()
        elapsed = time.monotonic() - started
    finally:
        await store.close()
        await runner.cleanup()
    return {
        "links": LINKS,
        "hosts": HOSTS,
        "in_flight": IN_FLIGHT,
        "seed_s": round(seeded, 1),
        "round_s": round(elapsed, 1),
        "checked": result.checked,
        "marked_gone": result.gone,
        "requests": dict(world.methods),
        "closest_gap_one_host_s": round(world.closest_gap(), 3),
        "checks_per_hour": int(result.checked / elapsed * 3600),
    }


def main() -> None:
    """A fresh FerretDB (SQLite, as `make run` starts it) for the run, stopped after."""
    with fresh_ferretdb("bench-linkrot-") as (base, data):
        results = eventloop.run(run(f"{base}/linksnap", data / "index.sqlite"))
    merge_results("linkrot", results)
    print(f"linkrot {results['checks_per_hour']} checks/hour")


if __name__ == "__main__":
    main()

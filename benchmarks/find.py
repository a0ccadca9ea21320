"""`python -m benchmarks find`: /find and /tags at 100 000 links on the embedded FerretDB.

Seeds BENCH_FIND_LINKS links (default 100 000; 10 % one user's, the rest spread over
900 users; 50 tags; ~2 KB of text and its terms each) through `LinkStore.import_links`
into a fresh FerretDB started as `make run` starts it, then times what the handlers
call: `/find` = `queries.save` + `find`, `/tags` = `tag_counts`. Also the writes a
capture makes (`_id` updates) and the same queries for an empty and a small user.

Archive truth (storage/index/upkeep.py): one heal pass with nothing to fix and one after 100
links retagged by hand; writing every shelf; a new front (an empty index file) asked
by the big user, then a small one, with shelves and without them (then it answers from
MongoDB while it rebuilds from the collections), and how long until it holds everything.
The index's upkeep loop is stopped: each of these runs alone, when the bench says.
The last line is `find p95 N ms`, N the largest p95 of the read measurements.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bson import ObjectId

from benchmarks.common import fresh_ferretdb, merge_results, seed_links, summary
from bot import eventloop
from storage.index.heal import heal
from storage.models import LinkRecord, Screenshot, Status, utcnow
from storage.repository import LinkStore
from tests.records import owned

LINKS = int(os.environ.get("BENCH_FIND_LINKS", "100000"))
SAMPLES = int(os.environ.get("BENCH_FIND_SAMPLES", "60"))
# Leases are kept a day, one per link (bot/scheduler.py KEEP_MARKERS): a busy day's worth.
DAY_OF_LEASES = int(os.environ.get("BENCH_FIND_LEASES", "20000"))
BIG, SMALL, EMPTY = 1, 2, 3
OTHERS = 900
TAGS = [f"t{i}" for i in range(50)]
T0 = datetime(2025, 1, 1, tzinfo=UTC)

rng = random.Random(2026)
_LATIN = [
    "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
    for _ in range(4000)
]
_HAN = [chr(0x4E00 + rng.randrange(2000)) + chr(0x4E00 + rng.randrange(2000)) for _ in range(400)]
COMMON_WORD = _LATIN[0]  # drawn into most texts, so `/find word` matches thousands
CJK_WORD = _HAN[0]


def page_text() -> str:
    words = rng.choices(_LATIN, k=250) + rng.choices(_HAN, k=40)
    if rng.random() < 0.6:
        words.append(COMMON_WORD)
    if rng.random() < 0.3:
        words.append(CJK_WORD)
    rng.shuffle(words)
    return " ".join(words)  # ~2 KB, ~300 distinct terms with the CJK bigrams


def make_link(owner: int, n: int) -> LinkRecord:
    url = f"https://site{n % 997}.example/{owner}/{n}"
    return owned(
        owner,
        url,
        tags=rng.sample(TAGS, rng.randint(1, 3)),
        title=f"Page {n} {rng.choice(_LATIN)}",
        final_url=url,
        http_status=200,
        text=page_text(),
        status=Status.DONE,
        screenshot=Screenshot(1280, 800, file_id=f"file{n}"),
        created_at=T0 + timedelta(seconds=n * 7 + rng.randrange(5)),
    )


def owners() -> list[int]:
    """Link owners in seeding order: BIG holds 10 %, SMALL 100, EMPTY none."""
    big = LINKS // 10
    small = min(100, LINKS - big)
    rest = LINKS - big - small
    out = [BIG] * big + [SMALL] * small + [10 + i % OTHERS for i in range(rest)]
    rng.shuffle(out)
    return out


def stats(samples: list[float]) -> dict[str, float]:
    return summary(samples, 2)


async def timed(fn: Callable[[], Awaitable[Any]], runs: int = SAMPLES) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    return stats(samples)


async def seed(store: LinkStore) -> dict[str, float]:
    started = time.monotonic()
    batch: list[LinkRecord] = []
    made = 0
    for n, owner in enumerate(owners()):
        batch.append(make_link(owner, n))
        if len(batch) == 2000:
            made += await seed_links(store, batch)
            batch = []
    made += await seed_links(store, batch)
    seeded = time.monotonic() - started
    started = time.monotonic()
    await store.index.complete()  # the import handed its rows to the index as written
    return {
        "links": made,
        "seed_s": round(seeded, 1),
        "index_after_seed_s": round(time.monotonic() - started, 1),
    }


async def find_cmd(store: LinkStore, owner: int, tags: list[str], words: str, page: int) -> None:
    """What /find and its ▶ button do with the database."""
    await store.queries.save(owner, tags, words)
    await store.find(owner, tags, words, page=page, page_size=10)


async def reads(store: LinkStore, owner: int) -> dict[str, dict[str, float]]:
    def one_tag(page: int) -> Callable[[], Awaitable[None]]:
        return lambda: find_cmd(store, owner, [rng.choice(TAGS)], "", page)

    return {
        "/find #tag (page 1)": await timed(one_tag(0)),
        "/find #tag (page 5)": await timed(one_tag(4)),
        "/find #a #b": await timed(lambda: find_cmd(store, owner, rng.sample(TAGS, 2), "", 0)),
        "/find word": await timed(lambda: find_cmd(store, owner, [], COMMON_WORD, 0)),
        "/find 中文词": await timed(lambda: find_cmd(store, owner, [], CJK_WORD, 0)),
        "/tags": await timed(lambda: store.tag_counts(owner)),
    }


async def writes(store: LinkStore) -> dict[str, Any]:
    """The writes a capture makes, on a database of LINKS links."""
    ids = [r.id for r in (await store.find(BIG, [], "", page=0, page_size=200)).items]
    per_op: dict[str, list[float]] = {}

    async def clock(name: str, call: Awaitable[Any]) -> None:
        start = time.perf_counter()
        await call
        per_op.setdefault(name, []).append((time.perf_counter() - start) * 1000)

    for link_id in ids[:SAMPLES]:
        await clock(
            "update (link-rot check)", store.update(link_id, checked_at=utcnow(), alive=True)
        )
    lookups = await timed(lambda: store.links.find_one({"_id": rng.choice(ids)}))
    mixed: list[float] = []
    await store.index.sync()
    for n in range(SAMPLES):
        record = make_link(BIG, LINKS + n)
        record.status = Status.PENDING
        await clock("add_pending", store.add_pending(record))
        await clock("start_attempt", store.start_attempt(record.id))
        await clock(
            "update (capture)",
            store.update(record.id, status=Status.CAPTURED, title="t", text=record.text),
        )
        await clock("update (done)", store.update(record.id, status=Status.DONE))
        # As the pipeline's finish does once the user was told.
        await clock("drop_work", store.drop_work(record.id))
        # The next /find replays these writes from the journal first.
        start = time.perf_counter()
        await find_cmd(store, BIG, [record.tags[0]], "", 0)
        mixed.append((time.perf_counter() - start) * 1000)
    every = [v for values in per_op.values() for v in values]
    return {
        "_id find_one": lookups,
        f"claim ({DAY_OF_LEASES} leases kept)": await claims(store),
        **{name: stats(values) for name, values in per_op.items()},
        "all capture writes": stats(every),
        "/find right after a capture": stats(mixed),
    }


async def claims(store: LinkStore) -> dict[str, float]:
    """A capture slot claiming the next link among a day of links' leases."""
    queue, now = store.queue, utcnow()
    for written in range(0, DAY_OF_LEASES, 1000):
        batch = min(1000, DAY_OF_LEASES - written)
        leases = [{"_id": ObjectId(), "lease": 1, "until": now} for _ in range(batch)]
        await queue.leases.insert_many(leases)
    await asyncio.sleep(1.0)  # a new collection's `_id` index comes within 0.5 s (idindex.go)
    samples = []
    for n in range(SAMPLES):
        link_id = ObjectId()
        await queue.work.insert_one({"_id": link_id, "status": "bench", "turn": n, "prio": 0})
        start = time.perf_counter()
        claim = await queue.claim("bench", {"bench"}, 60.0)
        samples.append((time.perf_counter() - start) * 1000)
        assert claim is not None and claim.link_id == link_id, claim
        await queue.work.delete_one({"_id": link_id})
    return stats(samples)


async def heal_cost(store: LinkStore) -> dict[str, Any]:
    """One pass with nothing to fix, then one after 100 links were retagged by hand."""
    clean = await heal(store.index)
    ids = [r.id for r in (await store.find(BIG, [], "", page=0, page_size=100)).items]
    for link_id in ids:
        await store.db["links"].update_one({"_id": link_id}, {"$set": {"tags": ["by-hand"]}})
    fixing = await heal(store.index)
    assert fixing.fixed >= len(ids), fixing
    assert (await store.find(BIG, ["by-hand"], "")).total == len(ids)
    return {
        "links_read": clean.scanned,
        "pass_s": round(clean.seconds, 1),
        "pass_fixing_100_s": round(fixing.seconds, 1),
        "fixed": fixing.fixed,
    }


async def new_front(uri: str, path: Path) -> dict[str, Any]:
    """A process starting with an empty index file: its first answers, and how long until
    it holds every bucket."""
    front = LinkStore.connect(uri, index_path=path)
    try:
        started = time.perf_counter()
        await find_cmd(front, BIG, [TAGS[0]], "", 0)
        first_big = time.perf_counter() - started
        at = time.perf_counter()
        await find_cmd(front, SMALL, [TAGS[1]], "", 0)
        first_small = time.perf_counter() - at
        at = time.perf_counter()
        await find_cmd(front, BIG, [], COMMON_WORD, 0)
        big_word = time.perf_counter() - at
        await front.index.complete()
        holds_all = time.perf_counter() - started
        after = await timed(lambda: find_cmd(front, BIG, [rng.choice(TAGS)], "", 0), 20)
    finally:
        await front.close()
    return {
        "first_find_big_user_ms": round(first_big * 1000, 1),
        "then_small_user_ms": round(first_small * 1000, 1),
        "then_big_user_word_ms": round(big_word * 1000, 1),
        "holds_every_bucket_s": round(holds_all, 1),
        "find_after_ms": after,
    }


async def archive_truth(store: LinkStore, uri: str, where: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"heal": await heal_cost(store)}
    started = time.monotonic()
    written = await store.index.upkeep.shelve()
    out["shelves"] = {"written": written, "write_all_s": round(time.monotonic() - started, 1)}
    out["new_front"] = await new_front(uri, where / "front.sqlite")
    for name in ("index_shelf_heads", "index_shelves"):
        await store.db[name].drop()  # as on a database whose shelves were never written
    out["new_front_without_shelves"] = await new_front(uri, where / "front2.sqlite")
    return out


async def run(uri: str, index_path: Path) -> dict[str, Any]:
    store = LinkStore.connect(uri, index_path=index_path)
    try:
        await store.ensure_indexes()
        await store.index.upkeep.stop()  # each upkeep job runs when the bench says
        await store.index.complete()  # empty: imports then hand it their rows as written
        results: dict[str, Any] = {"seed": await seed(store)}
        results["writes_ms"] = await writes(store)
        await store.index.sync()
        results["big_user_ms"] = await reads(store, BIG)
        results["small_user_ms"] = await reads(store, SMALL)
        results["empty_user_ms"] = await reads(store, EMPTY)
        results["archive_truth"] = await archive_truth(store, uri, index_path.parent)
    finally:
        await store.close()
    worst = max(
        m["p95"]
        for group in ("big_user_ms", "small_user_ms", "empty_user_ms")
        for m in results[group].values()
    )
    worst = max(worst, results["writes_ms"]["/find right after a capture"]["p95"])
    results["find_p95_ms"] = worst
    return results


def print_table(results: dict[str, Any]) -> None:
    seed = results["seed"]
    print(f"seeded {seed['links']} links in {seed['seed_s']} s")
    print(f"{'measurement':36} {'big user':>18} {'small user':>18} {'empty user':>18}")
    for name in results["big_user_ms"]:
        cells = [
            f"{results[g][name]['p50']:7.2f} /{results[g][name]['p95']:7.2f}"
            for g in ("big_user_ms", "small_user_ms", "empty_user_ms")
        ]
        print(f"{name:36} " + " ".join(f"{c:>18}" for c in cells))
    print("writes (p50 / p95 ms):")
    for name, m in results["writes_ms"].items():
        print(f"  {name:34} {m['p50']:7.2f} /{m['p95']:7.2f}")
    truth = results["archive_truth"]
    heal_ = truth["heal"]
    print(
        f"heal pass: {heal_['links_read']} links read in {heal_['pass_s']} s"
        f" ({heal_['pass_fixing_100_s']} s fixing {heal_['fixed']} hand edits)"
    )
    print(f"shelves: {truth['shelves']['written']} written in {truth['shelves']['write_all_s']} s")
    for name in ("new_front", "new_front_without_shelves"):
        f = truth[name]
        print(
            f"{name}: first /find (big user) {f['first_find_big_user_ms']} ms, then a small"
            f" user {f['then_small_user_ms']} ms, the big user's word search"
            f" {f['then_big_user_word_ms']} ms; every bucket held after"
            f" {f['holds_every_bucket_s']} s"
        )


def main() -> None:
    """A fresh FerretDB (SQLite, as `make run` starts it) for the run, stopped after."""
    with fresh_ferretdb("bench-find-") as (base, data):
        results = eventloop.run(run(f"{base}/linksnap", data / "index.sqlite"))
    merge_results("find", results)
    print_table(results)
    print(f"find p95 {results['find_p95_ms']:.0f} ms")


if __name__ == "__main__":
    main()

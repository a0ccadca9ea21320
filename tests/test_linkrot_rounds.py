"""Link-rot rounds against local servers: many hosts at once, one request a second per
host, HEAD before GET, resuming a killed round, and a page that comes back.

"Hosts" are names (`h0.test` … `h19.test`) that an injected resolver maps to 127.0.0.1,
where one server answers them all and records each request's Host header: the network
guard still judges every request (127.0.0.1 is allowed as in the other tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from bson import ObjectId

from bot.guard.netguard import NetGuard
from bot.library import bookmarks, linkrot, rotround
from bot.library.hostpace import HOST_GAP, HostPacer
from bot.library.rotround import IN_FLIGHT, CheckRound
from bot.library.transfer import import_links
from bot.scheduler import ROUND_EVERY, ROUND_SPARE
from storage.models import LinkRecord, Status, utcnow
from storage.repository import LinkStore
from tests.fakes.web import running, serve
from tests.records import seed_links


@dataclass(frozen=True)
class Hit:
    host: str
    method: str
    path: str
    at: float  # time.monotonic() when the request reached the handler


@dataclass
class RotSite:
    """Answers any host and path: `answers[path] = (HEAD status, GET status)`, else 200."""

    answers: dict[str, tuple[int, int]] = field(default_factory=dict)
    latency: float = 0.0
    hits: list[Hit] = field(default_factory=list)
    busy: int = 0
    most_busy: int = 0
    port: int = 0
    waits: list[tuple[int, asyncio.Event]] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic  # what `Hit.at` is stamped with

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        runner, self.port = await serve(app)
        return runner

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}{path}"

    async def _any(self, request: web.Request) -> web.Response:
        host = request.host.rsplit(":", 1)[0]
        self.hits.append(Hit(host, request.method, request.path, self.clock()))
        for count, event in self.waits:
            if len(self.hits) >= count:
                event.set()
        self.busy += 1
        self.most_busy = max(self.most_busy, self.busy)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            head, get = self.answers.get(request.path, (200, 200))
            return web.Response(status=head if request.method == "HEAD" else get)
        finally:
            self.busy -= 1

    async def reached(self, count: int) -> None:
        """Returns once `count` requests have arrived."""
        event = asyncio.Event()
        self.waits.append((count, event))
        if len(self.hits) >= count:
            event.set()
        await event.wait()


@pytest.fixture
async def site() -> AsyncIterator[RotSite]:
    async with running(RotSite()) as server:
        yield server


async def _test_names(host: str, port: int) -> list[str]:
    """The resolver of this test's world: `*.test` names live on 127.0.0.1; no other
    name resolves (and the real resolver is never asked)."""
    if host.endswith(".test"):
        return ["127.0.0.1"]
    raise OSError(f"{host}: Name or service not known")


@pytest.fixture
def guard() -> NetGuard:
    return NetGuard(["127.0.0.1"], resolver=_test_names)


@pytest.fixture
async def store(mongodb_uri: str, tmp_path: Path) -> AsyncIterator[LinkStore]:
    s = LinkStore.connect(mongodb_uri, index_path=tmp_path / "index.sqlite")
    await s.ensure_indexes()
    yield s
    await s.close()


@pytest.fixture(params=["index", "native"])
async def either_store(
    request: pytest.FixtureRequest, mongodb_uri: str, tmp_path: Path
) -> AsyncIterator[LinkStore]:
    """The store with each read path of the listing (storage/index/listing.py)."""
    s = LinkStore.connect(mongodb_uri, index_path=tmp_path / "i.sqlite", listing=request.param)
    await s.ensure_indexes()
    yield s
    await s.close()


def saved(owner: int, url: str) -> LinkRecord:
    return LinkRecord(
        owner_id=owner, chat_id=owner, url=url, url_key=url, status=Status.DONE, title=url
    )


async def seed(store: LinkStore, site: RotSite, hosts: int, per_host: int) -> list[str]:
    """`hosts × per_host` saved links (interleaved, as a collection is); their paths."""
    urls = [site.url(f"h{h}.test", f"/h{h}/p{n}") for n in range(per_host) for h in range(hosts)]
    await seed_links(store, [saved(7, url) for url in urls])
    return [url.split(f":{site.port}", 1)[1] for url in urls]


def a_round(store: LinkStore, guard: NetGuard, due: datetime | None = None) -> CheckRound:
    """A round as the scheduler makes one: links checked before `due` (default: now) are
    due, and no check starts once the slot's working time is over."""
    return CheckRound(
        store,
        guard,
        checked_before=due or utcnow(),
        until=time.time() + ROUND_EVERY - ROUND_SPARE,
    )


def closest_gap(hits: list[Hit]) -> dict[str, float]:
    """For each host, the shortest time between two requests it received."""
    by_host: dict[str, list[float]] = defaultdict(list)
    for hit in hits:
        by_host[hit.host].append(hit.at)
    return {
        host: min((b - a for a, b in zip(sorted(t), sorted(t)[1:], strict=False)), default=99.0)
        for host, t in by_host.items()
    }


class VirtualTime:
    """The round's own seconds, for a test that cannot wait through minutes of host
    pacing. The clock stands still while any link is being asked or its answer recorded
    (`working`), and moves, when nothing is, straight to the earliest sleeper's wake-up,
    waking only those due then. So a request takes no virtual time however long this
    machine takes over it, and one host's wait never stretches another's. (Between a
    request's end and its answer's write the clock may move to a wake-up already due: a
    lane can only be late for its next request then, never early.)

    (A clock that jumped as soon as anyone slept let the lanes' real request times push
    each other's answers later: under a loaded CI run one round took 510 virtual seconds
    for 100 one-second checks a host, and ran out of its slot.)"""

    def __init__(self, start: float) -> None:
        self.now = start
        self._busy = 0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._count = 0  # keeps the heap's order among equal wake-ups
        self._looking = False

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        woken = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), self._count, woken))
        self._count += 1
        self._look()
        await woken

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            self._look()

    def _look(self) -> None:
        # On the next turn of the loop: a task that just stopped working may be about to
        # sleep or to start its next piece of work in the same step.
        if not self._looking:
            self._looking = True
            asyncio.get_running_loop().call_soon(self._move)

    def _move(self) -> None:
        self._looking = False
        while self._sleepers and self._sleepers[0][2].done():  # cancelled sleepers
            heapq.heappop(self._sleepers)
        if self._busy or not self._sleepers:
            return
        self.now = max(self.now, self._sleepers[0][0])
        while self._sleepers and self._sleepers[0][0] <= self.now:
            woken = heapq.heappop(self._sleepers)[2]
            if not woken.done():
                woken.set_result(None)


class ClockedPacer(HostPacer):
    """The host pacer on a VirtualTime, which stands still while a request is out."""

    def __init__(self, clock: VirtualTime) -> None:
        super().__init__(clock=clock, sleep=clock.sleep)
        self.virtual = clock

    @contextlib.asynccontextmanager
    async def turn(self, host: str) -> AsyncIterator[None]:
        async with super().turn(host):
            with self.virtual.working():
                yield


def on_virtual_time(
    store: LinkStore, site: RotSite, monkeypatch: pytest.MonkeyPatch
) -> tuple[VirtualTime, ClockedPacer]:
    """A clock for the round, the site's stamps and the pacer; it also stands still while
    a check's answer is being written."""
    clock = VirtualTime(time.time())
    site.clock = clock
    record_check = store.record_check

    async def recorded(record: LinkRecord, alive: bool | None, **kwargs: Any) -> None:
        with clock.working():
            await record_check(record, alive, **kwargs)

    monkeypatch.setattr(store, "record_check", recorded)
    return clock, ClockedPacer(clock)


@pytest.mark.timeout(300)
async def test_two_thousand_links_on_twenty_hosts_fit_one_round_at_one_request_a_second(
    store: LinkStore, guard: NetGuard, site: RotSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the round's own (virtual) seconds: the host pacing is what is tested, not
    how fast this machine waits through 100 seconds."""
    clock, pacer = on_virtual_time(store, site, monkeypatch)
    site.latency = 0.05  # so requests overlap where the round runs them side by side
    paths = await seed(store, site, hosts=20, per_host=100)
    due = utcnow()
    round_ = CheckRound(
        store,
        guard,
        checked_before=due,
        until=clock() + ROUND_EVERY - ROUND_SPARE,
        clock=clock,
        pacer=pacer,
    )
    started = clock()
    result = await round_.run()
    assert result.finished and result.checked == 2000
    # 100 pages a host, one a second: about 100 of the round's seconds, well inside it.
    assert 99 <= clock() - started < ROUND_EVERY - ROUND_SPARE
    # Every page asked once, with the cheap request (all answer HEAD here).
    assert Counter(h.path for h in site.hits) == Counter(paths)
    assert {h.method for h in site.hits} == {"HEAD"}
    # No host saw two requests less than a second apart; hosts were worked side by side,
    # never more at once than the round's bound.
    gaps = closest_gap(site.hits)
    assert len(gaps) == 20 and min(gaps.values()) >= HOST_GAP
    assert 1 < site.most_busy <= IN_FLIGHT
    # And nothing is left due.
    assert await store.due_for_check(due) == []


async def test_a_listing_behind_the_checks_does_not_end_the_round_early(
    store: LinkStore, guard: NetGuard, site: RotSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The due order is newest first, so the links a round has just checked lead it: a
    listing index behind the checks (its replay held up) names only those. The round asks
    MongoDB itself then; it does not take that for nothing left due."""
    monkeypatch.setattr(rotround, "LAG_PAUSE", 0.01)
    monkeypatch.setattr(rotround, "FETCH", 40)  # the order is read again as lanes empty
    _, pacer = on_virtual_time(store, site, monkeypatch)
    await seed(store, site, hosts=4, per_host=150)  # 600 links: several reads of the order
    checked: list[ObjectId] = []
    record_check, named_due = store.record_check, store.listing.due_for_check

    async def remembered(record: LinkRecord, alive: bool | None, **kwargs: Any) -> None:
        await record_check(record, alive, **kwargs)
        checked.append(record.id)

    stale = 0

    async def behind(statuses: Any, checked_before: datetime, limit: int) -> list[ObjectId]:
        nonlocal stale
        if checked:  # once checks are written, the index stays behind them
            stale += 1
            return checked[::-1][:limit]
        return await named_due(statuses, checked_before, limit)

    monkeypatch.setattr(store, "record_check", remembered)
    monkeypatch.setattr(store.listing, "due_for_check", behind)
    due = utcnow()
    result = await CheckRound(store, guard, checked_before=due, in_flight=4, pacer=pacer).run()
    assert stale > 0  # the stale answers were given
    assert result.finished and result.checked == 600
    assert len(site.hits) == 600


@pytest.mark.parametrize("either_store", ["native"], indirect=True)
async def test_a_round_whose_time_runs_out_says_so_and_leaves_the_rest_due(
    either_store: LinkStore, guard: NetGuard, site: RotSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten links on one host, one a second, and one on another, in a round with 3.5 s
    to go: the round reads the due order again when the small host is done, finds every
    link in its hands, and runs out of time with links queued; it must not report that as
    "nothing left due" (the scheduler logs it, and the next round picks the rest up).
    MongoDB's own listing: a listing index behind would send the round into its lag
    pause instead (tested above), and the time could run out before that second read."""
    store = either_store
    clock, pacer = on_virtual_time(store, site, monkeypatch)
    urls = [site.url("h0.test", "/h0/p0")] + [site.url("h1.test", f"/h1/p{n}") for n in range(10)]
    await seed_links(store, [saved(7, url) for url in urls])
    due = utcnow()
    until = clock() + 3.5
    round_ = CheckRound(store, guard, checked_before=due, until=until, clock=clock, pacer=pacer)
    result = await round_.run()
    assert not result.finished
    assert 1 < result.checked < 11
    assert len(await store.due_for_check(due)) == 11 - result.checked
    assert len(site.hits) == result.checked
    # No check started once the round's time was up (h1's fifth turn came at 4 s).
    assert max(hit.at for hit in site.hits) < until


async def test_no_more_requests_in_flight_than_the_bound(
    store: LinkStore, guard: NetGuard, site: RotSite
) -> None:
    site.latency = 0.2
    await seed(store, site, hosts=10, per_host=3)
    round_ = CheckRound(store, guard, checked_before=utcnow(), in_flight=4)
    assert (await round_.run()).checked == 30
    assert site.most_busy == 4


async def test_a_killed_round_resumes_where_it_stopped(
    store: LinkStore, guard: NetGuard, site: RotSite
) -> None:
    paths = await seed(store, site, hosts=4, per_host=30)
    # Both rounds see the same links as due (in use: last checked a max age ago).
    due = utcnow()
    first = asyncio.create_task(a_round(store, guard, due).run())
    await site.reached(40)  # well into the round
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    asked_before = Counter(h.path for h in site.hits)

    second = await a_round(store, guard, due).run()
    assert second.finished
    records = [LinkRecord.from_doc(d) async for d in store.links.find({})]
    assert all(r.checked_at is not None and r.alive is True for r in records)
    asked = Counter(h.path for h in site.hits)
    assert set(asked) == set(paths)
    # The second round asked only what the first had not answered: a link asked twice
    # can only be one whose request was under way when the round was killed.
    twice = [p for p in paths if asked[p] > 1]
    assert len(twice) <= 4  # one request in flight per host
    assert all(asked_before[p] == 1 for p in twice)
    assert second.checked == len(paths) - sum(1 for p in paths if asked_before[p]) + len(twice)


@pytest.mark.parametrize(
    ("head", "get", "verdict", "methods"),
    [
        (200, 200, True, ["HEAD"]),  # the cheap request answers: no GET
        (405, 200, True, ["HEAD", "GET"]),  # HEAD refused
        (501, 200, True, ["HEAD", "GET"]),  # HEAD not implemented
        (405, 404, False, ["HEAD", "GET"]),
        (404, 200, True, ["HEAD", "GET"]),  # HEAD routed badly: only a GET's 404 is trusted
        (410, 410, False, ["HEAD", "GET"]),
        (503, 200, None, ["HEAD"]),  # a sick server is asked again later, not twice now
        (429, 200, None, ["HEAD"]),
    ],
)
async def test_head_first_then_get_where_head_says_nothing(
    guard: NetGuard, site: RotSite, head: int, get: int, verdict: bool | None, methods: list[str]
) -> None:
    site.answers["/page"] = (head, get)
    assert await linkrot.is_alive(guard, site.url("h1.test", "/page")) is verdict
    assert [h.method for h in site.hits] == methods


async def test_a_page_back_after_being_gone_loses_its_mark(
    either_store: LinkStore, guard: NetGuard, site: RotSite
) -> None:
    store = either_store
    [path] = await seed(store, site, hosts=1, per_host=1)
    site.answers[path] = (404, 404)
    await a_round(store, guard).run()
    [gone] = (await store.gone(7)).items
    assert gone.alive is False and gone.gone_at is not None
    first_gone = gone.gone_at

    await a_round(store, guard).run()  # still gone: it keeps the time it went
    [still] = (await store.gone(7)).items
    assert still.gone_at == first_gone and still.checked_at != gone.checked_at

    site.answers[path] = (200, 200)
    await a_round(store, guard).run()
    assert (await store.gone(7)).total == 0
    [back] = [LinkRecord.from_doc(d) async for d in store.links.find({})]
    assert back.alive is True and back.gone_at is None
    [found] = (await store.find(7, [])).items
    assert found.alive is True


async def test_unknown_answers_change_no_mark(
    store: LinkStore, guard: NetGuard, site: RotSite
) -> None:
    """A 5xx (or a timeout) after a 404 says nothing: the page stays marked gone."""
    [path] = await seed(store, site, hosts=1, per_host=1)
    site.answers[path] = (404, 404)
    await a_round(store, guard).run()
    site.answers[path] = (503, 503)
    await a_round(store, guard).run()
    [gone] = (await store.gone(7)).items
    assert gone.alive is False and gone.checked_at is not None


async def test_imported_links_are_checked_newest_first_before_they_are_captured(
    either_store: LinkStore, guard: NetGuard, site: RotSite
) -> None:
    """A bookmark file's links wait behind every link sent by hand for their capture
    (hours for thousands); they are checked meanwhile, newest first, and one whose
    capture failed is checked too."""
    store = either_store
    years = {"/old": 2015, "/mid": 2019, "/new": 2023}
    rows = "".join(
        f'<DT><A HREF="{site.url("h1.test", path)}" ADD_DATE="{(year - 1970) * 31_557_600}">'
        f"{path}</A>"
        for path, year in years.items()
    )
    parsed = bookmarks.parse(f"<!DOCTYPE NETSCAPE-Bookmark-file-1><DL><p>{rows}</DL>".encode())
    counts = await import_links(
        store, guard, parsed, owner_id=7, chat_id=7, lang="en", on_progress=lambda _: None
    )
    assert counts.saved == 3
    due = utcnow()
    newest = await store.due_for_check(due, limit=2)
    assert [r.url.rsplit("/", 1)[1] for r in newest] == ["new", "mid"]
    assert {str(r.status) for r in newest} == {str(Status.PENDING)}
    [old] = [LinkRecord.from_doc(d) async for d in store.links.find({"url": {"$regex": "/old$"}})]
    await store.mark_failed(old.id, "capture timed out")

    site.answers["/mid"] = (404, 404)
    result = await a_round(store, guard, due).run()
    assert (result.checked, result.gone) == (3, 1)
    assert {h.path for h in site.hits} == {"/mid", "/new", "/old"}
    [gone] = (await store.gone(7)).items
    assert gone.url.endswith("/mid")
    assert await store.due_for_check(due) == []

"""The listing index converges to the database by itself (storage/index/search.py, heal.py,
upkeep.py, shelves.py, journal.py, writes.py).

Time is the index's own injectable clock; upkeep is driven tick by tick (or poked and
waited for), never slept on.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from storage import bulk
from storage.index import catalog, search
from storage.index import upkeep as upkeep_module
from storage.index.catalog import BUCKETS, bucket_of
from storage.index.heal import Healed
from storage.index.journal import FRESH_FOR, TRIM_AGE, Journal
from storage.index.rebuild import Built
from storage.index.upkeep import HEAL_EVERY
from storage.models import LinkRecord, Status
from storage.repository import LinkStore, light_doc
from storage.trash import Trash
from tests.harness import BotHarness
from tests.records import captured_page, deleted, seed_links
from tests.test_browse import command

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 5, 1, tzinfo=UTC)


class Clock:
    """Wall-clock seconds that move only when told."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def link(owner: int, n: int, tags: list[str], text: str = "") -> LinkRecord:
    url = f"https://own{owner}.example/{n}"
    return captured_page(owner, url, n, tags, text, T0 + timedelta(minutes=n))


async def titles(store: LinkStore, owner: int, tags: list[str], words: str = "") -> list[str]:
    page = await store.find(owner, tags, words, page_size=100)
    return [r.title or "" for r in page.items]


async def driven(uri: str, path: Path, clock: Clock) -> LinkStore:
    """A store whose upkeep the test drives itself."""
    store = LinkStore.connect(
        uri, index_path=path, listing="index", clock=clock, journal_clock=clock
    )
    await store.ensure_indexes()
    await store.index.upkeep.stop()
    return store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(mongodb_uri: str, tmp_path: Path, clock: Clock) -> AsyncIterator[LinkStore]:
    s = await driven(mongodb_uri, tmp_path / "index.sqlite", clock)
    yield s
    await s.close()


# -- behind the journal's back: the heal -----------------------------------------------


async def test_hand_edits_reach_find_within_one_heal(store: LinkStore, clock: Clock) -> None:
    """A link retagged, one deleted, and one inserted without any journal entry (as a
    crash between a write and its entry used to leave it), each directly in the database."""
    kept, retagged, deleted = (link(5, n, ["x"]) for n in (1, 2, 3))
    assert await seed_links(store, [kept, retagged, deleted]) == 3
    await store.index.complete()
    await store.index.upkeep.tick()  # a pass now: the next is due HEAL_EVERY from here
    links = store.db["links"]
    await links.update_one({"_id": retagged.id}, {"$set": {"tags": ["handmade"]}})
    await links.delete_one({"_id": deleted.id})
    sneaked = link(5, 4, ["x", "handmade"])
    await links.insert_one(light_doc(sneaked))
    # Nothing in the journal names any of it: the index cannot know yet.
    assert await titles(store, 5, ["x"]) == ["page 5-3", "page 5-2", "page 5-1"]

    heals = store.index.upkeep.heals
    clock.advance(60)
    await store.index.upkeep.tick()
    assert store.index.upkeep.heals == heals + 1
    assert await titles(store, 5, ["x"]) == ["page 5-4", "page 5-1"]
    assert await titles(store, 5, ["handmade"]) == ["page 5-4", "page 5-2"]
    counts = {c.tag: c.count for c in await store.tag_counts(5)}
    assert counts == {"x": 2, "handmade": 2}


async def test_heal_passes_are_spaced_by_their_cost(
    store: LinkStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass that took t seconds is not followed by the next before 4t after it began:
    the heal's share of time is bounded however long a pass takes on a large collection."""
    upkeep = store.index.upkeep
    await store.index.complete()

    async def slow_pass(listing: Any) -> Healed:
        clock.advance(250)  # a pass over a large collection
        return Healed(scanned=10, fixed=0, seconds=250.0)

    monkeypatch.setattr(upkeep_module, "heal", slow_pass)
    clock.advance(HEAL_EVERY)
    heals = upkeep.heals
    await upkeep.tick()  # begins at T, ends at T + 250
    assert upkeep.heals == heals + 1
    clock.advance(749)  # T + 999: more than HEAL_EVERY since, less than 4 × 250
    await upkeep.tick()
    assert upkeep.heals == heals + 1
    clock.advance(1)
    await upkeep.tick()
    assert upkeep.heals == heals + 2


async def test_a_hand_edit_shows_in_find_within_60s_of_the_bots_clock(bot: BotHarness) -> None:
    """Through the running bot: its upkeep loop, on a clock the test moves."""
    records = [link(42, n, ["old"]) for n in range(3)]
    assert await seed_links(bot.store, records) == 3
    index = bot.services.store.index
    await index.complete()
    clock = Clock()
    index.clock = clock
    await bot.store.db["links"].update_one(
        {"_id": records[1].id}, {"$set": {"tags": ["fresh"], "title": "retagged by hand"}}
    )
    heals = index.upkeep.heals
    clock.advance(60)
    index.upkeep.poke()
    async with asyncio.timeout(30):  # the loop's own pass, not this test's
        while index.upkeep.heals == heals:
            await index.upkeep.ticked(index.upkeep.ticks)
    reply = await command(bot, 42, "/find #fresh")
    assert "1 found" in reply["text"] and "retagged by hand" in reply["text"]


# -- our own writes: announced before they land ------------------------------------------


async def test_a_read_between_announcement_and_write_sees_the_write_next(
    store: LinkStore,
) -> None:
    """A replay that reads a link after its journal entry but before its write keeps it
    unsettled and reads it again: no heal, no new entry needed."""
    record = link(6, 1, ["before"])
    assert await seed_links(store, [record]) == 1
    await store.index.complete()

    async def reader_in_between() -> None:
        assert await titles(store, 6, ["before"]) == ["page 6-1"]  # replays the entry now

    await store.writes.update(record.id, {"$set": {"tags": ["after"]}}, 6, first=reader_in_between)
    assert await titles(store, 6, ["after"]) == ["page 6-1"]
    assert await titles(store, 6, ["before"]) == []
    assert await store.index.locked(lambda c: c.unsettled()) == []


async def test_a_sync_behind_by_a_write_reads_the_entry_at_its_position_once(
    store: LinkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync looks whether anything follows its position; when something does, only
    its replay reads the entry at the position (after taking the file's lock, where a
    dropped or restored journal must show), not the look before it too. A busy bot
    syncs about once a link (the ＋#tag buttons' read), and each look-up is a command
    (docs/BENCHMARKS.md)."""
    record = link(6, 3, ["a"])
    assert await seed_links(store, [record]) == 1
    await store.index.complete()
    assert await store.set_tags(6, record.id, ["b"])
    position = await store.journal.head() - 1  # the index's: the new entry follows it
    asked: list[int] = []
    read = store.journal.entry

    async def entry(seq: int) -> Any:
        asked.append(seq)
        return await read(seq)

    monkeypatch.setattr(store.journal, "entry", entry)
    assert await titles(store, 6, ["b"]) == ["page 6-3"]
    assert asked.count(position) == 1, asked
    assert position + 1 in asked, asked


async def test_a_writer_that_died_after_announcing_costs_a_wait_not_a_gap(
    store: LinkStore, clock: Clock
) -> None:
    record = link(6, 2, ["same"])
    assert await seed_links(store, [record]) == 1
    await store.index.complete()
    await store.journal.append([record.id], [6])  # announced; the write never comes
    assert await titles(store, 6, ["same"]) == ["page 6-2"]
    [(held, *_)] = await store.index.locked(lambda c: c.unsettled())
    assert held == str(record.id)
    clock.advance(search.SETTLE_LIMIT + 1)
    assert await titles(store, 6, ["same"]) == ["page 6-2"]
    assert await store.index.locked(lambda c: c.unsettled()) == []


WRITES = re.compile(
    r"""(\.links|\[["']links["']\])\s*\.\s*(insert_one|insert_many|update_one|update_many|"""
    r"""replace_one|delete_one|delete_many|find_one_and_update|find_one_and_replace|"""
    r"""find_one_and_delete|bulk_write)\b"""
)


def test_nothing_writes_links_but_the_announcing_writer() -> None:
    """Every write to `links` must be announced in the journal first (storage/writes.py);
    a new path writing the collection directly would be invisible to every index."""
    offenders = []
    for folder in ("bot", "handlers", "storage"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "writes.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if WRITES.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []


class NoDirectWrites:
    """`store.links`, refusing every write: reads pass through."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        if WRITES.search(f".links.{name}"):
            raise AssertionError(f"links.{name} called outside storage/writes.py")
        return getattr(self._real, name)


async def test_every_store_write_goes_through_the_writer(store: LinkStore) -> None:
    """Each write path of the store and the trash, run with `store.links` refusing
    writes: they all write through `store.writes`, whose entry names the link."""
    from storage import bulk

    store.links = NoDirectWrites(store.links)  # type: ignore[assignment]
    one, _ = await store.add_pending(link(8, 1, ["a"]))
    _, created = await store.add_pending(link(8, 1, ["b"]))
    assert not created
    await store.start_attempt(one.id)
    one.title, one.text = "captured", "some words"
    await store.save_capture(one)
    await store.update(one.id, status=Status.DONE)
    await store.set_siblings([one.id])
    assert await store.set_tags(8, one.id, ["c"])
    await store.set_alive(one.id, True)
    two = link(8, 2, ["d"])
    await bulk.record_imported(store, [two], prio=1, turn=0.0)
    trash = Trash(store)
    assert await trash.hide(8, one.id, keep_for=timedelta(minutes=1)) is not None
    await trash.restore(8, one.id)
    assert await deleted(store, 8, two.id)
    doc = await store.db["links"].find_one({"_id": one.id})
    changes = await store.journal.read(0, await store.journal.head())
    assert doc is not None and doc["rev"] == max(c.seq for c in changes if one.id in c.ids)
    assert await titles(store, 8, ["c"]) == ["captured"]


# -- the journal stays bounded, and a lost one means starting again -----------------------


@pytest.mark.timeout(600)  # ten thousand writes: a safety net, not a speed assert
async def test_journal_stays_bounded_over_10000_writes(store: LinkStore, clock: Clock) -> None:
    records = [link(9, n, ["t"]) for n in range(20)]
    assert await seed_links(store, records) == 20
    await store.index.complete()
    upkeep = store.index.upkeep
    sizes = []
    for n in range(0, 10_000, 20):  # twenty writes at a time, one to each link
        await asyncio.gather(
            *(
                store.writes.update(r.id, {"$set": {"title": f"v{n + i}"}}, 9)
                for i, r in enumerate(records)
            )
        )
        if n % 1000 == 980:
            clock.advance(61)  # trimming and shelves are due once a minute
            await upkeep.tick()
            sizes.append(await store.journal.size())
    assert max(sizes) <= 1100, sizes  # a round of writes, and the head, epoch and tail
    assert await store.journal.tail() > 9000
    # A process starting now finds the head from the tail, not by a walk from 1.
    fresh = Journal(store.db["changes"], store.db["index_positions"])
    looked = 0
    real_entry = fresh.entry

    async def entry(seq: int) -> Any:
        nonlocal looked
        looked += 1
        return await real_entry(seq)

    fresh.entry = entry  # type: ignore[method-assign]
    assert await fresh.head() == await store.journal.head()
    assert looked <= 30, looked
    got = {r.title for r in (await store.find(9, ["t"], page_size=50)).items}
    assert got == {f"v{n}" for n in range(9980, 10_000)}


async def test_a_quiet_writer_announces_above_what_was_trimmed_meanwhile(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock
) -> None:
    """A process that has not written for a while knows an old head of the journal;
    another one wrote and trimmed past it meanwhile. Its next entry (an import) must land
    above the tail, where indexes read: a number trimmed below it would never be
    replayed, and /find would not list the import (until a heal)."""
    quiet = await driven(mongodb_uri, tmp_path / "quiet.sqlite", clock)
    try:
        await owners_links(quiet, [41], 1)  # it knows the journal's head: 1
        await owners_links(store, [7], 2)
        await owners_links(store, [8], 2)
        await store.index.complete()
        clock.advance(TRIM_AGE)  # what existed that long ago may be trimmed
        assert await store.index.upkeep.trim() == 2  # entries 1 and 2 trimmed
        marks = [link(42, n, ["late"]) for n in range(3)]
        assert await bulk.record_imported(quiet, marks, prio=1, turn=0.0) == 3
        assert await store.journal.tail() < await store.journal.head()
        assert await titles(store, 42, ["late"]) == ["page 42-2", "page 42-1", "page 42-0"]
    finally:
        await quiet.close()


async def test_a_trim_takes_no_entry_younger_than_trim_age(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock
) -> None:
    """A writer that appended moments ago appends next without reading the tail: no
    number above its last can have been trimmed since. That holds only because a trim
    takes no entry younger than TRIM_AGE; here another process writes and trims at once,
    and the writer's next entry (an import) must still land where indexes read."""
    quiet = await driven(mongodb_uri, tmp_path / "quiet.sqlite", clock)
    try:
        await owners_links(quiet, [43], 1)  # its last append: entry 1, just now
        await owners_links(store, [7], 2)
        await owners_links(store, [8], 2)
        await store.index.complete()
        await store.index.upkeep.trim()  # all of it younger than TRIM_AGE: none taken
        clock.advance(FRESH_FOR / 2)
        marks = [link(44, n, ["soon"]) for n in range(3)]
        assert await bulk.record_imported(quiet, marks, prio=1, turn=0.0) == 3
        assert await titles(store, 44, ["soon"]) == ["page 44-2", "page 44-1", "page 44-0"]
        clock.advance(TRIM_AGE)
        assert await store.index.upkeep.trim() > 0  # old enough now
    finally:
        await quiet.close()


async def test_a_trimmer_that_read_an_older_tail_never_sets_it_back(
    store: LinkStore, clock: Clock
) -> None:
    """Every process trims, each to its own bound: one that read the tail before another
    raised it must not lower it again, or a writer below the true tail would pass its
    check and announce where no index reads."""
    journal = store.journal
    for _ in range(6):
        await journal.append([ObjectId()], [1])
    clock.advance(TRIM_AGE)
    assert await journal.trim(4) == 4
    racing = Journal(store.db["changes"], store.db["index_positions"], clock=clock)
    await racing.head()
    clock.advance(TRIM_AGE)

    async def read_before_the_other_trim() -> int:
        return 1

    racing.tail = read_before_the_other_trim  # type: ignore[method-assign]
    await racing.trim(2)
    assert await journal.tail() == 4


async def test_a_dropped_journal_means_starting_again_never_a_gap(
    store: LinkStore, mongodb_uri: str, tmp_path: Path
) -> None:
    first, second = link(10, 1, ["j"]), link(10, 2, ["j"])
    assert await seed_links(store, [first, second]) == 2
    await store.index.complete()
    await store.db["changes"].drop()
    # Written after the drop: the new journal starts again at 1, below the index's
    # position, which an index that only looked for "the next entry" would never read.
    other = LinkStore.connect(mongodb_uri, index_path=tmp_path / "other.sqlite")
    try:
        assert await other.set_tags(10, first.id, ["moved"])
    finally:
        await other.close()
    await store.index.complete()
    assert await titles(store, 10, ["j"]) == ["page 10-2"]
    assert await titles(store, 10, ["moved"]) == ["page 10-1"]


def first_rebuild_held_at_its_end(monkeypatch: Any) -> tuple[asyncio.Event, asyncio.Event]:
    """The first rebuild to finish waits, every row put in and its buckets not yet held:
    `finishing` is set then, and it goes on once `go_on` is."""
    from storage.index import rebuild as rebuild_module

    finishing, go_on = asyncio.Event(), asyncio.Event()
    real_finish = rebuild_module._finish
    calls = 0

    async def held_at_the_end(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            finishing.set()
            await go_on.wait()
        return await real_finish(*args)

    monkeypatch.setattr(rebuild_module, "_finish", held_at_the_end)
    return finishing, go_on


async def test_a_rebuild_overtaken_by_a_start_again_holds_nothing_it_lost(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock, monkeypatch: Any
) -> None:
    """The index starts again (its journal dropped) while a rebuild is finishing: what
    the rebuild put in was emptied, so it must not mark its buckets held. They are
    built again, and every link is found."""
    await owners_links(store, [11], 3)
    finishing, go_on = first_rebuild_held_at_its_end(monkeypatch)
    front = await driven(mongodb_uri, tmp_path / "overtaken.sqlite", clock)
    try:
        filled = asyncio.create_task(front.index.complete())
        await finishing.wait()  # every row is in; the buckets are not held yet
        await store.db["changes"].drop()
        await front.index.sync()  # the journal is gone: the index starts again
        go_on.set()
        await filled
        assert await front.index.holds() is None
        assert await titles(front, 11, []) == [f"page 11-{n}" for n in (2, 1, 0)]
    finally:
        go_on.set()
        await front.close()


async def test_a_bucket_restored_while_the_fill_looked_elsewhere_is_not_rebuilt_under_it(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock, monkeypatch: Any
) -> None:
    """The fill found no shelves and set out to rebuild every bucket; meanwhile shelves
    were written and an owner's ask restored their bucket. The rebuild must leave that
    bucket alone: dropping its rows while it stays held answers "nothing found"."""
    await owners_links(store, [12], 3)
    await store.index.complete()
    from storage.index import rebuild as rebuild_module

    gate, in_passes, go_on = asyncio.Event(), asyncio.Event(), asyncio.Event()
    rebuilding = asyncio.Event()
    real_rebuild, real_run = search.rebuild, rebuild_module._Passes.run

    async def held_back(listing: Any, buckets: set[int]) -> Built:
        rebuilding.set()
        await gate.wait()
        return await real_rebuild(listing, buckets)

    async def passes_held(self: Any) -> int:
        in_passes.set()
        await go_on.wait()
        return await real_run(self)

    monkeypatch.setattr(search, "rebuild", held_back)
    monkeypatch.setattr(rebuild_module._Passes, "run", passes_held)
    front = await driven(mongodb_uri, tmp_path / "stale.sqlite", clock)
    try:
        assert len(await titles(front, 12, [])) == 3  # from MongoDB; the fill is waiting
        # Only once the fill found no shelves (on a loaded machine it may look later).
        await asyncio.wait_for(rebuilding.wait(), 60)
        assert await store.index.upkeep.shelve() == BUCKETS
        assert len(await titles(front, 12, [])) == 3  # restored from the new shelf
        assert await front.index.holds() == {bucket_of(12)}
        gate.set()
        fill = front.index._fill
        assert fill is not None
        await asyncio.wait(
            [asyncio.ensure_future(in_passes.wait()), fill], return_when=asyncio.FIRST_COMPLETED
        )
        assert await titles(front, 12, []) == [f"page 12-{n}" for n in (2, 1, 0)]
        go_on.set()
        await front.index.complete()
        assert await titles(front, 12, []) == [f"page 12-{n}" for n in (2, 1, 0)]
    finally:
        gate.set()
        go_on.set()
        await front.close()


@asynccontextmanager
async def beside_another_process(
    store: LinkStore,
    mongodb_uri: str,
    tmp_path: Path,
    clock: Clock,
    monkeypatch: Any,
    owners: list[int],
) -> AsyncIterator[tuple[LinkStore, sqlite3.Connection]]:
    """A new front, its index file shared with another process (a connection the test
    makes take the write lock), over `owners`' 2 links each, complete and shelved. Its
    waits for the lock are short (BUSY_TIMEOUT 0.2 s)."""
    await owners_links(store, owners, 2)
    await store.index.complete()
    assert await store.index.upkeep.shelve() == BUCKETS
    monkeypatch.setattr(catalog, "BUSY_TIMEOUT", 0.2)
    path = tmp_path / "shared.sqlite"
    front = await driven(mongodb_uri, path, clock)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        yield front, other
    finally:
        other.close()
        await front.close()


async def test_a_restore_meeting_another_process_s_long_write_answers_all_the_same(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock, monkeypatch: Any
) -> None:
    """Another process sharing the file holds its write lock (a long rebuild step) just
    as this front restores the asking owner's bucket: the owner is answered (from
    MongoDB), not shown an error."""
    async with beside_another_process(store, mongodb_uri, tmp_path, clock, monkeypatch, [13]) as (
        front,
        other,
    ):
        real_head = front.index.shelves.head

        async def other_process_writes_first(bucket: int) -> Any:
            if not other.in_transaction:
                other.execute("BEGIN IMMEDIATE")  # held until the end of the test
            return await real_head(bucket)

        monkeypatch.setattr(front.index.shelves, "head", other_process_writes_first)
        assert await titles(front, 13, []) == ["page 13-1", "page 13-0"]
        assert other.in_transaction  # the restore did meet the lock


async def test_a_fill_meeting_another_process_s_long_write_restores_later_not_rebuilds(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock, monkeypatch: Any
) -> None:
    """The background fill finds the shared file's write lock held by another process
    (a long step) for its first buckets: it restores them from their shelves once the
    lock is free, rather than reading every link again to rebuild them."""
    monkeypatch.setattr(search, "BUSY_POLL", 0.05)
    async with beside_another_process(
        store, mongodb_uri, tmp_path, clock, monkeypatch, [13, 14]
    ) as (front, other):
        real_head = front.index.shelves.head
        asked: list[int] = []

        async def other_process_writes_for_a_while(bucket: int) -> Any:
            asked.append(bucket)
            if len(asked) == 1:
                other.execute("BEGIN IMMEDIATE")
            elif len(asked) == 3:
                other.execute("COMMIT")
            return await real_head(bucket)

        rebuilt: list[set[int]] = []

        async def recorded_rebuild(listing: Any, buckets: set[int]) -> Built:
            rebuilt.append(buckets)
            return Built.DONE

        monkeypatch.setattr(front.index.shelves, "head", other_process_writes_for_a_while)
        monkeypatch.setattr(search, "rebuild", recorded_rebuild)
        await front.index.complete()
        assert rebuilt == []
        assert asked[:2] == [0, 1] and asked.count(0) == 2  # bucket 0 tried again
        assert await titles(front, 13, []) == ["page 13-1", "page 13-0"]


async def test_two_processes_sharing_a_file_do_not_rebuild_it_over_each_other(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock, monkeypatch: Any
) -> None:
    """A front and a worker open one new index file at once (as after an upgrade) and
    both must build it from the collections. The second must wait for the first, not drop
    the rows the first has put in and is about to mark held."""
    await owners_links(store, [14], 3)
    await store.index.complete()
    from storage.index import rebuild as rebuild_module

    finishing, go_on = first_rebuild_held_at_its_end(monkeypatch)
    busy, in_passes = asyncio.Event(), asyncio.Event()
    real_run, real_rebuild = rebuild_module._Passes.run, search.rebuild

    async def told(listing: Any, buckets: set[int]) -> Built:
        built = await real_rebuild(listing, buckets)
        if built is Built.BUSY:
            busy.set()
        return built

    monkeypatch.setattr(search, "rebuild", told)
    monkeypatch.setattr(search, "BUSY_POLL", 0.05)
    path = tmp_path / "shared.sqlite"
    first = await driven(mongodb_uri, path, clock)
    second: LinkStore | None = None
    try:
        first_filled = asyncio.create_task(first.index.complete())
        await finishing.wait()  # the first has put every row in

        async def second_held_in_its_passes(self: Any) -> int:
            in_passes.set()
            await go_on.wait()
            return await real_run(self)

        monkeypatch.setattr(rebuild_module._Passes, "run", second_held_in_its_passes)
        second = await driven(mongodb_uri, path, clock)
        second_filled = asyncio.create_task(second.index.complete())
        signals = [asyncio.ensure_future(e.wait()) for e in (busy, in_passes)]
        await asyncio.wait(signals, return_when=asyncio.FIRST_COMPLETED)
        for signal in signals:
            signal.cancel()
        go_on.set()
        await first_filled
        assert await titles(first, 14, []) == [f"page 14-{n}" for n in (2, 1, 0)]
        await second_filled
        assert await titles(second, 14, []) == [f"page 14-{n}" for n in (2, 1, 0)]
    finally:
        go_on.set()
        await first.close()
        if second is not None:
            await second.close()


async def test_a_restored_journal_means_starting_again(store: LinkStore) -> None:
    first = link(11, 1, ["r"])
    assert await seed_links(store, [first]) == 1
    await store.index.complete()
    saved = await store.db["changes"].find({}).to_list()  # a backup of the journal
    assert await store.set_tags(11, first.id, ["later"])
    assert await titles(store, 11, ["later"]) == ["page 11-1"]
    # The journal comes back from the backup, and new writes reuse its numbers.
    await store.db["changes"].delete_many({})
    await store.db["changes"].insert_many(saved)
    store.journal._head = None  # as a process started after the restore
    await store.db["links"].update_one({"_id": first.id}, {"$set": {"tags": ["restored"]}})
    await store.journal.append([first.id], [11])
    await store.index.complete()
    assert await titles(store, 11, ["restored"]) == ["page 11-1"]
    assert await titles(store, 11, ["later"]) == []


# -- a new front answers at once ---------------------------------------------------------


async def owners_links(store: LinkStore, owners: list[int], per_owner: int) -> None:
    batch = [
        link(o, n, [f"t{n % 3}"], text=f"words of {o} número {n}")
        for o in owners
        for n in range(per_owner)
    ]
    assert await seed_links(store, batch) == len(batch)


async def test_a_new_front_answers_from_its_shelf_before_the_rest_is_restored(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock, monkeypatch: Any
) -> None:
    owners = [3, 3 + BUCKETS, 70, 1000]  # two owners share a bucket
    await owners_links(store, owners, 6)
    await store.index.complete()
    assert await store.index.upkeep.shelve() == BUCKETS  # every bucket gets its shelf
    await store.set_tags(3, (await store.find(3, ["t0"])).items[0].id, ["after-shelf"])

    gate = asyncio.Event()
    real_fill = search.IndexListing._fill_all

    async def held_back(self: search.IndexListing) -> None:
        await gate.wait()  # the background restore of the other buckets waits
        await real_fill(self)

    monkeypatch.setattr(search.IndexListing, "_fill_all", held_back)
    front = await driven(mongodb_uri, tmp_path / "new-front.sqlite", clock)
    rebuilt: list[set[int]] = []

    async def no_rebuild(listing: Any, buckets: set[int]) -> Built:
        rebuilt.append(buckets)
        return Built.DONE

    monkeypatch.setattr(search, "rebuild", no_rebuild)
    try:
        assert await titles(front, 3, ["after-shelf"]) == ["page 3-3"]  # a change after it
        assert await titles(front, 3, [], "número") == [f"page 3-{n}" for n in range(5, -1, -1)]
        assert await titles(front, 3 + BUCKETS, ["t1"]) == ["page 67-4", "page 67-1"]
        assert await front.index.holds() == {bucket_of(3)}  # answered before the rest
        gate.set()
        await front.index.complete()
        assert rebuilt == []  # all from shelves, none from the collections
        assert await titles(front, 1000, ["t2"]) == ["page 1000-5", "page 1000-2"]
    finally:
        await front.close()


def hold_rebuild(monkeypatch: Any) -> asyncio.Event:
    """Rebuilds wait until the returned event is set."""
    gate = asyncio.Event()
    real_rebuild = search.rebuild

    async def held_back(listing: Any, buckets: set[int]) -> Built:
        await gate.wait()
        return await real_rebuild(listing, buckets)

    monkeypatch.setattr(search, "rebuild", held_back)
    return gate


async def test_a_new_front_without_shelves_answers_from_mongodb_meanwhile(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock, monkeypatch: Any
) -> None:
    await owners_links(store, [21, 22], 4)
    gate = hold_rebuild(monkeypatch)
    front = await driven(mongodb_uri, tmp_path / "no-shelves.sqlite", clock)
    try:
        assert await titles(front, 21, ["t1"]) == ["page 21-1"]
        assert await titles(front, 22, [], "número") == [f"page 22-{n}" for n in (3, 2, 1, 0)]
        assert await front.index.holds() == set()  # those came from MongoDB itself
        gate.set()
        await front.index.complete()
        assert await titles(front, 21, ["t1"]) == ["page 21-1"]
    finally:
        await front.close()


async def test_a_large_collection_without_shelves_waits_for_the_rebuild(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock, monkeypatch: Any
) -> None:
    """Past NATIVE_UP_TO links, asking MongoDB reads the whole collection on FerretDB for
    every question (and slows the rebuild): the owner's first answer waits for it."""
    await owners_links(store, [23], 3)
    monkeypatch.setattr(search, "NATIVE_UP_TO", 2)
    gate = hold_rebuild(monkeypatch)
    front = await driven(mongodb_uri, tmp_path / "large.sqlite", clock)

    async def never(*args: Any) -> Any:
        raise AssertionError("MongoDB was asked while the index was rebuilt")

    monkeypatch.setattr(front.index.native, "find", never)
    try:
        asked = asyncio.create_task(titles(front, 23, ["t1"]))
        gate.set()
        assert await asked == ["page 23-1"]
        assert await front.index.holds() is None
    finally:
        await front.close()


async def lands(store: LinkStore, record: LinkRecord, seq: int) -> None:
    """The write announced by entry `seq` lands (an insert slower than the readers)."""
    doc = light_doc(record)
    doc["rev"] = seq
    await store.links.insert_one(doc)


async def test_a_write_announced_before_a_rebuild_and_landing_after_it_is_found(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock
) -> None:
    """An import's entry is written, a new front rebuilds from the collections, and only
    then does the import's insert land (the rebuild's pass over `links` missed it). The
    rebuild starts from the oldest entry whose write may still be landing, so the link is
    held and read again, not missing from /find until a heal."""
    await owners_links(store, [40], 2)
    late = link(40, 9, ["late"])
    seq = await store.journal.append([late.id], [40])  # announced; the write is slow
    front = await driven(mongodb_uri, tmp_path / "late.sqlite", clock)
    try:
        await front.index.complete()  # rebuilt while the insert has not landed
        assert await front.index.holds() is None
        await lands(store, late, seq)  # the import's insert lands now
        assert await titles(front, 40, ["late"]) == ["page 40-9"]
        assert await titles(front, 40, []) == ["page 40-9", "page 40-1", "page 40-0"]
    finally:
        await front.close()


async def test_shelves_follow_changes_and_unchanged_ones_move_on(
    store: LinkStore, clock: Clock
) -> None:
    await owners_links(store, [30, 31], 2)
    await store.index.complete()
    upkeep = store.index.upkeep
    await upkeep.shelve()
    heads = await store.index.shelves.all_heads()
    record = (await store.find(30, [])).items[0]
    await store.set_tags(30, record.id, ["z"])
    await store.index.sync()
    assert await upkeep.shelve() == 1  # only the bucket that changed is written again
    after = await store.index.shelves.all_heads()
    assert after[bucket_of(30)].gen != heads[bucket_of(30)].gen
    assert after[bucket_of(31)].gen == heads[bucket_of(31)].gen
    assert after[bucket_of(31)].position == await store.journal.head()


# -- two processes, one index file --------------------------------------------------------


async def test_links_imported_beside_another_process_s_long_write_are_found(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock, monkeypatch: Any
) -> None:
    """Two processes share the index file; one holds its write lock for long (a replay
    reading links from a slow MongoDB). The other imports links and asks /find at once:
    the answer lists them (MongoDB answers while the file is behind and held), never the
    file as it stood before the import."""
    monkeypatch.setattr(catalog, "BUSY_TIMEOUT", 0.2)  # SQLite's wait for the lock
    await owners_links(store, [42], 2)
    await store.index.complete()
    front = await driven(mongodb_uri, tmp_path / "index.sqlite", clock)  # the same file
    inside, gate = asyncio.Event(), asyncio.Event()
    real_read = store.index.read_links

    async def slow_read(ids: Any) -> Any:
        inside.set()  # the replay holds the file's write lock from here
        await gate.wait()
        return await real_read(ids)

    monkeypatch.setattr(store.index, "read_links", slow_read)
    first = (await store.find(42, [])).items[0]
    await store.set_tags(42, first.id, ["moved"])  # a journal entry for it to replay
    replay = asyncio.create_task(store.index.sync())
    try:
        await inside.wait()
        marks = [link(42, 100 + n, [f"g{n % 7}"]) for n in range(30)]
        assert await bulk.record_imported(front, marks, prio=1, turn=0.0) == 30
        found = await front.find(42, ["g3"], page_size=100)
        assert [r.title for r in found.items] == [f"page 42-{n}" for n in (124, 117, 110, 103)]
        assert (await front.find(42, [], page_size=100)).total == 32
    finally:
        gate.set()
        await replay
        await front.close()
    # and the file, once free, holds them too
    assert await titles(store, 42, ["g3"]) == [f"page 42-{n}" for n in (124, 117, 110, 103)]


class Interleaved:
    """A catalog's connection that lets another process write right after it has read
    a bucket's rows (`bucket`), before its next statement."""

    def __init__(self, conn: Any, bucket: int, write: Any) -> None:
        self.conn, self.bucket, self.write = conn, bucket, write
        self.armed = False
        self.fired = False

    def execute(self, sql: str, *args: Any) -> Any:
        if self.armed and not self.fired:
            self.fired = True
            self.write()
        cursor = self.conn.execute(sql, *args)
        if "FROM links" in sql and "WHERE bucket = ?" in sql and args == ((self.bucket,),):
            self.armed = True
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


async def test_a_shelf_written_while_another_process_rewrites_rows_keeps_their_tags(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock
) -> None:
    """A shelf is read from the file while other processes sharing it write: it must be
    one snapshot of the bucket. Rows another process rewrote meanwhile (its replay of a
    change: new row numbers) went on the shelf without their tags, and a new front
    restored from it listed those links but found none of them by tag."""
    await owners_links(store, [42], 6)
    await store.index.complete()
    other = await driven(mongodb_uri, tmp_path / "index.sqlite", clock)  # the same file
    new_front: LinkStore | None = None
    try:
        await other.index.complete()
        theirs = await other.index.open()

        def rewrite() -> None:  # as the other process's replay of these links would
            theirs.begin()
            theirs.put_rows(theirs.bucket_rows(bucket_of(42)))
            theirs.commit()

        ours = await store.index.open()
        ours.conn = Interleaved(ours.conn, bucket_of(42), rewrite)  # type: ignore[assignment]
        assert await store.index.upkeep.shelve() == BUCKETS
        assert ours.conn.fired  # type: ignore[attr-defined]
        ours.conn = ours.conn.conn  # type: ignore[attr-defined]

        new_front = await driven(mongodb_uri, tmp_path / "new-front.sqlite", clock)
        assert await titles(new_front, 42, ["t1"]) == ["page 42-4", "page 42-1"]
        assert await titles(new_front, 42, []) == [f"page 42-{n}" for n in range(5, -1, -1)]
        assert await new_front.index.holds() == {bucket_of(42)}  # from the shelf
    finally:
        await other.close()
        if new_front is not None:
            await new_front.close()


async def test_an_insert_still_landing_goes_on_its_bucket_s_shelf(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock
) -> None:
    """A link announced but not yet written has no row, only a wait. Its bucket's shelf
    must carry that wait (and not be moved past its entry), or a new front restored from
    it never reads the link: missing from /find until a heal."""
    await owners_links(store, [50], 2)
    await store.index.complete()
    assert await store.index.upkeep.shelve() == BUCKETS
    late = link(50, 9, ["late"])
    seq = await store.journal.append([late.id], [50])  # announced; the insert is slow
    assert await titles(store, 50, ["late"]) == []  # this front now waits for it
    await store.index.upkeep.shelve()  # the shelves follow the journal
    new_front = await driven(mongodb_uri, tmp_path / "new-front.sqlite", clock)
    try:
        assert await titles(new_front, 50, ["t1"]) == ["page 50-1"]
        assert await new_front.index.holds() == {bucket_of(50)}  # from the shelf
        await lands(store, late, seq)  # the insert lands
        assert await titles(new_front, 50, ["late"]) == ["page 50-9"]
        assert await titles(store, 50, ["late"]) == ["page 50-9"]
    finally:
        await new_front.close()


async def asked_front(
    store: LinkStore, uri: str, path: Path, clock: Clock, monkeypatch: Any, first: int, links: int
) -> tuple[list[int], LinkStore]:
    """Two owners in different buckets (`first` and the next owner after it in another),
    `links` each, shelved; and a new front that restores buckets only as their owners
    ask, in the test's order (no background fill)."""
    owners = [
        first,
        next(o for o in range(first + 1, first + 300) if bucket_of(o) != bucket_of(first)),
    ]
    await owners_links(store, owners, links)
    await store.index.complete()
    assert await store.index.upkeep.shelve() == BUCKETS

    async def no_background_fill(self: search.IndexListing) -> None:
        return None

    monkeypatch.setattr(search.IndexListing, "_fill_all", no_background_fill)
    return owners, await driven(uri, path, clock)


async def test_restoring_one_bucket_keeps_another_bucket_s_inserts_still_landing(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock, monkeypatch: Any
) -> None:
    """Restoring a bucket drops what the file held of it; a wait for another owner's
    link that has not landed yet is not part of it and must be kept."""
    owners, front = await asked_front(
        store, mongodb_uri, tmp_path / "front.sqlite", clock, monkeypatch, 60, 2
    )
    try:
        assert await titles(front, owners[1], ["t1"]) == [f"page {owners[1]}-1"]
        late = link(owners[1], 9, ["late"])
        seq = await store.journal.append([late.id], [owners[1]])
        assert await titles(front, owners[1], ["late"]) == []  # waits for it now
        assert await titles(front, 60, ["t1"]) == ["page 60-1"]  # restores 60's bucket
        assert await front.index.holds() == {bucket_of(60), bucket_of(owners[1])}
        await lands(store, late, seq)
        assert await titles(front, owners[1], ["late"]) == [f"page {owners[1]}-9"]
    finally:
        await front.close()


async def test_a_shelf_in_many_parts_restores_whole(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock, monkeypatch: Any
) -> None:
    """A large bucket's shelf is several parts, each stored as it is read: every row, its
    tags and words, and the waits (carried by the first part) come back."""
    from storage.index import shelves

    monkeypatch.setattr(shelves, "ROWS_PER_PART", 2)
    await owners_links(store, [70], 7)
    await store.index.complete()
    late = link(70, 9, ["late"])
    seq = await store.journal.append([late.id], [70])
    assert await titles(store, 70, ["late"]) == []  # held: goes on the shelf as a wait
    assert await store.index.upkeep.shelve() == BUCKETS
    head = await store.index.shelves.head(bucket_of(70))
    assert head is not None and head.parts >= 4
    new_front = await driven(mongodb_uri, tmp_path / "parts.sqlite", clock)
    try:
        assert await titles(new_front, 70, [], "número") == [
            f"page 70-{n}" for n in range(6, -1, -1)
        ]
        assert await titles(new_front, 70, ["t2"]) == ["page 70-5", "page 70-2"]
        await lands(store, late, seq)
        assert await titles(new_front, 70, ["late"]) == ["page 70-9"]
    finally:
        await new_front.close()


async def test_restoring_a_bucket_leaves_another_held_bucket_s_waits_to_its_replay(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock, monkeypatch: Any
) -> None:
    """One journal entry names links of two owners in different buckets (a migration).
    This front holds the second owner's bucket and waits for that owner's write; restoring
    the first owner's bucket catches up over the same entry and must not settle the wait
    it does not store, or the second owner's link keeps its old tags."""
    owners, front = await asked_front(
        store, mongodb_uri, tmp_path / "front.sqlite", clock, monkeypatch, 80, 1
    )
    try:
        assert await titles(front, owners[1], ["t0"]) == [f"page {owners[1]}-0"]
        ids = [(await store.find(o, [])).items[0].id for o in owners]
        seq = await store.journal.append(ids, owners)  # announced for both
        assert await titles(front, owners[1], ["moved"]) == []  # read before it landed
        real_head = front.index.shelves.head

        async def lands_as_the_restore_begins(bucket: int) -> Any:
            for link_id in ids:  # after this front's sync, before the restore's catch-up
                await store.links.update_one(
                    {"_id": link_id}, {"$set": {"tags": ["moved"], "rev": seq}}
                )
            return await real_head(bucket)

        monkeypatch.setattr(front.index.shelves, "head", lands_as_the_restore_begins)
        assert await titles(front, 80, ["moved"]) == ["page 80-0"]  # restores 80's bucket
        assert await titles(front, owners[1], ["moved"]) == [f"page {owners[1]}-0"]
    finally:
        await front.close()


async def test_links_an_import_finds_it_has_leave_no_wait_behind(store: LinkStore) -> None:
    """An import batch announces all its links; those refused as the owner's already
    are said never to land, so no index keeps waiting for them (a wait keeps every sync
    of that index on the slow path for SETTLE_LIMIT)."""
    first = [link(90, n, ["x"]) for n in range(3)]
    assert await seed_links(store, first) == 3
    await store.index.complete()
    again = [link(90, n, ["x"]) for n in range(3)]  # the same pages, new ids

    async def read_before_the_insert() -> None:
        await store.index.sync()  # replays the batch's entry: nothing landed yet

    real = store.writes.insert_many

    async def with_a_reader(docs: Any, first: Any = None) -> Any:
        async def both() -> None:
            if first is not None:
                await first()
            await read_before_the_insert()

        return await real(docs, first=both)

    store.writes.insert_many = with_a_reader  # type: ignore[method-assign]
    assert await bulk.record_imported(store, again, prio=1, turn=0.0) == 0
    await store.index.sync()
    assert await store.index.locked(lambda c: c.unsettled()) == []
    assert await titles(store, 90, ["x"]) == [f"page 90-{n}" for n in (2, 1, 0)]


async def test_words_left_for_later_stay_true_through_changes_made_before_they_are_in(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, clock: Clock, monkeypatch: Any
) -> None:
    """A restore answers a tag question before the bucket's words are indexed. Rows
    retagged or deleted meanwhile must not touch the word index (they were never in
    it), and a word question then finds exactly what the records hold."""
    owners, front = await asked_front(
        store, mongodb_uri, tmp_path / "front.sqlite", clock, monkeypatch, 40, 4
    )
    first = bucket_of(owners[0])
    try:
        assert await titles(front, owners[0], ["t1"]) == ["page 40-1"]
        assert await front.index.locked(lambda c: c.unworded(first)) == first  # left for later
        retagged = (await store.find(owners[0], ["t0"])).items
        await store.set_tags(owners[0], retagged[0].id, ["moved"])
        gone = (await store.find(owners[0], ["t2"])).items[0]
        assert await deleted(store, owners[0], gone.id)
        assert await titles(front, owners[0], ["moved"]) == ["page 40-3"]  # replayed
        assert await titles(front, owners[0], [], "número") == [
            "page 40-3",
            "page 40-1",
            "page 40-0",
        ]
        assert await titles(front, owners[1], [], "número") == [
            f"page {owners[1]}-{n}" for n in range(3, -1, -1)
        ]
        await front.index.word_all()
        assert await front.index.locked(lambda c: c.unworded()) is None
        await front.index.locked(
            lambda c: c.conn.execute("INSERT INTO words(words, rank) VALUES ('integrity-check', 1)")
        )
    finally:
        await front.close()


def file_size(path: Path | str) -> int:
    return Path(path).stat().st_size


async def test_upkeep_copies_the_index_s_log_into_its_file(store: LinkStore, clock: Clock) -> None:
    """Commits leave their pages in the write-ahead log (a restore's commit does not wait
    to copy them); the upkeep's tick copies them into the file, so the log does not grow
    with every write and a new connection reads the file, not a long log."""
    await owners_links(store, [5, 6], 300)
    await store.index.sync()
    before = file_size(store.index.path)  # the rows are in the log only
    await store.index.upkeep.tick()
    assert file_size(store.index.path) > 10 * before

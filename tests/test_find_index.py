"""/find, /tags and the link-rot order equal what MongoDB holds, on both read paths
(storage/index/listing.py): the derived SQLite index and MongoDB's own indexes (on FerretDB
here, where the native one is correct, only slower). After adds, retags, deletes,
restarts, writes from other processes, and the migration of an old database."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from storage.models import LinkRecord, Status
from storage.repository import LinkStore
from storage.terms import terms_for, tokenize
from tests.records import captured_page, deleted, seed_links

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WORDS = ["apple", "banana", "cherry", "快照", "周末", "delta"]
TAGS = ["a", "b", "c", "技术"]


def link(owner: int, n: int, tags: list[str], text: str = "", minutes: int = 0) -> LinkRecord:
    url = f"https://site{owner}.example/{n}"
    return captured_page(owner, url, n, tags, text, T0 + timedelta(minutes=minutes or n))


@pytest.fixture(params=["index", "native"])
def kind(request: pytest.FixtureRequest) -> str:
    """Which read path answers: every listing test runs on both."""
    return str(request.param)


def connect(uri: str, path: Path, kind: str) -> LinkStore:
    return LinkStore.connect(uri, index_path=path, listing=kind)


@pytest.fixture
async def store(mongodb_uri: str, tmp_path: Path, kind: str) -> AsyncIterator[LinkStore]:
    s = connect(mongodb_uri, tmp_path / "a.sqlite", kind)
    await s.ensure_indexes()
    yield s
    await s.close()


@pytest.fixture
async def opened(
    mongodb_uri: str, tmp_path: Path, kind: str
) -> AsyncIterator[Callable[[str], LinkStore]]:
    """`opened(name)`: another process's store, with its index in the file `name` (the
    same name shares a file); all closed when the test ends."""
    stores: list[LinkStore] = []

    def open_one(name: str) -> LinkStore:
        stores.append(connect(mongodb_uri, tmp_path / name, kind))
        return stores[-1]

    yield open_one
    for s in stores:
        await s.close()


async def titles(store: LinkStore, owner: int, tags: list[str], words: str = "") -> list[str]:
    page = await store.find(owner, tags, words, page_size=100)
    assert page.total == len(page.items)
    return [r.title or "" for r in page.items]


async def test_index_follows_add_retag_delete_and_restart(
    store: LinkStore, mongodb_uri: str, tmp_path: Path, kind: str
) -> None:
    one, _ = await store.add_pending(link(7, 1, ["a", "b"]))
    two, _ = await store.add_pending(link(7, 2, ["a"]))
    await store.update(two.id, text="Cherry blossoms 周末快照", status=Status.DONE)
    two.text = "Cherry blossoms 周末快照"
    await store.update(two.id, terms=terms_for(two.title, two.note, two.text))
    assert await titles(store, 7, ["a"]) == ["page 7-2", "page 7-1"]
    assert await titles(store, 7, [], "cherry 快照") == ["page 7-2"]
    assert [(c.tag, c.count) for c in await store.tag_counts(7)] == [("a", 2), ("b", 1)]

    # The same URL again: tags merge, no second link.
    again, created = await store.add_pending(link(7, 1, ["c"]))
    assert not created and again.id == one.id and set(again.tags) == {"a", "b", "c"}
    assert await titles(store, 7, ["c"]) == ["page 7-1"]

    assert await store.set_tags(7, two.id, ["b"])
    assert not await store.set_tags(8, two.id, ["stolen"])  # not the owner's link
    assert await titles(store, 7, ["a"]) == ["page 7-1"]
    assert await titles(store, 7, ["a", "b"]) == ["page 7-1"]
    assert await titles(store, 7, ["b"]) == ["page 7-2", "page 7-1"]

    assert not await deleted(store, 8, one.id)
    assert await deleted(store, 7, one.id)
    assert await titles(store, 7, ["a"]) == []
    assert [(c.tag, c.count) for c in await store.tag_counts(7)] == [("b", 1)]
    assert await titles(store, 7, [], "周末") == ["page 7-2"]

    # A restart: the same file catches up; a missing file is rebuilt from MongoDB.
    await store.add_pending(link(7, 3, ["b"]))
    for path in (tmp_path / "a.sqlite", tmp_path / "fresh.sqlite"):
        restarted = connect(mongodb_uri, path, kind)
        try:
            assert await titles(restarted, 7, ["b"]) == ["page 7-3", "page 7-2"]
            assert await titles(restarted, 7, [], "blossoms") == ["page 7-2"]
            assert [(c.tag, c.count) for c in await restarted.tag_counts(7)] == [("b", 2)]
        finally:
            await restarted.close()


async def test_writes_from_other_processes_are_seen(
    opened: Callable[[str], LinkStore],
) -> None:
    """Stores with their own index files (other machines) and one sharing a file."""
    front, worker, shared = opened("front.sqlite"), opened("worker.sqlite"), opened("front.sqlite")
    await front.ensure_indexes()
    assert await titles(front, 5, ["x"]) == []
    record, _ = await worker.add_pending(link(5, 1, ["x"]))
    assert await titles(front, 5, ["x"]) == ["page 5-1"]
    await worker.update(record.id, title="renamed")
    await front.add_pending(link(5, 2, ["x"]))
    results = await asyncio.gather(
        titles(front, 5, ["x"]), titles(shared, 5, ["x"]), titles(worker, 5, ["x"])
    )
    assert results == [["page 5-2", "renamed"]] * 3


async def test_same_url_from_two_processes_is_one_link(
    opened: Callable[[str], LinkStore],
) -> None:
    a, b = opened("a.sqlite"), opened("b.sqlite")
    await a.ensure_indexes()
    results = await asyncio.gather(
        *(s.add_pending(link(9, 1, [t])) for s, t in ((a, "one"), (b, "two")) * 3)
    )
    assert sum(created for _, created in results) == 1
    assert len({r.id for r, _ in results}) == 1
    assert await a.links.count_documents({"owner_id": 9}) == 1
    assert await titles(b, 9, []) == ["page 9-1"]


async def test_find_equals_a_plain_filter_over_the_records(store: LinkStore) -> None:
    """Random links, retags and deletes; every query answers what the records say."""
    rng = random.Random(10)
    records: dict[ObjectId, LinkRecord] = {}
    batch = []
    for n in range(120):
        owner = rng.choice([1, 2, 3])
        text = " ".join(rng.sample(WORDS, 2))
        batch.append(link(owner, n, rng.sample(TAGS, rng.randint(0, 2)), text, rng.randint(1, 30)))
    assert await seed_links(store, batch) == 120
    records.update((r.id, r) for r in batch)
    assert (await store.find(1, [], "")).total > 0  # built now; the changes below replay
    for r in rng.sample(batch, 20):
        r.tags = rng.sample(TAGS, rng.randint(0, 3))
        await store.set_tags(r.owner_id, r.id, r.tags)
    for r in rng.sample(batch, 15):
        assert await deleted(store, r.owner_id, r.id)
        records.pop(r.id, None)

    def expected(owner: int, tags: list[str], words: str) -> list[ObjectId]:
        wanted = set(tokenize(words))
        hits = [
            r
            for r in records.values()
            if r.owner_id == owner
            and set(tags) <= set(r.tags)
            and wanted <= set(terms_for(r.title, r.note, r.description, r.site_name, r.text))
        ]
        hits.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return [r.id for r in hits]

    for owner in (1, 2, 3, 4):
        counts: dict[str, int] = {}
        for r in records.values():
            if r.owner_id == owner:
                for tag in set(r.tags):
                    counts[tag] = counts.get(tag, 0) + 1
        got = {c.tag: c.count for c in await store.tag_counts(owner)}
        assert got == counts
        for _ in range(15):
            tags = rng.sample(TAGS, rng.randint(0, 2))
            words = " ".join(rng.sample(WORDS, rng.randint(0, 2)))
            want = expected(owner, tags, words)
            pages = []
            for page in range(3):
                result = await store.find(owner, tags, words, page=page, page_size=4)
                assert result.total == len(want), (owner, tags, words)
                pages += [r.id for r in result.items]
            assert pages == want[:12], (owner, tags, words)


async def work_entries(store: LinkStore) -> dict[ObjectId, str]:
    """The links with a stage still to run (`work`), and that stage."""
    return {d["_id"]: d["status"] async for d in store.work.find({})}


async def test_old_database_is_migrated_once(
    mongodb_uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """Documents written before the split (text and a terms array inside each link)."""
    old = connect(mongodb_uri, tmp_path / "old.sqlite", kind)
    done = link(3, 1, ["old"], "Migrated page about 快照")
    done.terms = terms_for(done.title, done.text)
    pending = link(3, 2, ["old"])
    pending.status = Status.CAPTURING
    await old.links.insert_many([done.to_doc(), pending.to_doc()])
    await old.close()

    store = connect(mongodb_uri, tmp_path / "new.sqlite", kind)
    try:
        with caplog.at_level(logging.INFO, logger="storage.migrate"):
            await store.ensure_indexes()
            await store.ensure_indexes()
        lines = [r.getMessage() for r in caplog.records if r.name == "storage.migrate"]
        assert len([m for m in lines if m.startswith("migrating links")]) == 1, lines
        raw = await store.links.find_one({"_id": done.id})
        assert raw is not None and "text" not in raw and "terms" not in raw
        stored = await store.get(3, done.id)
        assert stored is not None and stored.text == done.text
        assert await titles(store, 3, [], "快照") == ["page 3-1"]
        assert await titles(store, 3, ["old"]) == ["page 3-2", "page 3-1"]
        again, created = await store.add_pending(link(3, 1, ["new"]))
        assert not created and again.id == done.id
        assert await work_entries(store) == {pending.id: "capturing"}
    finally:
        await store.close()


async def test_finished_links_leave_the_work_collection(store: LinkStore) -> None:
    fresh = link(4, 1, ["w"])
    fresh.status = Status.PENDING
    record, _ = await store.add_pending(fresh)
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert await work_entries(store) == {record.id: "pending"}
    await store.start_attempt(record.id)
    record.title, record.text = "Captured title", "Words from the page about 周末快照"
    await store.save_capture(record)
    assert await titles(store, 4, ["w"], "周末 page") == ["Captured title"]
    assert await work_entries(store) == {record.id: "captured"}
    await store.update(record.id, status=Status.SUMMARY_FAILED, summary_attempts=1)
    assert await work_entries(store) == {record.id: "summary_failed"}
    await store.update(record.id, status=Status.DONE)
    # Kept until its stage has told the user (bot/pipeline/finish.py), then dropped.
    assert await work_entries(store) == {record.id: "summary_failed"}
    await store.drop_work(record.id)
    assert await work_entries(store) == {}
    due = await store.due_for_check(later)
    assert [r.id for r in due] == [record.id]
    await store.set_alive(record.id, False)
    assert await store.due_for_check(datetime.now(UTC) - timedelta(minutes=1)) == []
    [listed] = (await store.find(4, ["w"])).items
    assert listed.alive is False


async def test_ferretdb_answers_id_lookups_from_an_index(mongodb_uri: str) -> None:
    """The wrapper's `_id` path index (tools/ferretdb/idindex.go) is what SQLite uses for
    FerretDB's pushed-down `_id` equality; without it every look-up scans the table."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    try:
        db = client.get_default_database()
        info = await db.command("buildInfo")
        if "ferretdbVersion" not in info:
            pytest.skip("checks the embedded FerretDB wrapper, not this server")
        ids = (await db["probe"].insert_many([{"n": i} for i in range(50)])).inserted_ids
        plan = ""
        for _ in range(100):  # the wrapper adds the index within its sweep interval
            # A real query first: SQLite notices a schema change when a statement runs,
            # and EXPLAIN alone runs nothing.
            await db["probe"].find_one({"_id": ids[7]})
            explained = await db.command("explain", {"find": "probe", "filter": {"_id": ids[7]}})
            plan = str(explained.get("queryPlanner"))
            if "USING INDEX" in plan:
                break
            await asyncio.sleep(0.05)
        assert "USING INDEX" in plan and "linksnap_id_path" in plan, plan
        assert (await db["probe"].find_one({"_id": ids[7]}) or {}).get("n") == 7
    finally:
        await client.close()


async def test_page_words_never_pass_for_another_owner(store: LinkStore) -> None:
    """Word search is scoped by an owner token; a page that contains the text of that
    token ("u1", "$u1") must not show up in user 1's results."""
    theirs = link(5, 1, ["t"], "u1 $u1 secret plans")
    mine = link(1, 2, ["t"], "my own notes")
    assert await seed_links(store, [theirs, mine]) == 2
    assert await titles(store, 1, [], "secret") == []
    assert await titles(store, 1, [], "u1") == []
    assert await titles(store, 5, [], "secret") == ["page 5-1"]
    assert await titles(store, 1, [], "notes") == ["page 1-2"]


async def test_due_links_never_checked_newest_first_then_oldest_checked(store: LinkStore) -> None:
    """The link-rot order on both read paths: links never checked lead, newest first (an
    import's latest links before its oldest), then the oldest checks."""
    now = datetime.now(UTC)
    old, new, stale, staler, fresh, capturing = (link(12, n, []) for n in range(1, 7))
    stale.checked_at = now - timedelta(days=3)
    staler.checked_at = now - timedelta(days=10)
    fresh.checked_at = now - timedelta(hours=1)
    capturing.status = Status.CAPTURING  # in a capture's hands: it is checked by it
    assert await seed_links(store, [old, new, stale, staler, fresh, capturing]) == 6
    due = await store.due_for_check(now - timedelta(days=1), limit=10)
    assert [r.id for r in due] == [new.id, old.id, staler.id, stale.id]
    first = await store.due_for_check(now - timedelta(days=1), limit=3)
    assert [r.id for r in first] == [new.id, old.id, staler.id]


async def test_the_read_path_is_chosen_from_build_info_and_keeps_its_indexes(
    mongodb_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FerretDB names itself in buildInfo: `auto` picks the SQLite accelerator there. On
    the native path, the upgrade of an older database keeps the indexes it reads from."""
    from pymongo.asynchronous.collection import AsyncCollection

    auto = LinkStore.connect(mongodb_uri, index_path=tmp_path / "auto.sqlite")
    native = connect(mongodb_uri, tmp_path / "native.sqlite", "native")
    dropped: list[str] = []
    real_drop = AsyncCollection.drop_index

    async def drop_index(self: Any, name: str, *args: Any, **kwargs: Any) -> None:
        dropped.append(name)
        await real_drop(self, name, *args, **kwargs)

    monkeypatch.setattr(AsyncCollection, "drop_index", drop_index)
    try:
        assert await auto.listing.chosen() is auto.index
        # A database from before the split (data model v1), with the listing's index.
        await native.links.insert_one(link(2, 1, ["v1"]).to_doc())
        await native.links.create_index([("owner_id", 1), ("tags", 1), ("created_at", -1)])
        await native.ensure_indexes()
        await native.ensure_indexes()  # a second start
        assert "owner_id_1_tags_1_created_at_-1" not in dropped
        links = {i["name"] async for i in await native.links.list_indexes()}
        texts = {i["name"] async for i in await native.texts.list_indexes()}
        assert "owner_id_1_tags_1_created_at_-1" in links
        assert "owner_id_1_created_at_-1__id_-1" in links
        assert "owner_id_1_terms_1" in texts
        assert await titles(native, 2, ["v1"]) == ["page 2-1"]
    finally:
        await auto.close()
        await native.close()

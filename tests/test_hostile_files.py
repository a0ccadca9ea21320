"""Hostile and unlucky import files (issue 22): one user's file never freezes the bot,
never half-imports, never loses a link.

Through the real Application (front role: links are recorded, nothing is captured, so
ten thousand imported bookmarks cost no browser time) against the Bot API fake and
FerretDB. Files are made here; addresses are loopback ones no test ever opens.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from bot.app import build_application, running
from bot.browser.capture import Capturer
from bot.chat.links import url_key
from bot.guard.netguard import NetGuard
from bot.library import bookmarks, import_reader
from bot.library.bookmarks import Bookmark, Parsed
from bot.library.transfer import import_links
from bot.services import Role
from storage import bulk
from storage.keys import key_id
from storage.models import LinkRecord, Status, utcnow
from storage.repository import LinkStore
from tests.conftest import INDEX_DIR, base_env, settings_for
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.pages import PageServer
from tests.harness import BotHarness
from tests.records import import_bookmarks, owned, seed_links, work_of

ROOT = str(Path(__file__).resolve().parent.parent)
DEAD = "http://127.0.0.1:1"  # nothing listens here, and a front captures nothing anyway


class FrontHarness(BotHarness):
    """The bot as `python -m bot front`: takes updates and records links; no workers."""

    async def start(self) -> None:
        self.api.release_polls(False)
        app = build_application(self.settings, role=Role.FRONT)
        self.app = await self._stack.enter_async_context(running(app, self.settings))


@pytest.fixture
async def front(
    botapi: FakeBotAPI, mongodb_uri: str, pages: PageServer, capturer: Capturer
) -> AsyncIterator[BotHarness]:
    harness = FrontHarness(botapi, settings_for(base_env(botapi.root, mongodb_uri)), pages, None)
    await harness.start()
    yield harness
    await harness.stop()


def nested_folders(depth: int) -> bytes:
    """`depth` folders, each inside the last, a link at every level (~1 MB at 10 000)."""
    lines = ["<!DOCTYPE NETSCAPE-Bookmark-file-1>", "<TITLE>Bookmarks</TITLE>", "<DL><p>"]
    for level in range(depth):
        lines += [f"<DT><H3>lvl{level}</H3>", "<DL><p>"]
        lines.append(f'<DT><A HREF="{DEAD}/n{level}">link {level}</A>')
    lines += ["</DL><p>"] * depth + ["</DL><p>"]
    return "\n".join(lines).encode()


async def import_file(
    bot: BotHarness, user: int, data: bytes, name: str, word: str = "Imported", lang: str = "en"
) -> str:
    """Send a file; the import message's closing text (its order closed)."""
    text = await bot.final_text(user, await bot.send_file(user, data, name, lang), word)
    await bot.import_closed(user)
    return text


async def stored(store: LinkStore, owner: int, count: int, timeout: float = 20) -> None:
    """Wait until `owner` has `count` links (a front records them; nothing signals it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await store.links.count_documents({"owner_id": owner}) < count:
        assert loop.time() < deadline, f"{count} links not recorded in {timeout} s"
        await asyncio.sleep(0.05)


async def consistent(store: LinkStore, owner: int) -> int:
    """Every key names a link, every link has its key; returns how many links."""
    return len(await consistent_links(store, owner))


async def consistent_links(store: LinkStore, owner: int) -> dict[str, list[str]]:
    """`consistent`, and the owner's links: their tags by URL (one scan of the links:
    FerretDB scans every record for any filter but `_id`)."""
    links = {d["_id"]: d async for d in store.links.find({"owner_id": owner})}
    keys = {d["_id"]: d["link_id"] async for d in store.keys.find({"owner_id": owner})}
    assert set(keys.values()) <= set(links), "a key without its link"
    for link_id, doc in links.items():
        assert keys.get(key_id(owner, doc["url_key"])) == link_id, "a link without its key"
    return {doc["url"]: doc["tags"] for doc in links.values()}


# --- a file never freezes the bot --------------------------------------------------


def _hold_reader(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> Path:
    """The reader's child waits at a FIFO before it starts reading; the test opens it."""
    door = tmp / "door"
    os.mkfifo(door)
    held = ["/bin/sh", "-c", 'read _ < "$1"; exec "$2" -s -m bot.library.import_reader']
    monkeypatch.setattr(import_reader, "command", lambda: [*held, "sh", door, sys.executable])
    return door


async def _child_waiting(door: Path, timeout: float = 30) -> int:
    """A write end on the FIFO once the child has opened it (a positive signal)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return os.open(door, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or loop.time() > deadline:
                raise
        await asyncio.sleep(0.02)


@pytest.mark.timeout(300)
async def test_nested_folders_file_is_read_aside_while_others_are_answered(
    front: BotHarness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """10 000 folders each inside the last, a link at every level: every link used to
    get every ancestor as a tag (50 million tags) and the event loop was busy for
    minutes. Now the file is read in a child process, each link gets the innermost
    three folders, and another user is answered while it is read."""
    data = nested_folders(10_000)
    assert 0.6e6 < len(data) < 1.1e6
    door = _hold_reader(monkeypatch, tmp_path)
    message_id = await front.send_file(42, data, "nested.html")
    reading = front.api.message_text(42, message_id)
    writer = await _child_waiting(door)
    try:
        help_text = await front.answer(43, "/help")
        assert "How to use linksnap" in help_text
        # Answered while the file is still being read: nothing stored, no count shown.
        assert front.api.message_text(42, message_id) == reading
        assert await front.store.links.count_documents({"owner_id": 42}) == 0
        os.write(writer, b"go\n")
    finally:
        os.close(writer)
    await front.api.wait_until(
        lambda: "Imported" in (front.api.message_text(42, message_id) or ""), timeout=240
    )
    done = front.api.message_text(42, message_id) or ""
    assert "10000 new links saved, 0 duplicates" in done
    tags = await consistent_links(front.store, 42)
    assert len(tags) == 10_000
    assert tags[f"{DEAD}/n9999"] == ["lvl9997", "lvl9998", "lvl9999"]
    assert tags[f"{DEAD}/n0"] == ["lvl0"]
    found = await front.answer(42, "/find #lvl9999")
    assert "link 9999" in found and "1 found" in found


async def test_others_are_answered_while_an_import_writes_its_batches(
    front: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between two batches of an import's write phase, another user's /help is answered
    before the import goes on: the import's next batch waits here until that answer is
    seen, so a write phase that held the event loop (or anything /help needs) would never
    let it arrive."""
    real = bulk.record_imported
    between, go = asyncio.Event(), asyncio.Event()
    batches: list[int] = []

    async def held(store: LinkStore, records: list[LinkRecord], **kw: Any) -> int:
        batches.append(len(records))
        if len(batches) == 2:
            between.set()
            await go.wait()
        return await real(store, records, **kw)

    monkeypatch.setattr(bulk, "record_imported", held)
    data = "\n".join(f"{DEAD}/w{i}" for i in range(600)).encode()
    message_id = await front.send_file(42, data, "links.txt")
    await asyncio.wait_for(between.wait(), 120)
    assert await front.store.links.count_documents({"owner_id": 42}) == batches[0]
    assert "How to use linksnap" in await front.answer(43, "/help")
    assert "Imported" not in (front.api.message_text(42, message_id) or "")
    go.set()
    done = await front.final_text(42, message_id, "Imported")
    assert "600 new links saved" in done and len(batches) == 3
    assert await consistent(front.store, 42) == 600


async def test_a_file_read_too_long_is_stopped_and_its_process_ended(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    door = tmp_path / "door"
    os.mkfifo(door)  # never opened for writing: the child waits for ever
    pid_file = tmp_path / "pid"
    held = ["/bin/sh", "-c", 'echo $$ > "$1"; read _ < "$2"; exec python3 -c pass']
    monkeypatch.setattr(import_reader, "command", lambda: [*held, "sh", pid_file, door])
    with pytest.raises(import_reader.TooSlow):
        await import_reader.read(b"https://a.example/", seconds=1)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


async def test_a_file_that_needs_more_memory_than_allowed_is_refused(
    front: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child limits its own address space: past it, it fails, and the user is told."""
    monkeypatch.setattr(import_reader, "MEMORY_BYTES", 64 << 20)
    small = json.dumps({"links": [f"{DEAD}/m{i}" for i in range(10)]}).encode()
    assert "10 new links saved" in await import_file(front, 42, small, "small.json")
    big = json.dumps({"links": [f"{DEAD}/m{i}" for i in range(90_000)]}).encode()
    text = await import_file(front, 42, big, "big.json", word="Nothing was imported")
    assert "needed more memory or time" in text
    assert await consistent(front.store, 42) == 10


async def test_the_reader_caps_tags_and_folder_depth() -> None:
    many = ",".join(f"t{i}" for i in range(200))
    page = (
        "<DL><p><DT><H3>a</H3><DL><p><DT><H3>b</H3><DL><p><DT><H3>c</H3><DL><p>"
        f'<DT><H3>d</H3><DL><p><DT><A HREF="https://x.example/" TAGS="{many}">x</A>'
        '<DT><A HREF="https://y.example/">y</A></DL></DL></DL></DL></DL>'
    )
    parsed = await import_reader.read(page.encode())
    x, y = parsed.bookmarks
    assert x.tags == ["b", "c", "d", *[f"t{i}" for i in range(47)]]
    assert y.tags == ["b", "c", "d"]
    assert parsed.capped == 1


# --- clear refusals ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "answer"),
    [
        ("deep.json", b"[" * 1000 + b"]" * 1000, {"en": "nested far deeper", "zh": "嵌套层级"}),
        ("deeper.json", b"[" * 100_000, {"en": "nested far deeper", "zh": "嵌套层级"}),
        (
            "latin1.html",
            '<DT><A HREF="https://a.example/">Café</A>'.encode("cp1252"),
            {"en": "Save it as UTF-8", "zh": "另存为 UTF-8"},
        ),
        (
            "binary.bin",
            b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
            {"en": "can't import that file", "zh": "不是我认识的书签文件"},
        ),
    ],
)
@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_unreadable_files_are_refused_clearly_and_store_nothing(
    front: BotHarness, name: str, data: bytes, answer: dict[str, str], lang: str
) -> None:
    """In the sender's language, saying that nothing was imported."""
    nothing = {"en": "Nothing was imported", "zh": "未导入任何内容"}
    other = "zh" if lang == "en" else "en"
    text = await import_file(front, 42, data, name, word=nothing[lang], lang=lang)
    assert answer[lang] in text and nothing[other] not in text
    assert "Something went wrong" not in text
    assert await front.store.links.count_documents({}) == 0
    assert await front.store.keys.count_documents({}) == 0


@pytest.mark.parametrize("piece", [b"<a ", b"<!--<a ", b"</a ", b"<a href='x ", b"<? "])
async def test_markup_that_never_closes_is_read_in_linear_time(piece: bytes) -> None:
    """About 1 MB of a construct that never ends: Python 3.11.7's HTMLParser needs 34 s
    for 30 KB of `<a ` (and longer the more there is); the bot's reader is done well
    inside its time limit, having found nothing."""
    data = b"<!DOCTYPE NETSCAPE-Bookmark-file-1><DL><p><DT>" + piece * (1_000_000 // len(piece))
    with pytest.raises(bookmarks.NoLinks):
        await import_reader.read(data)


async def test_too_many_entries_are_refused() -> None:
    text = "\n".join(f"https://e{i}.example/" for i in range(bookmarks.MAX_ENTRIES + 1))
    with pytest.raises(bookmarks.TooMany):
        await import_reader.read(text.encode())


# --- never half-imports, never loses a link ------------------------------------------


def surrogate_file() -> bytes:
    """What the bot's JSON export looks like, one title holding a lone surrogate (a JSON
    file can: `\\ud800`; no database can store it)."""
    links = [{"url": f"{DEAD}/s{i}", "title": f"title {i}", "tags": ["s"]} for i in range(6)]
    links[3]["title"] = "broken \ud800 title"
    return json.dumps({"format": "linksnap", "version": 1, "links": links}).encode()


async def test_a_lone_surrogate_is_cleaned_and_keys_match_links(front: BotHarness) -> None:
    data = surrogate_file()
    assert b"\\ud800" in data
    done = await import_file(front, 42, data, "export.json")
    assert "6 new links saved, 0 duplicates" in done
    assert await consistent(front.store, 42) == 6
    broken = await front.store.links.find_one({"owner_id": 42, "url": f"{DEAD}/s3"})
    assert broken is not None and broken["title"] == "broken \ufffd title"
    assert "6 found" in await front.answer(42, "/find #s")


async def test_keys_left_by_the_earlier_bug_are_no_duplicates(front: BotHarness) -> None:
    """A half-failed import used to leave keys without links: the corrected file then
    imported "0 new links, 6 duplicates skipped" and the links could never be saved."""
    for i in range(6):
        url = f"{DEAD}/s{i}"
        await front.store.keys.insert_one(
            {"_id": key_id(42, url_key(url)), "link_id": LinkRecord(0, 0, url, url).id}
        )
    done = await import_file(front, 42, surrogate_file(), "export.json")
    assert "6 new links saved, 0 duplicates" in done
    assert await consistent(front.store, 42) == 6
    again = await import_file(front, 42, surrogate_file(), "export.json")
    assert "0 new links saved, 6 duplicates" in again


async def test_a_batch_that_fails_takes_back_what_it_wrote(
    front: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second batch fails after its links and keys are written: none of it stays, the
    user is told how far it got, and the same file sent again imports the rest."""
    real = bulk._key
    calls = 0

    async def failing_second(store: LinkStore, links: list[LinkRecord]) -> None:
        nonlocal calls
        calls += 1
        await real(store, links)
        if calls == 2:
            raise OperationFailure("the database gave up")

    monkeypatch.setattr(bulk, "_key", failing_second)
    data = "\n".join(f"{DEAD}/b{i}" for i in range(600)).encode()
    text = await import_file(front, 42, data, "links.txt", word="stopped")
    assert "stopped after 250 of 600" in text
    assert await consistent(front.store, 42) == 250
    assert len(await work_of(front.store, 42)) == 250
    assert await front.store.db[bulk.BATCHES].count_documents({}) == 0

    monkeypatch.setattr(bulk, "_key", real)
    done = await import_file(front, 42, data, "links.txt")
    assert "350 new links saved, 250 duplicates" in done
    assert await consistent(front.store, 42) == 600


_CHILD = """
import asyncio, sys
from bot.library.bookmarks import Bookmark, Parsed
from bot.guard.netguard import NetGuard
from bot.library.transfer import import_links
from storage import bulk
from storage.queue import claims
from storage.repository import LinkStore
from storage.writes import LinkWrites

uri, index, hook, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
real = bulk.insert_many_new
seen = 0

async def held(coll, docs):
    global seen
    if coll.name == hook:
        seen += 1
        if seen == 2:  # the second batch: stop here until killed
            print("HELD", flush=True)
            await asyncio.Event().wait()
    return await real(coll, docs)

bulk.insert_many_new = held
claims.insert_many_new = held  # an import's work entries wait in the queue's backlog
real_links = LinkWrites.insert_many

async def held_links(self, docs, first=None):  # links go through the announcing writer
    global seen
    if hook == "links":
        seen += 1
        if seen == 2:
            print("HELD", flush=True)
            await asyncio.Event().wait()
    return await real_links(self, docs, first)

LinkWrites.insert_many = held_links

async def main():
    store = LinkStore.connect(uri, index_path=index)
    marks = [Bookmark(url=f"http://127.0.0.1:1/k{i}", tags=["k"]) for i in range(count)]
    await import_links(store, NetGuard(["127.0.0.1"]), Parsed("text", marks, 0),
                       owner_id=42, chat_id=42, lang="en", on_progress=lambda c: None)

asyncio.run(main())
"""


@pytest.mark.parametrize("hook", ["links", "work_backlog", "link_keys"])
async def test_a_kill_mid_import_leaves_no_key_without_its_link(
    mongodb_uri: str, tmp_path: Path, hook: str
) -> None:
    """An import killed while it writes a batch (before its links, before their work
    entries, or before their keys): no key is ever without its link; the sweep finishes
    the cut-off batch (every link it wrote is queued and gets its key) and the file sent
    again imports the rest."""
    store = LinkStore.connect(mongodb_uri, index_dir=INDEX_DIR)
    await store.ensure_indexes()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD,
        mongodb_uri,
        str(tmp_path / "child.sqlite"),
        hook,
        "600",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 60)
        assert line.strip() == b"HELD"
        child.kill()  # ours, by its pid
        await child.wait()
        written = await consistent_keys(store, 42)
        assert written >= 250  # the first batch, and perhaps the second's links

        later = utcnow() + bulk.REPAIR_AFTER + timedelta(seconds=1)
        await bulk.repair_imports(store, now=later)  # what the sweep job runs
        assert await consistent(store, 42) == written
        assert await store.db[bulk.BATCHES].count_documents({}) == 0
        assert len(await work_of(store, 42)) == written  # no work entry without its link

        marks = [Bookmark(url=f"{DEAD}/k{i}", tags=["k"]) for i in range(600)]
        counts = await import_bookmarks(store, marks, 42)
        assert (counts.saved, counts.duplicates) == (600 - written, written)
        assert await consistent(store, 42) == 600
        assert (await store.find(42, ["k"])).total == 600
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await store.close()


async def consistent_keys(store: LinkStore, owner: int) -> int:
    """No key without its link (links may lack keys until repaired); how many links."""
    links = {d["_id"] async for d in store.links.find({"owner_id": owner}, {"_id": 1})}
    async for key in store.keys.find({"owner_id": owner}):
        assert key["link_id"] in links, "a key without its link"
    return len(links)


# --- formats and tags ----------------------------------------------------------------


async def test_an_export_whose_note_holds_dt_imports(front: BotHarness) -> None:
    """Told apart by parsing: a JSON export mentioning `<DT>` in its first 2 KB used to be
    read as bookmark HTML ("I found no web links")."""
    record = owned(
        42,
        f"{DEAD}/dt",
        title="Netscape notes",
        note="the format: <DT><A HREF=...> inside <DL><p>",
        tags=["format"],
        status=Status.DONE,
    )
    assert await seed_links(front.store, [record]) == 1
    start = len(front.api.calls)
    front.send(42, "/export")
    await front.api.wait_until(
        lambda: len([c for c in front.api.calls[start:] if c.method == "sendDocument"]) == 2
    )
    exported = [c for c in front.api.calls[start:] if c.method == "sendDocument" and c.ok]
    files = [front.api.download(c.result["document"]["file_id"]) for c in exported]
    json_file = next(f for f in files if f.lstrip().startswith(b"{"))
    assert b"<DT>" in json_file[:2048]
    done = await import_file(front, 43, json_file, "linksnap.json")
    assert "1 new links saved" in done
    [back] = await front.records(43)
    assert (back.url, back.note, back.tags) == (record.url, record.note, ["format"])


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (f"[Example]({DEAD}/md-a)\n[Other page]({DEAD}/md-b)\n", "links.md"),
        (f"[1] {DEAD}/md-a\n[2] {DEAD}/md-b\n", "notes.txt"),
    ],
)
async def test_a_text_opening_with_a_bracket_is_read_as_text_not_refused_as_json(
    front: BotHarness, body: str, name: str
) -> None:
    """A Markdown link list starts with `[` but was never JSON: its links are imported
    (it used to be refused "Malformed JSON")."""
    done = await import_file(front, 42, body.encode(), name)
    assert "2 new links saved" in done
    assert sorted(r.url for r in await front.records(42)) == [f"{DEAD}/md-a", f"{DEAD}/md-b"]


async def test_a_json_file_cut_short_is_still_refused_as_json(front: BotHarness) -> None:
    cut = json.dumps({"format": "linksnap", "links": [{"url": f"{DEAD}/a"}]})[:-3]
    done = await import_file(front, 42, cut.encode(), "linksnap.json", word="Nothing was")
    assert "couldn't read that JSON file" in done and await front.records(42) == []


async def test_the_same_tags_typed_and_imported_are_stored_the_same(front: BotHarness) -> None:
    typed = ["#a&b", "#😀", "#ab\u202ecd", "#ＡＩ", "#C++"]
    url = f"{DEAD}/typed"
    text = f"{url} {' '.join(typed)}"
    # The entities the fake detects as Telegram does: `#a`, `#ab`, `#ＡＩ`, `#C`; none on `#😀`.
    sent = front.send(42, text)
    assert [e["type"] for e in sent["entities"]] == ["url"] + ["hashtag"] * 4
    await stored(front.store, 42, 1)
    [by_hand] = await front.records(42)
    assert by_hand.tags == ["a&b", "😀", "abcd", "ai", "c++"]

    page = (
        "<!DOCTYPE NETSCAPE-Bookmark-file-1><DL><p>"
        f'<DT><A HREF="{DEAD}/imported" TAGS="{",".join(typed)}">x</A></DL>'
    )
    await import_file(front, 42, page.encode(), "bookmarks.html")
    imported = next(r for r in await front.records(42) if r.url.endswith("/imported"))
    assert imported.tags == by_hand.tags
    # And the bot's own export of them comes back the same.
    start = len(front.api.calls)
    front.send(42, "/export")
    await front.api.wait_until(
        lambda: len([c for c in front.api.calls[start:] if c.method == "sendDocument"]) == 2
    )
    exported = [c for c in front.api.calls[start:] if c.method == "sendDocument"]
    for user, call in enumerate(exported, start=51):
        data = front.api.download(call.result["document"]["file_id"])
        name = call.result["document"]["file_name"]
        assert "2 new links saved" in await import_file(front, user, data, name)
        assert {tuple(r.tags) for r in await front.records(user)} == {tuple(by_hand.tags)}


async def test_tags_per_link_are_capped_on_import_and_said(front: BotHarness) -> None:
    many = ",".join(f"t{i}" for i in range(200))
    page = f'<DL><p><DT><A HREF="{DEAD}/many" TAGS="{many}">many</A></DL>'
    done = await import_file(front, 42, page.encode(), "many.html")
    assert "1 new links saved" in done and "1 of them had more than 50 tags" in done
    [record] = await front.records(42)
    assert record.tags == [f"t{i}" for i in range(50)]


async def test_importing_a_bookmark_class_directly_still_normalises() -> None:
    """Bookmarks made in code (not read from a file) go through the normaliser too."""
    marks = [Bookmark(url="https://x.example/", tags=["#AI", "a\u202eb", *map(str, range(60))])]
    parsed = Parsed("text", marks, 0)
    recorded: list[LinkRecord] = []

    async def keep(store: Any, records: list[LinkRecord], **kw: Any) -> int:
        recorded.extend(records)
        return len(records)

    async def no_repair(*args: Any, **kwargs: Any) -> int:
        return 0

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bulk, "record_imported", keep)
        mp.setattr(bulk, "repair_imports", no_repair)
        await import_links(
            None,  # type: ignore[arg-type]
            NetGuard([]),
            parsed,
            owner_id=1,
            chat_id=1,
            lang="en",
            on_progress=lambda c: None,
        )
    [record] = recorded
    assert record.tags[:2] == ["ai", "ab"] and len(record.tags) == 50


async def test_stored_tags_are_migrated_through_the_one_normaliser(
    mongodb_uri: str, tmp_path: Path
) -> None:
    """Tags stored before the one normaliser (a right-to-left override kept, 60 on one
    link), and a key whose link is missing, are put right once at start."""
    from bot.tags import normalise
    from storage.migrate import migrate_tags
    from storage.trash import Trash

    store = LinkStore.connect(mongodb_uri, index_path=tmp_path / "index.sqlite")
    try:
        await store.ensure_indexes()
        old = ["AI", "a\u202eb", "ＡＩ", "Tech News", *(f"n{i}" for i in range(60))]
        urls = [f"{DEAD}/old", f"{DEAD}/clean", f"{DEAD}/hidden"]
        records = [
            owned(42, u, tags=t) for u, t in zip(urls, [old, ["fine"], ["x\u2066y"]], strict=True)
        ]
        assert await seed_links(store, records) == 3
        await Trash(store).hide(42, records[2].id, keep_for=timedelta(minutes=1))
        stale = key_id(42, url_key(f"{DEAD}/lost"))
        await store.keys.insert_one({"_id": stale, "link_id": LinkRecord(0, 0, "", "").id})
        assert (await store.find(42, ["ab"])).total == 0

        assert await migrate_tags(store.db, store.writes, normalise) == 1
        migrated = await store.get(42, records[0].id)
        assert migrated is not None
        assert migrated.tags == ["ai", "ab", "tech_news", *(f"n{i}" for i in range(47))]
        assert (await store.find(42, ["ab"])).total == 1  # the listing follows
        assert await store.keys.find_one({"_id": stale}) is None
        assert await consistent(store, 42) == 2
        back = await Trash(store).restore(42, records[2].id)
        assert back.tags == ["xy"]
        assert await migrate_tags(store.db, store.writes, normalise) == 0  # once
    finally:
        await store.close()

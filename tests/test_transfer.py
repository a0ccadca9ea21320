"""Export and import: the file formats, and through the real Application and FerretDB."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from bot.chat.links import url_key
from bot.library import bookmarks
from bot.library.bookmarks import Malformed, NoLinks, UnknownFormat
from storage import bulk
from storage.models import LinkRecord, Status
from tests.fakes.botapi import Call
from tests.fakes.pages import PageServer
from tests.harness import BotHarness
from tests.records import import_bookmarks, owned, seed_links, work_of

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

# --- formats -------------------------------------------------------------------------

CHROME = """<!DOCTYPE NETSCAPE-Bookmark-file-1>
<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=UTF-8">
<TITLE>Bookmarks</TITLE>
<H1>Bookmarks</H1>
<DL><p>
    <DT><H3 ADD_DATE="1" PERSONAL_TOOLBAR_FOLDER="true">Bookmarks bar</H3>
    <DL><p>
        <DT><A HREF="https://a.example/1" ADD_DATE="1700000000">One &amp; only</A>
        <DT><H3>Dev Tools</H3>
        <DL><p>
            <DT><A HREF="https://a.example/2" ADD_DATE="1700000001" TAGS="py,Web Dev">Two</A>
            <DD>why I kept it
&lt;with&gt; an escaped tag
            <DT><A HREF="javascript:alert(1)">bookmarklet</A>
        </DL><p>
        <DT><A HREF="https://a.example/3">Three</A>
    </DL><p>
    <DT><H3>读书</H3>
    <DL><p>
        <DT><A HREF="https://a.example/2">Two again</A>
    </DL><p>
</DL><p>
"""


def test_netscape_folders_tags_notes_and_dates() -> None:
    parsed = bookmarks.parse(CHROME.encode())
    assert parsed.kind == "Netscape HTML"
    by_url = {b.url: b for b in parsed.bookmarks}
    assert list(by_url) == ["https://a.example/1", "https://a.example/2", "https://a.example/3"]
    one, two, three = by_url.values()
    assert one.title == "One & only" and one.tags == []  # the toolbar is no tag
    assert one.created_at == datetime.fromtimestamp(1700000000, UTC)
    assert two.tags == ["dev_tools", "py", "web_dev", "读书"]  # folders, TAGS, both folders
    assert two.note == "why I kept it\n<with> an escaped tag"
    assert three.tags == [] and three.note == ""
    assert parsed.invalid == 1 and parsed.repeats == 1 and parsed.entries == 4


def test_pocket_raindrop_karakeep_csv_json_text() -> None:
    pocket_html = (
        "<!DOCTYPE html><html><body><h1>Unread</h1><ul>"
        '<li><a href="https://p.example/a" time_added="1600000000" tags="x,y">A</a></li>'
        "</ul></body></html>"
    )
    [a] = bookmarks.parse(pocket_html.encode()).bookmarks
    assert a.tags == ["x", "y"] and a.created_at and a.created_at.year == 2020
    raindrop = (
        "id,title,note,excerpt,url,folder,tags,created\n"
        '1,Rain,my note,,https://r.example/1,Work/AI,"ml, Deep Learning",2024-01-02T03:04:05.000Z\n'
        "2,Bad,,,ftp://r.example/2,,,\n"
    )
    parsed = bookmarks.parse(raindrop.encode())
    assert parsed.kind == "CSV" and parsed.invalid == 1
    [r] = parsed.bookmarks
    assert r.tags == ["work", "ai", "ml", "deep_learning"] and r.note == "my note"
    assert r.created_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    pocket_csv = "title,url,time_added,tags,status\nP,https://p.example/c,1700000000,a|b,unread\n"
    [c] = bookmarks.parse(pocket_csv.encode()).bookmarks
    assert c.tags == ["a", "b"] and c.title == "P"
    karakeep = {
        "bookmarks": [
            {
                "createdAt": 1700000000,
                "title": "K",
                "tags": ["Self Hosted"],
                "content": {"type": "link", "url": "https://k.example/"},
                "note": "n",
            }
        ]
    }
    [k] = bookmarks.parse(json.dumps(karakeep).encode()).bookmarks
    assert (k.url, k.tags, k.note) == ("https://k.example/", ["self_hosted"], "n")
    text = "see https://t.example/a, and (https://t.example/b).\nhttps://t.example/a again"
    parsed = bookmarks.parse(text.encode())
    assert [b.url for b in parsed.bookmarks] == ["https://t.example/a", "https://t.example/b"]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", UnknownFormat),
        (b"PK\x03\x04\x14\x00", UnknownFormat),
        (b"\xff\xfe\xfd not text \xc3\x28", UnknownFormat),
        (b'{"format": "linksnap", "links": [{"url": "https://x.example/"', Malformed),
        (b'{"something": "else"}', Malformed),
        (b"just some words, no links", NoLinks),
        (b"<!DOCTYPE NETSCAPE-Bookmark-file-1><DL><p></DL>", NoLinks),
    ],
)
def test_files_that_cannot_be_imported(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        bookmarks.parse(data)


def test_exports_read_back() -> None:
    docs = [
        {
            "_id": "x",
            "url": "https://e.example/?a=1&b=<2>",
            "title": 'Quote " and <b>',
            "tags": ["a", "技术"],
            "note": "line one\nline & two",
            "created_at": T0,
        }
    ]
    page = bookmarks.NETSCAPE_HEAD + bookmarks.netscape_entry(docs[0]) + bookmarks.NETSCAPE_TAIL
    [back] = bookmarks.parse(page.encode()).bookmarks
    assert (back.url, back.title, back.tags, back.note) == (
        "https://e.example/?a=1&b=<2>",
        'Quote " and <b>',
        ["a", "技术"],
        "line one\nline & two",
    )
    assert back.created_at == T0
    body = bookmarks.json_head(T0) + bookmarks.json_entry(docs[0], first=True) + bookmarks.JSON_TAIL
    assert json.loads(body)["links"][0]["created_at"] == T0.isoformat()
    [again] = bookmarks.parse(body.encode()).bookmarks
    assert (again.title, again.tags, again.note) == (back.title, back.tags, back.note)


# --- through the bot -----------------------------------------------------------------


async def seed(bot: BotHarness, owner: int, n: int) -> list[LinkRecord]:
    records = []
    for i in range(n):
        url = bot.pages.url(f"/article/seed{i}?q=a&b")  # loopback: a later capture resolves nothing
        records.append(
            owned(
                owner,
                url,
                tags=["seed", f"n{i % 3}"],
                note=f"note {i} <kept> & 中文" if i % 2 else "",
                title=f"Seed {i} 标题",
                status=Status.DONE,
                summary=f"summary {i}",
                created_at=T0 + timedelta(minutes=i),
            )
        )
    assert await seed_links(bot.store, records) == n
    return records


def documents_to(bot: BotHarness, chat_id: int, since: int) -> list[Call]:
    return [
        c
        for c in bot.api.calls[since:]
        if c.method == "sendDocument" and c.ok and c.params["chat_id"] == chat_id
    ]


async def import_file(
    bot: BotHarness, user: int, data: bytes, name: str, word: str = "Imported"
) -> tuple[str, int]:
    """Send a file; the import message's closing text (its order closed), and its id."""
    message_id = await bot.send_file(user, data, name)
    text = await bot.final_text(user, message_id, word)
    await bot.import_closed(user)
    return text, message_id


def summary(record: LinkRecord) -> tuple[str, str | None, list[str], str]:
    return record.url, record.title, sorted(record.tags), record.note


async def test_export_then_import_into_fresh_users(bot: BotHarness) -> None:
    mine = await seed(bot, 42, 7)
    start = len(bot.api.calls)
    bot.send(42, "/export")
    await bot.api.wait_until(lambda: len(documents_to(bot, 42, start)) == 2, timeout=30)
    html_doc, json_doc = documents_to(bot, 42, start)
    assert html_doc.result["document"]["file_name"].endswith(".html")
    assert json_doc.result["document"]["file_name"].endswith(".json")
    html_data = bot.api.download(html_doc.result["document"]["file_id"])
    json_data = bot.api.download(json_doc.result["document"]["file_id"])
    assert html_data.startswith(b"<!DOCTYPE NETSCAPE-Bookmark-file-1>")
    exported = json.loads(json_data)
    assert exported["format"] == "linksnap" and len(exported["links"]) == 7
    assert {"summary", "status", "created_at", "tags", "note", "id"} <= set(exported["links"][0])

    want = sorted(summary(r) for r in mine)
    done, _ = await import_file(bot, 43, html_data, "bookmarks.html")
    assert "7 new links saved, 0 duplicates" in done
    assert sorted(summary(r) for r in await bot.records(43)) == want
    done, _ = await import_file(bot, 44, json_data, "linksnap.json")
    assert "7 new links saved" in done
    got = await bot.records(44)
    assert sorted(summary(r) for r in got) == want
    assert sorted(r.created_at for r in got) == sorted(r.created_at for r in mine)
    assert {r.summary for r in got} == {r.summary for r in mine}
    marked = await bot.store.links.find_one({"owner_id": 44})
    assert marked is not None and marked["imported"] is True
    queued = await work_of(bot.store, 44)
    assert queued and all(w["prio"] == 1 for w in queued)  # behind every link sent by hand
    found = await bot.answer(44, "/find #n1 标题")
    assert "Seed 1 标题" in found

    # The same file again: all duplicates, nothing doubled.
    done, _ = await import_file(bot, 44, json_data, "linksnap.json")
    assert "0 new links saved, 7 duplicates" in done
    assert len(await bot.records(44)) == 7


def big_bookmark_file(bot: BotHarness, count: int, repeats: int) -> bytes:
    """`count` entries in nested folders, the last `repeats` of them naming earlier pages."""
    lines = ["<!DOCTYPE NETSCAPE-Bookmark-file-1>", "<TITLE>Bookmarks</TITLE>", "<DL><p>"]
    unique = count - repeats
    per_folder = 50
    for start in range(0, count, per_folder):
        top, sub = f"Topic {start // 1000}", f"Part {start // per_folder}"
        lines += [f"<DT><H3>{top}</H3>", "<DL><p>", f"<DT><H3>{sub}</H3>", "<DL><p>"]
        for i in range(start, min(start + per_folder, count)):
            n = i if i < unique else i - unique  # the last ones repeat the first pages
            url = bot.pages.url(f"/article/imp{n}")
            lines.append(f'<DT><A HREF="{url}" ADD_DATE="{1700000000 + n}">Imported {n}</A>')
        lines += ["</DL><p>", "</DL><p>"]
    lines.append("</DL><p>")
    return "\n".join(lines).encode()


async def imported_captured(bot: BotHarness, owner: int) -> int:
    """Imported links of `owner` whose capture has finished."""
    past = [str(s) for s in (Status.CAPTURED, Status.DELIVERING, Status.DONE)]
    query = {"owner_id": owner, "imported": True, "status": {"$in": past}}
    return await bot.store.links.count_documents(query)


@pytest.mark.timeout(300)  # 2 000 links recorded while the workers capture them
async def test_two_thousand_bookmarks_with_progress_while_a_hand_link_goes_first(
    bot: BotHarness, late_answers: dict[str, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    # How fast a big import goes is for the bench (benchmarks/); here what the user sees.
    # Imported pages answer after 5 s: the capture slots, busy with the import throughout,
    # wait rather than work; the order of openings (asserted below) is the same.
    late_answers["/article/imp"] = 5.0

    # The import goes on past its first batch only once the user has seen a count: on a
    # fast machine all 2 000 were once saved before the chat's next turn, and the message
    # went from "reading" straight to "Imported" (right for the user, not what this tests).
    async def count_shown() -> None:
        await bot.api.wait_until(
            lambda: any(
                " / 2000 saved" in c.params["text"]
                for c in bot.api.calls_of("editMessageText", 42, ok_only=True)
            ),
            timeout=60,
        )

    before_second_batch(monkeypatch, count_shown)
    data = big_bookmark_file(bot, 2000, 100)
    start = len(bot.api.calls)
    bot.api.send_document(42, data, "bookmarks.html")
    reply = await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and c.ok and c.params["chat_id"] == 42,
        timeout=30,
        since=start,
    )
    progress_id = reply.result["message_id"]
    # Once the first imported links are queued, the user sends a link by hand.
    await bot.api.wait_until(
        lambda: "saved" in (bot.api.message_text(42, progress_id) or ""), timeout=60
    )
    hand_url = bot.pages.url("/article/by-hand")
    by_hand = bot.send(42, hand_url + " #now")
    await bot.wait_queued(42, hand_url)
    # From the moment the hand link has its turn, in the order pages were opened (the
    # page server keeps first hits in order): an order, not a speed.
    started = {p for p in bot.pages.hits if p.startswith("/article/imp")}
    assert await bot.finished(by_hand, timeout=90) == "👌"
    assert len(bot.photos_for(by_hand)) == 1  # imported links post nothing into the chat
    # Its photo came while the import went on beside it, not after it: once the hand link
    # is queued, no imported link starts before it, bar a claim already under way in
    # each of the two capture slots (a hand link queued behind the import would see
    # thousands).
    order = list(bot.pages.hits)
    jumped = [
        p
        for p in order[: order.index("/article/by-hand")]
        if p.startswith("/article/imp") and p not in started
    ]
    assert len(jumped) <= 2, jumped
    assert len([p for p in order if p.startswith("/article/imp")]) < 1900
    done = await bot.final_text(42, progress_id, "Imported", timeout=240)
    assert "1900 new links saved, 100 duplicates" in done
    edits = [
        c
        for c in bot.api.calls[start:]
        if c.method == "editMessageText" and c.ok and c.params.get("message_id") == progress_id
    ]
    # At least one count, then done. (A count may replace the one before it unseen: the
    # message is edited at the chat's pace, with the newest count when its turn comes.)
    assert len(edits) >= 2 and "Imported" in edits[-1].params["text"]
    shown = [e.params["text"] for e in edits[:-1] if "saved" in e.params["text"]]
    assert shown and all(" / 2000 saved" in t for t in shown)
    # Read once: each query here is a scan of the owner's 2 000 records in FerretDB.
    query = {"owner_id": 42, "imported": True}
    imported = {d["url"]: d["tags"] async for d in bot.store.links.find(query, ["url", "tags"])}
    assert len(imported) == 1900
    # The first is also among the repeats (in the last folder): both folders' tags.
    assert imported[bot.pages.url("/article/imp0")] == ["topic_0", "part_0", "topic_1", "part_38"]
    assert imported[bot.pages.url("/article/imp1899")] == ["topic_1", "part_37"]
    # What /tags lists (read from the store: the chat is busy with the capture replies).
    counts = {c.tag: c.count for c in await bot.store.tag_counts(42, limit=500)}
    assert counts["topic_0"] == 1000 and counts["part_0"] == 50 and counts["now"] == 1

    # Imported links are captured silently: the only photo in the chat is the hand link's.
    for _ in range(600):  # the import goes on being captured, silently
        if await imported_captured(bot, 42) > 0:
            break
        await asyncio.sleep(0.1)
    assert await imported_captured(bot, 42) > 0
    assert bot.api.calls_of("sendPhoto", 42, ok_only=True) == bot.photos_for(by_hand)
    # An imported link sent by hand before its turn: captured next, and its photo answers.
    late = bot.send(42, bot.pages.url("/article/imp1899"))
    assert await bot.finished(late, timeout=90) == "👌"
    [photo] = bot.photos_for(late)
    assert "Article imp1899" in photo.result["caption"]
    assert "🗑 Delete" in str(photo.params["reply_markup"])


async def test_imported_links_are_captured_silently_and_shown_when_sent_by_hand(
    bot: BotHarness,
) -> None:
    urls = [bot.pages.url(f"/article/quiet{i}") for i in range(2)]
    dead = "http://127.0.0.1:1/gone"  # nothing listens there: its capture fails
    text, _ = await import_file(bot, 42, "\n".join([*urls, dead]).encode(), "links.txt")
    assert "3 new links saved" in text
    for _ in range(600):
        records = await bot.records(42)
        if all(r.status in (Status.DONE, Status.FAILED) for r in records):
            break
        await asyncio.sleep(0.1)
    by_url = {r.url: r for r in records}
    assert by_url[dead].status == Status.FAILED
    for url in urls:  # captured and kept, never posted
        record = by_url[url]
        assert record.status == Status.DONE
        assert record.screenshot is not None and record.screenshot.gridfs_id is not None
        assert record.screenshot.file_id is None and record.reply_message_id is None
    assert not bot.api.calls_of("sendPhoto", 42, ok_only=True)

    sent = bot.send(42, urls[0] + " #later")
    assert await bot.finished(sent) == "👌"
    [photo] = bot.photos_for(sent)  # the kept screenshot, not a second capture
    assert bot.pages.hits["/article/quiet0"] == 1
    assert "Article quiet0" in photo.result["caption"] and "#later" in photo.result["caption"]
    [shown] = [r for r in await bot.records(42) if r.url == urls[0]]
    assert shown.tags == ["later"] and shown.screenshot is not None
    assert shown.screenshot.file_id == photo.result["photo"][-1]["file_id"]
    assert len(bot.api.calls_of("sendPhoto", 42, ok_only=True)) == 1
    # Nor a line for the dead bookmark: the only text is the import's progress message.
    told = [c.params["text"] for c in bot.api.calls_of("sendMessage", 42, ok_only=True)]
    assert len(told) == 1 and "links.txt" in told[0], told


@pytest.mark.parametrize(
    ("name", "data", "answer"),
    [
        (
            "broken.json",
            b'{"format": "linksnap", "links": [{"url": "https://x.example/"',
            "couldn't read that JSON file: line 1",
        ),
        ("paper.pdf", b"%PDF-1.7\n" + b"x" * 2000, "can't import that file"),
        ("notes.txt", "没有链接的笔记".encode(), "found no web links"),
    ],
)
async def test_bad_files_get_a_clear_reply_and_store_nothing(
    bot: BotHarness, name: str, data: bytes, answer: str
) -> None:
    text, _ = await import_file(bot, 42, data, name, word="Nothing was imported")
    assert answer in text
    assert await bot.records(42) == []


async def test_thirty_megabytes_is_refused_before_download(bot: BotHarness) -> None:
    start = len(bot.api.calls)
    huge = bot.api.send_document(42, b"<DL>" + b" " * (30 * 2**20), "huge.html")
    reply = await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and c.ok and c.params["chat_id"] == 42,
        timeout=20,
        since=start,
    )
    assert "30 MB" in reply.params["text"] and "20 MB" in reply.params["text"]
    await bot.handled(huge)  # its handler is done: nothing more will come of it
    assert not [c for c in bot.api.calls[start:] if c.method == "getFile"]
    assert await bot.records(42) == []


async def test_chinese_user_gets_chinese_import_replies(bot: BotHarness) -> None:
    start = len(bot.api.calls)
    bot.api.send_document(42, b"%PDF-1.4", "a.pdf", language_code="zh-hans")
    reply = await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and c.ok and c.params["chat_id"] == 42,
        since=start,
    )
    text = await bot.final_text(42, reply.result["message_id"], "未导入")
    assert "无法导入这个文件" in text


async def test_large_export_shows_progress(bot: BotHarness) -> None:
    await seed(bot, 42, 1200)
    start = len(bot.api.calls)
    bot.send(42, "/export")
    await bot.api.wait_until(lambda: len(documents_to(bot, 42, start)) == 2, timeout=60)
    progress = next(
        c for c in bot.api.calls[start:] if c.method == "sendMessage" and c.params["chat_id"] == 42
    )
    assert "Exporting… 0 / 1200" in progress.params["text"]
    text = await bot.final_text(42, progress.result["message_id"], "Exported")
    assert text == "📤 Exported 1200 links."
    json_doc = documents_to(bot, 42, start)[1]
    exported = json.loads(bot.api.download(json_doc.result["document"]["file_id"]))
    assert len({link["url"] for link in exported["links"]}) == 1200


async def test_database_failing_mid_import_says_how_far_it_got(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def gone() -> None:
        raise ServerSelectionTimeoutError("database gone")

    before_second_batch(monkeypatch, gone)
    data = big_bookmark_file(bot, 600, 0)
    text, _ = await import_file(bot, 42, data, "big.html", word="stopped")
    assert "stopped after 250 of 600" in text and "send the file again" in text
    assert len(await bot.records(42)) == 250


async def test_import_command_explains(bot: BotHarness) -> None:
    assert "send me the file" in await bot.answer(42, "/import")


def listed(r: LinkRecord) -> tuple[Any, ...]:
    """What the listing shows of a link."""
    return (r.id, r.url, r.url_key, r.title, r.status, r.tags, r.note, r.created_at, r.owner_id)


async def test_imported_links_in_the_index_match_a_rebuild(
    mongodb_uri: str, pages: PageServer, tmp_path: Any
) -> None:
    """The import hands its documents to the /find index as written; a rebuild from the
    database must list exactly the same. No bot runs here: no worker captures the
    imported links between the two reads, so every listed field must agree."""
    from bot.library.bookmarks import Bookmark
    from storage.repository import LinkStore

    store = LinkStore.connect(mongodb_uri, index_path=tmp_path / "written.sqlite")
    fresh = LinkStore.connect(mongodb_uri, index_path=tmp_path / "rebuilt.sqlite")
    try:
        await store.ensure_indexes()
        seeded = [
            LinkRecord(
                owner_id=42,
                chat_id=42,
                url=pages.url(f"/article/seed{i}"),
                url_key=url_key(pages.url(f"/article/seed{i}")),
                tags=["seed"],
                title=f"Seed {i} 标题",
                status=Status.DONE,
                created_at=T0 + timedelta(minutes=i),
            )
            for i in range(3)
        ]
        assert await seed_links(store, seeded) == 3
        # The index is built and current before the import, as in a running bot: the
        # import's links then go into it as written, not through a replay.
        assert (await store.find(42, [])).total == 3
        marks = [
            Bookmark(url=pages.url(f"/article/ix{i}"), title=f"网页 {i}", tags=[f"g{i % 7}"])
            for i in range(600)
        ]
        counts = await import_bookmarks(store, marks, 42)
        assert counts.saved == 600
        for tags, words, total in (
            ([], "", 603),
            (["g3"], "", 86),
            (["seed"], "标题", 3),
            (
                [],
                "网页",
                600,
            ),
        ):
            a = await store.find(42, tags, words, page_size=1000)
            b = await fresh.find(42, tags, words, page_size=1000)
            assert a.total == b.total == total, (tags, words)
            assert [listed(r) for r in a.items] == [listed(r) for r in b.items]
    finally:
        await store.close()
        await fresh.close()


def before_second_batch(
    monkeypatch: pytest.MonkeyPatch, step: Callable[[], Awaitable[None]]
) -> None:
    """`step` runs before an import records its second batch (it may raise)."""
    real = bulk.record_imported
    batches = 0

    async def recording(*args: Any, **kwargs: Any) -> int:
        nonlocal batches
        batches += 1
        if batches == 2:
            await step()
        return await real(*args, **kwargs)

    monkeypatch.setattr(bulk, "record_imported", recording)

"""A bookmark file's import survives a kill after Telegram was told the file arrived.

The update bringing a file is confirmed at most a few seconds after it was fetched
(bot/chat/receipts.py), while a large file takes longer to import: killed then, the
process had said "reading …" and Telegram never sends the file again. The import is
written down first (storage/queue/imports.py) and the next start finishes it, in the
same progress message, counting what the first try saved as saved.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from storage.models import utcnow
from storage.queue.imports import MAX_TRIES, ImportOrder, ImportOrders
from storage.repository import LinkStore
from tests.conftest import INDEX_DIR
from tests.fakes.botapi import FakeBotAPI
from tests.harness import BotHarness
from tests.processes import bot_env, print_logs
from tests.test_hostile_files import consistent, stored

DEAD = "http://127.0.0.1:1"  # nothing listens here: captures of the links fail at once

# `python -m bot` with a short import lease and resume interval (the test waits for both),
# and, in the first process, its import held until it is killed: while the file is read
# (HOLD=read), or at its second batch of links (HOLD=batch).
_RUN = """
import asyncio, os, runpy, sys
from bot import scheduler
from bot.library import importing
from bot.library import import_reader
from storage.writes import LinkWrites

importing.LEASE = 2.0
scheduler.IMPORT_RESUME_EVERY = 1.0
hold = os.environ.get("HOLD")
if hold == "read":
    async def held_read(raw):
        await asyncio.Event().wait()

    import_reader.read = held_read
if hold == "batch":
    real = LinkWrites.insert_many
    batches = []

    async def held(self, docs, first=None):
        batches.append(len(docs))
        if len(batches) == 2:
            await asyncio.Event().wait()
        return await real(self, docs, first)

    LinkWrites.insert_many = held
sys.argv = ["bot"]
runpy.run_module("bot", run_name="__main__", alter_sys=True)
"""


async def _start(env: dict[str, str], cwd: Path, name: str) -> asyncio.subprocess.Process:
    with (cwd / f"{name}.log").open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-c", _RUN, env=env, cwd=cwd, stdout=out, stderr=out
        )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("hold", ["read", "batch"])
async def test_an_import_killed_after_its_file_was_confirmed_is_finished_by_the_next_start(
    botapi: FakeBotAPI, mongodb_uri: str, tmp_path: Path, hold: str
) -> None:
    """Killed while the file is read, or after its first batch of links was saved: the
    next start imports it in the same progress message, the first batch counted as saved."""
    env = bot_env(botapi, mongodb_uri)
    store = LinkStore.connect(mongodb_uri, index_dir=INDEX_DIR)
    first = await _start({**env, "HOLD": hold}, tmp_path, "first")
    second: asyncio.subprocess.Process | None = None
    try:
        await botapi.wait_for(lambda c: c.method == "getUpdates", timeout=60)
        data = "\n".join(f"{DEAD}/r{i}" for i in range(600)).encode()
        sent = botapi.send_document(46, data, "links.txt")
        progress = await botapi.wait_for(
            lambda c: c.method == "sendMessage" and c.ok and c.params["chat_id"] == 46,
            timeout=60,
        )
        message_id = int(progress.result["message_id"])
        saved = 250 if hold == "batch" else 0  # the first batch; the second is held
        await stored(store, 46, saved, timeout=60)
        await _order(store, f"46:{sent['message_id']}", saved, message_id)  # and says so
        # Telegram is told the file arrived while it is still being imported.
        await botapi.wait_until(lambda: botapi.updates_waiting == 0, timeout=60)
        first.send_signal(signal.SIGKILL)  # ours, by its pid
        await first.wait()

        second = await _start(env, tmp_path, "second")
        await botapi.wait_until(lambda: "Imported" in _text(botapi, 46, message_id), timeout=120)
        text = _text(botapi, 46, message_id)
        assert "600 new links saved, 0 duplicates" in text, text
        assert await consistent(store, 46) == 600  # each link once, with its key
        assert await store.db["import_orders"].count_documents({}) == 0
        replies = [
            c for c in botapi.calls if c.method == "sendMessage" and c.params["chat_id"] == 46
        ]
        assert len(replies) == 1, [c.params.get("text") for c in replies]  # one progress message
    except BaseException:
        print_logs(tmp_path)
        raise
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 60)
        await store.close()


async def _order(
    store: LinkStore, key: str, saved: int, progress_id: int, timeout: float = 30
) -> None:
    """Wait until the import's order names its progress message and `saved` links."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        doc = await store.db["import_orders"].find_one({"_id": key}) or {}
        if doc.get("progress_id") == progress_id and doc.get("saved", 0) >= saved:
            return
        assert loop.time() < deadline, f"the order never said so: {doc}"
        await asyncio.sleep(0.05)


def _text(api: FakeBotAPI, chat_id: int, message_id: int) -> str:
    return api.message_text(chat_id, message_id) or ""


async def test_a_file_cut_short_too_often_is_given_up_and_its_user_told(bot: BotHarness) -> None:
    """A file whose import was cut short MAX_TRIES times (one that brings its process
    down, say) is not tried again: its user is told how many links were saved and to
    send the file again for the rest. An order whose chat can't be told any more (the
    user blocked the bot) is dropped, not tried again every round."""
    bot.api.send_message(47, "hello")  # a chat the bot can write to
    orders = ImportOrders(bot.store.db)
    for chat in (47, 48):  # 48: a chat the bot can't write to
        order = ImportOrder(chat, 5, owner_id=chat, file_id="BQACgone", name="big.html", lang="en")
        assert await orders.open(order, "a front killed since", lease=0.0)
        cut = {"tries": MAX_TRIES, "saved": 120}
        await orders.coll.update_one({"_id": order.key}, {"$set": cut})
    told = await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and "cut short" in str(c.params.get("text")),
        timeout=30,
    )
    assert told.ok and told.params["chat_id"] == 47
    assert "cut short 3 times" in told.params["text"], told.params["text"]
    assert "120 links were saved" in told.params["text"]
    assert told.params["reply_parameters"]["message_id"] == 5
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while await orders.coll.count_documents({}):  # both closed
        assert loop.time() < deadline, await orders.coll.find({}).to_list()
        await asyncio.sleep(0.05)


async def test_a_second_file_while_one_is_imported_is_refused(bot: BotHarness) -> None:
    """An import of the user's is under way (here: held by another front, as one resumed
    after a restart would be): a second file is refused, not imported beside it with a
    progress message of its own."""
    orders = ImportOrders(bot.store.db)
    running = ImportOrder(49, 900, owner_id=49, file_id="BQACbig", name="big.html", lang="en")
    assert await orders.open(running, "another front", lease=600.0)
    bot.api.send_document(49, f"{DEAD}/second".encode(), "more.txt")
    told = await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and c.params.get("chat_id") == 49, timeout=30
    )
    assert "still running" in told.params["text"], told.params["text"]
    assert await bot.store.links.count_documents({"owner_id": 49}) == 0


async def test_an_import_that_fails_is_told_and_not_tried_again(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Something unexpected breaks the import: the user is told so in its progress
    message, and its order is closed, not resumed to fail the same way three times."""
    from bot.library import importing

    async def broken(raw: bytes) -> None:
        raise RuntimeError("a reader bug")

    monkeypatch.setattr(importing.import_reader, "read", broken)
    message_id = await bot.send_file(50, f"{DEAD}/x".encode(), "links.txt")
    text = await bot.final_text(50, message_id, "went wrong", timeout=30)
    assert "Something went wrong on my side" in text
    assert await ImportOrders(bot.store.db).coll.count_documents({}) == 0


async def test_a_try_whose_claimer_died_before_taking_it_is_skipped(bot: BotHarness) -> None:
    """A front claimed an order's next try (its marker) and died before it wrote the order
    down as its own: once that marker is older than a lease, the next try is claimed."""
    # A database of its own: the bot's resume job must not take the order meanwhile.
    orders = ImportOrders(bot.store.db.client.get_database(f"{bot.store.db.name}-aside"))
    order = ImportOrder(51, 1, owner_id=51, file_id="BQACx", name="x.txt", lang="en")
    assert await orders.open(order, "a front killed since", lease=0.0)
    long_ago = utcnow() - timedelta(hours=1)
    await orders.claims.insert_one({"_id": f"import:{order.key}:2", "at": long_ago})
    taken = await orders.abandoned("front b", lease=60.0)  # try 2 is passed over
    assert taken is not None and taken.key == order.key and taken.tries == 3
    assert await orders.abandoned("front c", lease=60.0) is None  # now front b's


async def test_a_next_file_sent_as_the_last_line_is_told_is_imported(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import's order is closed just after its last line is told (so that a kill
    before the line resumes it): a next file sent in between is imported, not refused
    as another import's. Here the close is held until the second file is done."""
    closing, close = asyncio.Event(), ImportOrders.close

    async def held(orders: ImportOrders, order: ImportOrder) -> None:
        await closing.wait()
        await close(orders, order)

    monkeypatch.setattr(ImportOrders, "close", held)
    try:
        first = await bot.send_file(48, f"{DEAD}/one".encode(), "one.txt")
        await bot.final_text(48, first, "Imported", timeout=30)
        assert await ImportOrders(bot.store.db).coll.count_documents({"owner_id": 48}) == 1
        second = await bot.send_file(48, f"{DEAD}/two".encode(), "two.txt")
        assert "still running" not in (bot.api.message_text(48, second) or "")
        text = await bot.final_text(48, second, "Imported", timeout=30)
        assert "1 new links saved" in text, text
    finally:
        closing.set()
    await bot.import_closed(48)

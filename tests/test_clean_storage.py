"""Work entries and storage stay clean: work whose link is gone is dropped (three ways it
happens), a worker slot that dies is logged and started again, a re-capture frees the
bytes it replaced, saved /find queries expire, /stats reads sizes kept with the records."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId

from bot.chat.callbacks import Recapture, codec_for
from bot.chat.links import url_key
from bot.library.stats import user_stats
from storage import bulk
from storage.images import ImageNotFound
from storage.models import LinkRecord, Screenshot, Status, utcnow
from storage.queries import QUERY_TTL
from storage.queue.claims import PRIO_IMPORTED
from storage.trash import Trash
from tests.harness import BotHarness
from tests.records import seed_links
from tests.test_manage import record_of


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    """Wait for a positive outcome (polling the database)."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 (the database has no event to wait on)
            await asyncio.sleep(0.05)


def pending(owner: int, n: int) -> LinkRecord:
    url = f"https://gone.example/{owner}/{n}"
    return LinkRecord(
        owner_id=owner, chat_id=owner, url=url, url_key=url_key(url), status=Status.PENDING
    )


async def test_work_whose_link_is_gone_is_dropped(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = bot.store
    bot.services.worker.gone_grace = 0.0  # type: ignore[union-attr]

    # 1. A crash between the two inserts: the work entry (written first), no link.
    crashed = ObjectId()
    entry = {"_id": crashed, "owner_id": 42, "status": "pending", "turn": 0.0, "prio": 0}
    await store.work.insert_one({**entry, "updated_at": utcnow()})

    # 2. An import batch cut off part-way by an older release (which wrote work entries
    # before links): its work entries are there; the links never were. (Today's imports
    # write links first and take a failed batch back: tests/test_hostile_files.py.)
    batch = [pending(42, n) for n in range(3)]
    await store.work.insert_many(
        [{**entry, "_id": r.id, "prio": PRIO_IMPORTED, "updated_at": utcnow()} for r in batch]
    )
    orphans = [crashed, *(r.id for r in batch)]
    assert await store.work.count_documents({"_id": {"$in": orphans}}) == 4
    bot.services.wake_workers()

    async def dropped() -> bool:
        return await store.work.count_documents({"_id": {"$in": orphans}}) == 0

    await until(dropped)
    # Each was claimed at most twice (seen missing, then dropped), not without end.
    for link_id in orphans:
        markers = await store.db["claims"].count_documents({"_id": {"$regex": f"^{link_id}:"}})
        assert markers <= 2, (link_id, markers)


async def test_a_link_queued_again_while_its_end_is_told_keeps_its_work(
    bot: BotHarness,
) -> None:
    """A link's work entry stays until its end was told (bot/pipeline/finish.py). Sent
    again (or 🔄) meanwhile, it is queued again into that entry: the drop that follows
    the telling must not take the new entry with it (the link would stay pending, and
    every later send of it be answered "on its way" for good)."""
    store = bot.store
    record, _ = await store.add_pending(pending(44, 1))
    await store.start_attempt(record.id)
    await store.mark_failed(record.id, "refused: ")
    ended = await store.load(record.id)  # what finish read: failed
    assert ended is not None and await store.work.find_one({"_id": record.id}) is not None
    await store.update(record.id, status=Status.PENDING)  # queued again meanwhile
    await store.drop_work(record.id, ended.updated_at)  # finish, once it has told
    again = await store.work.find_one({"_id": record.id})
    assert again is not None and again["status"] == "pending"
    # Not queued again: the drop stands.
    await store.mark_failed(record.id, "refused: ")
    ended = await store.load(record.id)
    assert ended is not None
    await store.drop_work(record.id, ended.updated_at)
    assert await store.work.find_one({"_id": record.id}) is None


async def test_a_stage_writing_after_its_link_went_to_the_trash_leaves_no_work(
    bot: BotHarness,
) -> None:
    store = bot.store
    record, created = await store.add_pending(pending(43, 1))  # recorded, not queued
    assert created and await store.work.find_one({"_id": record.id}) is not None
    await Trash(store).hide(43, record.id, keep_for=timedelta(minutes=5))
    assert await store.work.find_one({"_id": record.id}) is None
    # The stage that had the link goes on writing as if nothing happened.
    await store.start_attempt(record.id)
    await store.update(record.id, status=Status.CAPTURED, title="late", text="late words")
    assert await store.work.find_one({"_id": record.id}) is None
    assert await store.links.find_one({"_id": record.id}) is None  # still in the trash
    assert await store.texts.find_one({"_id": record.id}) is None
    assert (await store.find(43, [])).total == 0


async def test_a_worker_slot_that_dies_is_logged_and_started_again(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    worker = bot.services.worker
    assert worker is not None
    queue = bot.services.store.queue
    real = queue.claim
    broken = True

    async def claim(*args: Any, **kwargs: Any) -> Any:
        if broken:
            raise RuntimeError("an unexpected bug")
        return await real(*args, **kwargs)

    queue.claim = claim  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.ERROR, logger="bot.pipeline.worker"):
            worker.wake()
            await until(lambda: _true(worker.restarts >= len(worker._slots)))
            broken = False
            sent = bot.send(42, bot.pages.url("/article/after-a-crash"))
            assert await bot.finished(sent) == "👌"
            assert len(bot.photos_for(sent)) == 1
    finally:
        queue.claim = real  # type: ignore[method-assign]
    died = [r for r in caplog.records if "slot died" in r.getMessage()]
    assert died and died[0].exc_info is not None
    assert "an unexpected bug" in str(died[0].exc_info[1])


async def _true(value: bool) -> bool:
    return value


async def test_a_recapture_frees_the_bytes_it_replaced(bot: BotHarness) -> None:
    photo = await bot.snapshot(42, "/article/replaced")
    before = await record_of(bot, 42)
    assert before.screenshot is not None and before.screenshot.gridfs_id is not None
    old = before.screenshot.gridfs_id
    assert before.screenshot.size == len(await bot.store.get_image(old))  # kept with it
    photos = len(bot.api.calls_of("sendPhoto", 42, ok_only=True))
    again = codec_for(bot.settings.token).encode(Recapture(before.id), 42)
    bot.api.press_button(42, photo, again)
    await bot.api.wait_until(
        lambda: len(bot.api.calls_of("sendPhoto", 42, ok_only=True)) == photos + 1, timeout=60
    )

    async def renewed() -> bool:
        # Done: the photo goes out before the page's text is read, and the capture (which
        # frees the bytes it replaced) is saved with the text.
        record = await record_of(bot, 42)
        shot = record.screenshot
        new = shot is not None and shot.gridfs_id not in (None, old) and shot.file_id is not None
        return new and record.status == Status.DONE

    await until(renewed)
    with pytest.raises(ImageNotFound):
        await bot.store.get_image(old)
    after = await record_of(bot, 42)
    assert after.screenshot is not None and after.screenshot.gridfs_id is not None
    assert after.screenshot.size == len(await bot.store.get_image(after.screenshot.gridfs_id))


async def test_saved_queries_expire(bot: BotHarness) -> None:
    queries = bot.store.queries
    query_id = await queries.save(42, ["a"], "words")
    assert await queries.get(42, query_id) == (["a"], "words")
    later = utcnow() + QUERY_TTL + timedelta(seconds=1)
    assert await queries.get(42, query_id, now=later) is None
    assert await queries.forget_expired(now=later) == 1
    assert await queries.queries.count_documents({}) == 0


async def test_stats_reads_sizes_kept_with_the_records(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = bot.store
    image = await store.put_image(b"x" * 5000, "a.jpg")
    legacy = await store.put_image(b"y" * 3000, "b.jpg")  # saved before sizes were kept

    def done(n: int, shot: Screenshot) -> LinkRecord:
        url = f"https://sizes.example/{n}"
        return LinkRecord(owner_id=42, chat_id=42, url=url, url_key=url_key(url), screenshot=shot)

    records = [done(1, Screenshot(10, 10, gridfs_id=image, size=5000))]
    records += [done(2, Screenshot(10, 10, gridfs_id=legacy))]
    assert await seed_links(store, records) == 2

    async def no_scan(*args: Any) -> int:
        raise AssertionError("every image header read")

    monkeypatch.setattr(bulk, "image_bytes", no_scan)
    looked_up: list[ObjectId] = []
    real_size = store.images.size

    async def size(image_id: ObjectId) -> int | None:
        looked_up.append(image_id)
        return await real_size(image_id)

    monkeypatch.setattr(store.images, "size", size)
    stats = await user_stats(store, 42, utcnow())
    assert stats.screenshot_bytes == 8000
    assert looked_up == [legacy]  # only the record that does not hold its size

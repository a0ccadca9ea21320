"""Claims on the real FerretDB: a claim half-written when the database went away (the
marker landed, the lease did not) must not leave its link stuck for ever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from storage.models import utcnow
from storage.queue.claims import FEED, Claim, WorkQueue, _marker
from storage.queue.orders import FileOrders
from storage.repository import LinkStore
from tests.conftest import INDEX_DIR

LEASE = 20.0


@pytest.fixture
async def queue(mongodb_uri: str) -> AsyncIterator[WorkQueue]:
    store = LinkStore.connect(mongodb_uri, index_dir=INDEX_DIR)
    try:
        yield store.queue
    finally:
        await store.close()


async def _queued(queue: WorkQueue) -> dict[str, object]:
    doc = {"_id": ObjectId(), "status": "pending", "turn": 1.0, "prio": 0}
    await queue.work.insert_one(doc)
    return doc


async def test_a_marker_left_without_its_lease_is_stepped_over(queue: WorkQueue) -> None:
    doc = await _queued(queue)
    long_ago = utcnow() - timedelta(seconds=3 * LEASE)
    await queue.claims.insert_one({"_id": _marker(doc, 1), "worker": "gone", "at": long_ago})
    claim = await queue.claim("w2", {"pending"}, LEASE)
    assert claim is not None and claim.link_id == doc["_id"] and claim.lease == 2
    assert await queue.renew(claim, LEASE)


async def test_two_slots_of_one_worker_never_share_a_lease(queue: WorkQueue) -> None:
    """A worker's slots share its name; only one of them may win a link's lease."""
    doc = await _queued(queue)
    claims = await asyncio.gather(*(queue.claim("w1", {"pending"}, LEASE) for _ in range(8)))
    won = [c for c in claims if c is not None]
    assert len(won) == 1 and won[0].link_id == doc["_id"]
    assert await queue.claim("w1", {"pending"}, LEASE) is None  # held by its sibling slot


async def test_a_fresh_marker_of_another_worker_is_not_taken(queue: WorkQueue) -> None:
    doc = await _queued(queue)
    await queue.claims.insert_one({"_id": _marker(doc, 1), "worker": "w1", "at": utcnow()})
    assert await queue.claim("w2", {"pending"}, LEASE) is None


async def test_a_file_order_whose_claimer_died_is_taken_once_a_lease_old(
    queue: WorkQueue,
) -> None:
    """A worker claimed a front's file order (its marker) and died before it wrote its
    lease: the order is not stuck behind that marker (its asker's next press would find
    it still waiting), but neither is a fresh claim taken from a live worker."""
    orders = FileOrders(queue.work.database)
    link_id = ObjectId()
    await orders.ask(link_id, 7, "pdf", "en-US")
    doc = await orders.coll.find_one({})
    assert doc is not None
    first = f"file:{doc['_id']}:{doc['asked_at'].timestamp()}:1"
    await orders.claims.insert_one({"_id": first, "worker": "w1", "at": utcnow()})
    assert await orders.claim("w2", lease=300.0) is None  # w1 may still be writing it
    long_ago = utcnow() - timedelta(seconds=600)
    await orders.claims.update_one({"_id": first}, {"$set": {"at": long_ago}})
    order = await orders.claim("w2", lease=300.0)
    assert order is not None and order.link_id == link_id and order.tries == 2
    assert await orders.claim("w3", lease=300.0) is None  # now w2's, for its lease


async def test_one_worker_per_round_of_a_periodic_job(queue: WorkQueue) -> None:
    """Three workers ask for the link-rot round: one runs it; the next round is open."""
    won = [await queue.claim_round("rot", 100, f"w{i}") for i in range(3)]
    assert won == [True, False, False]
    assert not await queue.claim_round("rot", 100, "w0")  # asking again: already run
    assert await queue.claim_round("rot", 101, "w2")


async def test_unqueued_work_is_adopted_only_once_its_owner_is_quiet(queue: WorkQueue) -> None:
    """A front queueing a long burst of one user's links (one at a time) is not dead: its
    links still waiting for a turn are not adopted at the front of the queue."""
    old = utcnow() - timedelta(seconds=60)
    waiting, left = ObjectId(), ObjectId()
    await queue.work.insert_many(
        [
            {"_id": waiting, "owner_id": 7, "status": "pending", "updated_at": old},
            {"_id": left, "owner_id": 8, "status": "pending", "updated_at": old},
        ]
    )
    await queue.work.insert_one(  # owner 7's burst, being queued right now
        {"_id": ObjectId(), "owner_id": 7, "status": "pending", "updated_at": utcnow()}
    )
    await queue.enqueue(ObjectId(), 7, per_minute=1000)  # a turn written for owner 7 now
    assert await queue.adopt_orphans(utcnow() - timedelta(seconds=10)) == 1
    assert not await queue.queued(waiting)  # its own front will queue it
    assert await queue.queued(left)  # owner 8's front died: adopted
    # Once owner 7 has been quiet for the orphan age, its leftovers are adopted too.
    assert await queue.adopt_orphans(utcnow() + timedelta(seconds=1)) >= 1
    assert await queue.queued(waiting)


async def test_a_link_past_its_owner_s_pace_is_never_claimable_before_its_time(
    queue: WorkQueue,
) -> None:
    """A worker may claim at any moment, also between the writes that queue a link: the
    second link of an owner paced at one a minute must never be claimed now."""
    first, second = await _unqueued(queue), await _unqueued(queue)
    assert await queue.enqueue(first["_id"], 77, per_minute=1.0) is None
    taken = await queue.claim("w-first", {"pending"}, LEASE)
    assert taken is not None and taken.link_id == first["_id"]
    work: Any = queue.work
    real_update = work.update_one
    between: list[Any] = []

    async def update_then_a_worker_claims(*args: Any, **kwargs: Any) -> Any:
        result = await real_update(*args, **kwargs)
        between.append(await queue.claim("w-between", {"pending"}, LEASE))
        return result

    work.update_one = update_then_a_worker_claims
    try:
        later = await queue.enqueue(second["_id"], 77, per_minute=1.0)
    finally:
        work.update_one = real_update
    assert later is not None and later > utcnow()
    assert between == [None]


async def test_the_pace_this_process_wrote_tells_whether_a_next_link_waits(
    queue: WorkQueue,
) -> None:
    """What the head start asks before opening a page (bot/pipeline/ahead.py): the same
    answer the queueing will give, from the pace this process last wrote, and a map of
    paces that forgets those long past rather than growing with every user."""
    assert not queue.holds_next(77, per_minute=2.0)  # never queued here
    assert await queue.enqueue((await _unqueued(queue))["_id"], 77, per_minute=2.0) is None
    assert not queue.holds_next(77, per_minute=2.0)  # two a minute: the second goes now
    assert await queue.enqueue((await _unqueued(queue))["_id"], 77, per_minute=2.0) is None
    assert queue.holds_next(77, per_minute=2.0)
    assert await queue.enqueue((await _unqueued(queue))["_id"], 77, per_minute=2.0) is not None
    assert not queue.holds_next(78, per_minute=2.0)  # another user is not held by it
    past = utcnow().timestamp() - 3600
    for owner in range(1000, 1000 + 5000):
        queue._remember_pace(owner, past, utcnow().timestamp())
    assert len(queue._paces) <= 4097 and queue.holds_next(77, per_minute=2.0)


async def _unqueued(queue: WorkQueue) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": ObjectId(), "status": "pending", "owner_id": 77}
    await queue.work.insert_one(doc)
    return doc


async def test_a_link_handed_to_a_slot_is_claimed_once_whoever_comes_first(
    queue: WorkQueue,
) -> None:
    """A link the front hands to its own idle slot (claimed by id, no query) and another
    worker's claim query race for the same first lease: exactly one runs it. Handed
    first, the queried claim finds it leased; queried first, the handed claim loses."""

    async def hand(link_id: Any, turn: float = 1.0) -> Claim | None:
        return await queue.claim_queued(link_id, turn, "pending", "w1", LEASE)

    first = (await _queued(queue))["_id"]
    handed = await hand(first)
    assert handed is not None and handed.link_id == first and handed.lease == 1
    assert await queue.claim("w2", {"pending"}, LEASE) is None
    second = (await _queued(queue))["_id"]
    queried = await queue.claim("w2", {"pending"}, LEASE)
    assert queried is not None and queried.link_id == second
    assert await hand(second) is None
    third = (await _queued(queue))["_id"]
    together = await asyncio.gather(hand(third), queue.claim("w2", {"pending"}, LEASE))
    assert [c.link_id for c in together if c is not None] == [third]
    # Queued again since (a retried queueing gave it another turn) or leased meanwhile
    # by another process: the hand-off stands aside and the queue's claim decides.
    fourth = (await _queued(queue))["_id"]
    assert await hand(fourth, turn=0.5) is None
    await queue.leases.insert_one({"_id": fourth, "lease": 1, "until": utcnow() - timedelta(1)})
    assert await hand(fourth) is None
    retaken = await queue.claim("w2", {"pending"}, LEASE)
    assert retaken is not None and retaken.link_id == fourth and retaken.lease == 2


class _LeaseReads(monitoring.CommandListener):
    """The filters of the commands sent to the `leases` collection."""

    def __init__(self) -> None:
        self.filters: list[Any] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        if command.get(event.command_name) != "leases":
            return
        if event.command_name == "find":
            self.filters.append(command.get("filter"))
        for part in command.get("updates", []) + command.get("deletes", []):
            self.filters.append(part.get("q"))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_claim_reads_leases_by_id_alone_however_many_are_kept(mongodb_uri: str) -> None:
    """Leases are kept a day (bot/scheduler.py), one per link. FerretDB v1 answers only a
    lone `_id` equality from an index and reads every document for anything else, so a
    claim that asked for its candidates' leases with `$in` got slower with every link of
    the day (30 ms a claim at 1 000 leases, 0.5 s at 20 000: docs/BENCHMARKS.md). Here two
    candidates are leased, a third is free, among many other links' leases."""
    reads = _LeaseReads()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongodb_uri, tz_aware=True, event_listeners=[reads]
    )
    try:
        queue = WorkQueue(client.get_default_database())
        later = utcnow() + timedelta(seconds=3 * LEASE)
        await queue.leases.insert_many(
            [{"_id": ObjectId(), "lease": 1, "until": utcnow()} for _ in range(50)]
        )
        busy, free = [ObjectId(), ObjectId()], ObjectId()
        await queue.work.insert_many(  # the two leased ones first in the queue
            [
                {"_id": link_id, "status": "pending", "turn": float(turn), "prio": 0}
                for turn, link_id in enumerate([*busy, free])
            ]
        )
        await queue.leases.insert_many([{"_id": i, "lease": 1, "until": later} for i in busy])
        reads.filters.clear()
        claim = await queue.claim("w1", {"pending"}, LEASE)
        assert claim is not None and claim.link_id == free
        assert all(set(f) == {"_id"} and isinstance(f["_id"], ObjectId) for f in reads.filters)
        assert {f["_id"] for f in reads.filters} == {*busy, free}
    finally:
        await client.close()


def _imported(n: int) -> list[dict[str, Any]]:
    """Work entries of `n` links an import recorded at one moment (as storage/bulk.py)."""
    return [
        {"_id": ObjectId(), "owner_id": 5, "status": "pending", "prio": 1, "turn": 1000.0}
        for _ in range(n)
    ]


async def _claim_and_finish(queue: WorkQueue) -> ObjectId | None:
    claim = await queue.claim("w1", {"pending", "capturing"}, LEASE)
    if claim is None:
        return None
    await queue.work.delete_one({"_id": claim.link_id})  # its stages done
    return claim.link_id


async def test_an_import_waits_outside_the_claimed_collection_and_is_fed_in_order(
    queue: WorkQueue,
) -> None:
    """Every claim reads all of `work` on FerretDB: an import's thousands of links wait
    in the backlog and come in a few at a time, oldest first, each claimed once; a link
    sent by hand meanwhile goes before the rest of the import."""
    entries = _imported(3 * FEED)
    await queue.wait_later(entries[: 2 * FEED])
    await queue.wait_later(entries[2 * FEED :])  # a second batch, written after
    assert await queue.work.count_documents({}) == 0
    claimed = [await _claim_and_finish(queue) for _ in range(FEED)]
    assert claimed == [e["_id"] for e in entries[:FEED]]
    assert await queue.work.count_documents({}) <= FEED
    hand = await _queued(queue)  # prio 0, turn 1.0
    assert await _claim_and_finish(queue) == hand["_id"]
    while (link_id := await _claim_and_finish(queue)) is not None:
        claimed.append(link_id)
        assert await queue.work.count_documents({}) <= FEED
    assert claimed == [e["_id"] for e in entries]
    assert await queue.backlog.count_documents({}) == 0


async def test_an_imported_link_asked_by_hand_leaves_the_backlog_first(queue: WorkQueue) -> None:
    """The user sends a link an import recorded and has not reached: it is queued as
    sent by hand, ahead of the import, whether still in the backlog or fed in already."""
    entries = _imported(2 * FEED)
    await queue.wait_later(entries)
    first = await _claim_and_finish(queue)  # feeds the first FEED in
    assert first == entries[0]["_id"]
    for asked in (entries[-1]["_id"], entries[1]["_id"]):  # in the backlog; in `work`
        assert await queue.enqueue(asked, 5, per_minute=1000) is None
        assert await _claim_and_finish(queue) == asked
    assert await _claim_and_finish(queue) == entries[2]["_id"]

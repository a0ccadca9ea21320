"""Stage claims: which worker runs which link's next stage, through MongoDB alone.

A link's unfinished stage has a document in the small `work` collection (see
repository.py). A worker claims it by inserting `claims/{link id}:{n}` for the next
lease number n (and queueing): the unique `_id` makes exactly one insert win, on MongoDB as on FerretDB
v1 (whose updates are read-then-write, so a conditional update would not be a safe
claim). The winner writes `lease = n` and `until` into the link's `leases` document and
renews it while it works; when `until` has passed, any worker may claim n + 1. A link
just queued may be claimed by its id (`claim_queued`, the process that recorded it
handing it to an idle slot): the same first marker, so still exactly one winner.

Fairness is start-time fair queueing: a link's `turn` is `max(the turn at the head of
the queue, its owner's last turn) + 1`. A user with 500 queued links holds turns
head+1 … head+500, so another user's single link gets head+1 and is claimed after at
most about one of theirs. Separately each user is paced (USER_RATE_PER_MINUTE, GCRA):
past the pace a link is not claimable before its time. Imported links carry `prio = 1` and are claimed after every link sent by
hand; they wait in `work_backlog` until a capture claim finds no stage it may take and feeds
the oldest into `work` (`_feed`), so a claim's query reads a few, not every one imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.models import Status, utcnow
from storage.upserts import insert_many_new, set_by_id

Doc = dict[str, Any]
CANDIDATES = 20
PRIO_BY_HAND = 0
PRIO_IMPORTED = 1
_PACES_KEPT = 4096  # owners' paces remembered before those long past are forgotten
# An import's links wait in `work_backlog`, oldest first, and come into `work` FEED at a
# time when a capture claim finds none it may take there: FerretDB v1 reads every `work`
# document for a claim, so 10 000 links waiting in it cost 0.34 s a claim
# (docs/BENCHMARKS.md); the backlog is only ever read by `_id` or from its start.
FEED = CANDIDATES
# Seconds before a backlog found empty is looked at again (another process may import).
BACKLOG_RECHECK = 5.0
_FED_STATUS = str(Status.PENDING)  # an imported link waits to be captured


@dataclass(frozen=True)
class Queued:
    turn: float
    later: datetime | None  # past its owner's pace: not claimable before this


@dataclass(frozen=True)
class Claim:
    link_id: ObjectId
    lease: int
    status: str


class WorkQueue:
    """Claim, renew, release and defer the stages listed in `work`."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.work: AsyncCollection[Doc] = db["work"]
        self.claims: AsyncCollection[Doc] = db["claims"]
        self.owners: AsyncCollection[Doc] = db["owner_turns"]
        # Lease state lives apart from `work`: FerretDB v1 writes whole documents back, so
        # two writers of different fields of one document can lose each other's write.
        # Only a claim's winner (and then its holder) writes a link's lease document.
        self.leases: AsyncCollection[Doc] = db["leases"]
        self.backlog: AsyncCollection[Doc] = db["work_backlog"]
        self._backlog_empty_at: float | None = None  # time.monotonic() when last found empty
        self._locks = [asyncio.Lock() for _ in range(64)]
        # Each owner's pace (GCRA's theoretical arrival time) as this process last wrote
        # it: `holds_next` tells from it, without a read, whether a new link will wait.
        self._paces: dict[int, float] = {}
        self._prune_at = _PACES_KEPT

    async def ensure_indexes(self) -> None:
        # MongoDB answers the claim query from this; FerretDB scans the (small) collection.
        await self.work.create_index(
            [("status", ASCENDING), ("prio", ASCENDING), ("turn", ASCENDING)]
        )

    async def enqueue(
        self, link_id: ObjectId, owner_id: int, *, per_minute: float, prio: int = PRIO_BY_HAND
    ) -> datetime | None:
        """Give a newly recorded link (whose work entry exists) its fair turn and, past
        the owner's pace, the time it may start; returns that time if it is in the future.
        """
        return (await self.queue(link_id, owner_id, per_minute=per_minute, prio=prio)).later

    async def queue(
        self, link_id: ObjectId, owner_id: int, *, per_minute: float, prio: int = PRIO_BY_HAND
    ) -> Queued:
        """`enqueue`, saying the turn too (what `claim_queued` needs)."""
        now = utcnow().timestamp()
        if prio != PRIO_BY_HAND:  # imports wait behind every hand-sent link, unpaced
            await self.work.update_one({"_id": link_id}, {"$set": {"turn": now, "prio": prio}})
            return Queued(now, None)
        # One at a time per owner in this process (a user's messages are handled
        # concurrently). Across processes it is not atomic, and need not be: two fronts
        # racing give one user two links on the same turn, which costs fairness little.
        async with self._locks[owner_id % len(self._locks)]:
            # `_id` as text: FerretDB v1 answers `_id` equality from an index only for
            # strings and ObjectIds (a number `_id` read the whole collection per link).
            key = str(owner_id)
            found, head = await asyncio.gather(
                self.owners.find_one({"_id": key}), self._head_turn()
            )
            doc = found or {}
            turn = max(head, float(doc.get("turn", 0.0))) + 1.0
            pace = _gcra(now, float(doc.get("tat", 0.0)), per_minute)
            later = datetime.fromtimestamp(pace.start, UTC) if pace.start > now else None
            # `at`: this owner's links are being queued by a live front (adopt_orphans).
            owner = {"turn": turn, "tat": pace.tat, "at": utcnow()}
            # Both end before a retry starts (no write of this attempt lands after it).
            done = await asyncio.gather(
                set_by_id(self.owners, key, owner),
                self._turn(link_id, turn, prio, later),
                return_exceptions=True,
            )
            for outcome in done:
                if isinstance(outcome, BaseException):
                    raise outcome
            self._remember_pace(owner_id, pace.tat, now)
        return Queued(turn, later)

    def holds_next(self, owner_id: int, per_minute: float) -> bool:
        """Whether the owner's next link will wait for its pace, judged from the pace this
        process last wrote for the owner (False for an owner it never queued). Links
        queued since by another process are not seen here: the queueing itself decides."""
        tat = self._paces.get(owner_id)
        if tat is None:
            return False
        now = utcnow().timestamp()
        return _gcra(now, tat, per_minute).start > now

    def _remember_pace(self, owner_id: int, tat: float, now: float) -> None:
        self._paces[owner_id] = tat
        if len(self._paces) > self._prune_at:  # paces long past hold nothing: forgotten
            self._paces = {o: t for o, t in self._paces.items() if t > now}
            # Many owners still paced: let the map grow before walking it again.
            self._prune_at = max(_PACES_KEPT, 2 * len(self._paces))

    async def _turn(
        self, link_id: ObjectId, turn: float, prio: int, later: datetime | None
    ) -> None:
        # The pace's hold first: the turn makes the link claimable, and a worker claiming
        # between the two writes would start it before its time.
        if later is not None:  # not claimable before its pace allows
            await set_by_id(self.leases, link_id, {"until": later})
        fields = {"turn": turn, "prio": prio}
        done = await self.work.update_one({"_id": link_id}, {"$set": fields})
        if not done.matched_count:
            await self._from_backlog(link_id, fields)

    async def queued(self, link_id: ObjectId) -> bool:
        """False for a link whose work waits without a turn (recorded, never queued)."""
        doc = await self.work.find_one({"_id": link_id}, {"turn": 1})
        return doc is None or doc.get("turn") is not None

    async def _head_turn(self) -> float:
        """Start-time fair queueing's virtual time: the turn at the head of the queue."""
        cursor = self.work.find({"prio": PRIO_BY_HAND, "turn": {"$ne": None}}, {"turn": 1})
        head = await cursor.sort("turn", ASCENDING).limit(1).to_list()
        return float(head[0]["turn"]) if head else 0.0

    async def claim(
        self,
        worker: str,
        statuses: Iterable[str],
        lease: float,
        *,
        hand_only: bool = False,
        held: Collection[ObjectId] = (),
    ) -> Claim | None:
        """The most deserving stage in `statuses` whose lease has run out, now ours. When
        none is and captures were asked for, the import backlog's next links are fed in
        (`_feed`) and looked at. `held`: links whose stage the caller runs now, under a
        lease it renews (not looked up: a slot looking for its next link while its page
        is shot would otherwise read its own link's lease every time)."""
        # Only queued links (with a turn): until `enqueue` has written it, the front is
        # the one writer of the work document, so no update of it is lost.
        wanted = set(statuses)
        query: Doc = {"status": {"$in": sorted(wanted)}, "turn": {"$ne": None}}
        if hand_only:
            query["prio"] = PRIO_BY_HAND
        claim = await self._first_free(query, worker, lease, held)
        if claim is None and not hand_only and _FED_STATUS in wanted and await self._feed():
            claim = await self._first_free(query, worker, lease, held)
        return claim

    async def _first_free(
        self, query: Doc, worker: str, lease: float, held: Collection[ObjectId]
    ) -> Claim | None:
        now = utcnow()
        for doc in await self._candidates(query):
            if doc["_id"] in held:
                continue
            # Each candidate's lease by its `_id`, in turn, until one is free (mostly the
            # first): FerretDB v1 answers that from an index, but `$in` by reading every
            # lease kept (a day of links: 30 ms a claim at 1 000, 0.5 s at 20 000).
            current = await self.leases.find_one({"_id": doc["_id"]}) or {}
            until = current.get("until")
            if until is not None and until > now:
                continue
            number = await self._mark(doc, int(current.get("lease") or 0) + 1, worker, lease)
            if number is None:
                continue  # another worker took this one first
            return await self._lease(doc["_id"], number, str(doc.get("status")), worker, lease)
        return None

    async def _candidates(self, query: Doc) -> list[Doc]:
        cursor = self.work.find(query).sort([("prio", ASCENDING), ("turn", ASCENDING)])
        return await cursor.limit(CANDIDATES).to_list()

    async def wait_later(self, entries: list[Doc]) -> None:
        """Work entries of imported links, kept in the backlog until capture claims need
        them (`_feed`). `work` is not read here: an entry already there stays as it is,
        and the feed's insert of its copy is refused."""
        await insert_many_new(self.backlog, entries)
        self._backlog_empty_at = None

    async def _feed(self) -> bool:
        """The backlog's oldest entries into `work`; False when it had none.

        Inserted first, then taken out of the backlog: a process killed between the two
        leaves them in both, and the next feed meets them again. Those still in `work`
        are refused as duplicates; one whose link has finished meanwhile is claimed once
        more and dropped (bot/pipeline/worker.py `_reconcile`)."""
        now = time.monotonic()
        empty_at = self._backlog_empty_at
        if empty_at is not None and now - empty_at < BACKLOG_RECHECK:
            return False
        # No filter and no sort: the one form FerretDB v1 reads without a scan (a limit),
        # in the order written on both databases.
        entries = await self.backlog.find({}).limit(FEED).to_list()
        if not entries:
            self._backlog_empty_at = now
            return False
        await insert_many_new(self.work, entries)
        for entry in entries:
            await self.backlog.delete_one({"_id": entry["_id"]})
        return True

    async def _from_backlog(self, link_id: ObjectId, fields: Doc) -> None:
        """An imported link still in the backlog, now asked for by hand: into `work` with
        its new turn, ahead of the rest of its import."""
        entry = await self.backlog.find_one({"_id": link_id})
        if entry is None:  # fed in meanwhile (or done, or gone: then this matches nothing)
            await self.work.update_one({"_id": link_id}, {"$set": fields})
            return
        if await insert_many_new(self.work, [{**entry, **fields}]):
            await self.work.update_one({"_id": link_id}, {"$set": fields})  # fed meanwhile
        await self.backlog.delete_one({"_id": link_id})

    async def claim_queued(
        self, link_id: ObjectId, turn: float, status: str, worker: str, lease: float
    ) -> Claim | None:
        """A link this process has just queued (at `turn`, not held by its pace), claimed
        by its id without a query for candidates: None unless it still has that turn and
        no lease, then the first lease's marker, so a worker that claimed it through
        `claim` meanwhile wins and this returns None."""
        # As the link stands now: another process may have claimed it (or a retried
        # queueing given it another turn) since, and markers of another turn never meet.
        entry, held = await asyncio.gather(
            self.work.find_one({"_id": link_id}, {"turn": 1, "status": 1}),
            self.leases.find_one({"_id": link_id}),
        )
        if entry is None or entry.get("turn") != turn or entry.get("status") != status:
            return None
        if held is not None:
            return None  # leased, or held by its pace: the queue's own claim decides
        number = await self._mark({"_id": link_id, "turn": turn}, 1, worker, lease)
        if number is None:
            return None
        return await self._lease(link_id, number, status, worker, lease)

    async def _lease(
        self, link_id: ObjectId, number: int, status: str, worker: str, lease: float
    ) -> Claim:
        """The claim's winner writes its lease (only it writes the link's lease document)."""
        fields = {"lease": number, "until": utcnow() + timedelta(seconds=lease), "worker": worker}
        await set_by_id(self.leases, link_id, fields)
        return Claim(link_id, number, status)

    async def _mark(self, doc: Doc, number: int, worker: str, lease: float) -> int | None:
        """Insert the claim marker for lease `number` (or a later one, past markers
        abandoned); the number won, or None if another worker won it."""
        return await claim_number(self.claims, lambda n: _marker(doc, n), number, worker, lease)

    async def renew(self, claim: Claim, lease: float) -> bool:
        """Extend our lease; False when the stage is no longer ours (taken over, or done)."""
        doc = await self.leases.find_one({"_id": claim.link_id})
        if doc is None or doc.get("lease") != claim.lease:
            return False
        until = utcnow() + timedelta(seconds=lease)
        await self.leases.update_one({"_id": claim.link_id}, {"$set": {"until": until}})
        return True

    async def release(self, claim: Claim, *, not_before: datetime | None = None) -> None:
        """Let any worker take the stage again (at once, or from `not_before`)."""
        doc = await self.leases.find_one({"_id": claim.link_id})
        if doc is None or doc.get("lease") != claim.lease:
            return
        until = not_before or utcnow()
        await self.leases.update_one({"_id": claim.link_id}, {"$set": {"until": until}})

    async def adopt_orphans(self, older_than: datetime) -> int:
        """Work left without a turn (a front that died between recording and queueing, or
        an older version's records) is queued at the front: it has waited longest.

        Not while a front is still queueing that owner's links (their turns written since
        `older_than`): a burst of hundreds is queued one at a time, and on a loaded
        machine its last links wait longer than `older_than` for their turn; adopted at
        the front, they would jump ahead of every other user's links."""
        query = {"turn": None, "updated_at": {"$lt": older_than}}
        found = [doc async for doc in self.work.find(query, {"_id": 1, "owner_id": 1})]
        owners = list({str(doc.get("owner_id")) for doc in found})  # turns are keyed by text
        busy = {
            doc["_id"]
            async for doc in self.owners.find({"_id": {"$in": owners}, "at": {"$gte": older_than}})
        }
        ids = [doc["_id"] for doc in found if str(doc.get("owner_id")) not in busy]
        for link_id in ids:
            await self.work.update_one({"_id": link_id}, {"$set": {"turn": 0.0, "prio": 0}})
        return len(ids)

    async def claim_round(self, name: str, number: int, worker: str) -> bool:
        """True for exactly one worker per round of a periodic job (e.g. the link-rot
        check), so N workers do not each run it."""
        key = f"round:{name}:{number}"
        return await insert_marker(self.claims, key, worker, utcnow()) is None

    async def forget_claims(self, older_than: datetime) -> None:
        """Claim markers only matter while their lease could be contested."""
        with contextlib.suppress(Exception):
            await self.claims.delete_many({"at": {"$lt": older_than}})
            await self.leases.delete_many({"until": {"$lt": older_than}})


async def claim_number(
    claims: AsyncCollection[Doc],
    key_of: Callable[[int], str],
    first: int,
    worker: str,
    lease: float,
) -> int | None:
    """The number this call claimed, from `first` on: the first whose marker `key_of(n)`
    it inserted; None when another claimer holds one within its lease.

    A marker can stand with nothing written after it: its claimer lost the database (or
    died) between the marker and what it writes next, or the driver retried an insert
    that had landed and met it. Our own marker is ours (`insert_marker`'s token);
    another's, once older than a lease, is abandoned and the next number is tried, so
    nothing is stuck behind it."""
    number = first
    for _ in range(3):
        now = utcnow()
        left = await insert_marker(claims, key_of(number), worker, now)
        if left is None:
            return number
        at = left.get("at")
        if at is not None and at > now - timedelta(seconds=lease):
            return None
        number += 1
    return None


async def insert_marker(
    claims: AsyncCollection[Doc], key: str, worker: str, now: datetime
) -> Doc | None:
    """None when this call's insert of marker `key` won; else the marker that stands
    ({} if it was deleted meanwhile). A driver retry that meets this call's own landed
    insert counts as won: ours through a per-call token, not the worker's name, which
    its slots share."""
    token = uuid.uuid4().hex
    try:
        await claims.insert_one({"_id": key, "worker": worker, "token": token, "at": now})
        return None
    except DuplicateKeyError:
        left = await claims.find_one({"_id": key})
    if left is not None and left.get("token") == token:
        return None
    return left or {}


def _marker(doc: Doc, number: int) -> str:
    """Claim marker id: unique per link, queueing (its turn) and lease number, so a link
    queued again (a re-capture) does not meet the markers of its earlier life."""
    return f"{doc['_id']}:{doc.get('turn') or 0}:{number}"


@dataclass(frozen=True)
class _Pace:
    tat: float  # theoretical arrival time of the owner's next link
    start: float  # when this link may start


def _gcra(now: float, tat: float, per_minute: float) -> _Pace:
    """GCRA (a leaky bucket): `per_minute` links at once, then one every 60/per_minute s."""
    spacing = 60.0 / per_minute
    new_tat = max(now, tat) + spacing
    return _Pace(new_tat, new_tat - per_minute * spacing)

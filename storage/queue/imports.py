"""Bookmark files being imported, written down so that a kill does not lose one.

The update that brings a file is confirmed to Telegram at most SETTLE_AT_MOST seconds
after it was fetched (bot/chat/receipts.py); a large file takes longer to fetch, read and
record, and a process killed after that had told its user "reading …" while Telegram
never sends the update again. So the file is written down first, as an order keyed by
its message: its file_id (Telegram keeps the file), its chat and progress message, held
by the importing process under a lease it renews. The order is closed once the user has
been told how the import ended. An order whose lease ran out (its process died) is
claimed by a front, which imports the file again: links recorded before the kill are
found again as duplicates of themselves, so the order carries how many the earlier tries
saved, and they are counted as saved.

A claim inserts a marker into `claims` (a unique `_id`: one winner, on MongoDB as on
FerretDB v1, as storage/queue/claims.py does for stages).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from storage.models import utcnow
from storage.queue.claims import claim_number

Doc = dict[str, Any]
MAX_TRIES = 3  # a file whose import was cut short this often is given up (the user told)


@dataclass(frozen=True)
class ImportOrder:
    """One file to import: where it came from and where its progress is shown."""

    chat_id: int
    message_id: int
    owner_id: int
    file_id: str
    name: str  # as shown to the user (escaped, clipped)
    lang: str
    progress_id: int | None = None  # the message that shows how far it got
    saved: int = 0  # links earlier tries of this file saved
    tries: int = 1

    @property
    def key(self) -> str:
        return f"{self.chat_id}:{self.message_id}"


def _order(doc: Doc, tries: int) -> ImportOrder:
    progress = doc.get("progress_id")
    return ImportOrder(
        chat_id=int(doc["chat_id"]),
        message_id=int(doc["message_id"]),
        owner_id=int(doc["owner_id"]),
        file_id=str(doc["file_id"]),
        name=str(doc.get("name") or ""),
        lang=str(doc.get("lang") or "en"),
        progress_id=int(progress) if progress is not None else None,
        saved=int(doc.get("saved") or 0),
        tries=tries,
    )


class ImportOrders:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.coll = db["import_orders"]
        self.claims = db["claims"]

    async def open(self, order: ImportOrder, holder: str, lease: float) -> bool:
        """Write the order down, held by `holder`; False when it was already (the same
        message delivered again: whoever holds it, or takes it over, imports it)."""
        now = utcnow()
        doc = {
            "_id": order.key,
            "chat_id": order.chat_id,
            "message_id": order.message_id,
            "owner_id": order.owner_id,
            "file_id": order.file_id,
            "name": order.name,
            "lang": order.lang,
            "progress_id": order.progress_id,
            "saved": 0,
            "tries": 1,
            "by": holder,
            "at": now,
            "until": now + timedelta(seconds=lease),
        }
        try:
            await self.coll.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def of_owner(self, owner_id: int) -> str | None:
        """The key of an order of this user's, if one is being imported (or waits to be
        resumed) and its last line is not being told (`ending`)."""
        doc = await self.coll.find_one({"owner_id": owner_id, "ending": {"$ne": True}}, {"_id": 1})
        return str(doc["_id"]) if doc is not None else None

    async def ending(self, order: ImportOrder) -> None:
        """The import's last line is about to be told: a next file of the user's is no
        longer refused for it. The order stays until it is closed, so a kill before the
        line is told still leaves it to be resumed."""
        await self.coll.update_one({"_id": order.key}, {"$set": {"ending": True}})

    async def renew(self, order: ImportOrder, holder: str, lease: float) -> bool:
        """Extend the lease, keeping how far the import got (`saved`, its progress message);
        False when the order is no longer `holder`'s (closed, or taken over)."""
        doc = await self.coll.find_one({"_id": order.key}, {"by": 1})
        if doc is None or doc.get("by") != holder:
            return False
        until = utcnow() + timedelta(seconds=lease)
        fields = {"until": until, "saved": order.saved, "progress_id": order.progress_id}
        await self.coll.update_one({"_id": order.key}, {"$set": fields})
        return True

    async def abandoned(self, holder: str, lease: float) -> ImportOrder | None:
        """The oldest order whose holder's lease ran out, now `holder`'s."""
        now = utcnow()
        # Only files being imported: a few documents, read whole.
        for doc in await self.coll.find({}).sort("at", 1).to_list(100):
            until = doc.get("until")
            if until is not None and until > now:
                continue
            tries = await self._mark(doc, holder, lease)
            if tries is None:
                continue  # another front holds this order
            fields = {"by": holder, "tries": tries, "until": now + timedelta(seconds=lease)}
            await self.coll.update_one({"_id": doc["_id"]}, {"$set": fields})
            return _order(doc, tries)
        return None

    async def _mark(self, doc: Doc, holder: str, lease: float) -> int | None:
        """The order's try this claim won, or None. A try whose claimer died before it
        wrote the order down is passed over once its marker is a lease old (and counts
        as a try cut short)."""

        def key_of(tries: int) -> str:
            return f"import:{doc['_id']}:{tries}"

        first = int(doc.get("tries") or 1) + 1
        return await claim_number(self.claims, key_of, first, holder, lease)

    async def release(self, order: ImportOrder, holder: str) -> None:
        """`holder` stops (its import cancelled): the order may be taken at once."""
        doc = await self.coll.find_one({"_id": order.key}, {"by": 1})
        if doc is not None and doc.get("by") == holder:
            await self.coll.update_one({"_id": order.key}, {"$set": {"until": utcnow()}})

    async def close(self, order: ImportOrder) -> None:
        """The user was told how the import ended."""
        await self.coll.delete_one({"_id": order.key})

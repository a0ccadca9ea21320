"""Per-user choices (`/digest off`), one small document per user addressed by `_id` (the
owner id as text: FerretDB v1 looks a number `_id` up by reading everything).

Only the user's own commands write it, and a user's updates are handled one at a time
(bot/chat/ordering.py), so FerretDB v1's read-then-write updates lose nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from storage.rot import owner_key
from storage.upserts import set_by_id

Doc = dict[str, Any]


@dataclass(frozen=True)
class Prefs:
    digest: bool = True  # the link-rot digest (bot/library/digest.py)


class PrefStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.prefs: AsyncCollection[Doc] = db["user_prefs"]

    async def get(self, owner_id: int) -> Prefs:
        doc = await self.prefs.find_one({"_id": owner_key(owner_id)})
        return Prefs(digest=bool(doc.get("digest", True))) if doc else Prefs()

    async def set_digest(self, owner_id: int, on: bool) -> None:
        await set_by_id(self.prefs, owner_key(owner_id), {"digest": on})

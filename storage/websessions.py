"""Sign-in links and browser sessions of the platform's pages (bot/web/).

Both are kept by the SHA-256 of their token as `_id` (the one look-up FerretDB v1
answers from an index); the tokens themselves are never stored, so a copy of the
database signs no one in. A sign-in link is spent by deleting its document: `delete_one`
by `_id` removes it at most once, on MongoDB as on FerretDB, so of two tabs opening the
same link exactly one gets a session.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from storage.models import utcnow

Doc = dict[str, Any]
SIGNIN_TTL = timedelta(minutes=10)
SESSION_IDLE = timedelta(days=30)
TOUCH_EVERY = timedelta(hours=1)  # how stale a session's last use may be before it is written


@dataclass(frozen=True)
class WebUser:
    """Who a sign-in link or session is for."""

    user_id: int
    lang: str = "en"
    first_name: str = ""


@dataclass(frozen=True)
class Session:
    user: WebUser
    key: str  # the token's hash: names the session without being it
    last_seen: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(doc: Doc) -> WebUser:
    return WebUser(int(doc["user_id"]), str(doc.get("lang") or "en"), str(doc.get("name") or ""))


def _fields(user: WebUser) -> Doc:
    return {"user_id": user.user_id, "lang": user.lang, "name": user.first_name}


class SignIns:
    """Single-use sign-in links, each bound to one user, valid SIGNIN_TTL."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.coll = db["web_signins"]

    async def mint(self, user: WebUser, now: datetime | None = None) -> str:
        now = now or utcnow()
        token = secrets.token_urlsafe(32)
        await self.coll.delete_many({"expires_at": {"$lt": now}})  # a few docs at most
        await self.coll.insert_one(
            {"_id": token_hash(token), **_fields(user), "expires_at": now + SIGNIN_TTL}
        )
        return token

    async def peek(self, token: str, now: datetime | None = None) -> WebUser | None:
        """Whom the link is for, if it is still good; nothing is spent."""
        doc = await self.coll.find_one({"_id": token_hash(token)})
        if doc is None or doc["expires_at"] <= (now or utcnow()):
            return None
        return _user(doc)

    async def spend(self, token: str, now: datetime | None = None) -> WebUser | None:
        """The user, once: the link is gone after this, whatever it answered."""
        key = token_hash(token)
        doc = await self.coll.find_one({"_id": key})
        if doc is None:
            return None
        done = await self.coll.delete_one({"_id": key})
        if done.deleted_count != 1 or doc["expires_at"] <= (now or utcnow()):
            return None  # another request spent it first, or it had run out
        return _user(doc)


class Sessions:
    """Browser sessions: ended by signing out, or after SESSION_IDLE without use."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.coll = db["web_sessions"]

    async def start(self, user: WebUser, now: datetime | None = None) -> str:
        token = secrets.token_urlsafe(32)
        now = now or utcnow()
        await self.coll.insert_one({"_id": token_hash(token), **_fields(user), "last_seen": now})
        return token

    async def get(self, token: str, now: datetime | None = None) -> Session | None:
        now = now or utcnow()
        key = token_hash(token)
        doc = await self.coll.find_one({"_id": key})
        if doc is None:
            return None
        last_seen: datetime = doc["last_seen"]
        if now - last_seen > SESSION_IDLE:
            await self.coll.delete_one({"_id": key})
            return None
        if now - last_seen > TOUCH_EVERY:
            await self.coll.update_one({"_id": key}, {"$set": {"last_seen": now}})
            last_seen = now
        return Session(_user(doc), key, last_seen)

    async def end(self, token: str) -> None:
        await self.coll.delete_one({"_id": token_hash(token)})

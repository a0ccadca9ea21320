"""Telegram's Mini App launch data (`initData`), checked as Telegram documents it:

    secret = HMAC_SHA256(key="WebAppData", msg=bot_token)
    hash   = hex(HMAC_SHA256(key=secret, msg=data_check_string))

the data-check string being every field but `hash` as `key=value`, sorted by key, joined
by newlines; and `auth_date` no older than a day.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from dataclasses import dataclass

from storage.errors import LinksnapError
from storage.websessions import WebUser

MAX_AGE = 24 * 3600.0
CLOCK_SKEW = 300.0  # seconds an `auth_date` may lie ahead of our clock


class InitDataError(LinksnapError):
    """Not launch data Telegram signed for this bot now."""


class Malformed(InitDataError):
    pass


class Forged(InitDataError):
    pass


class Expired(InitDataError):
    pass


@dataclass(frozen=True)
class LaunchData:
    user: WebUser
    auth_date: int


def secret_key(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def sign(fields: dict[str, str], bot_token: str) -> str:
    """The `hash` Telegram would give these fields (for tests and for `verify`)."""
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()) if k != "hash")
    return hmac.new(secret_key(bot_token), check.encode(), hashlib.sha256).hexdigest()


def parse(init_data: str) -> dict[str, str]:
    try:
        pairs = urllib.parse.parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise Malformed("not a query string") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise Malformed("a field given twice")
    return fields


def verify(init_data: str, bot_token: str, *, now: float, max_age: float = MAX_AGE) -> LaunchData:
    """The user Telegram vouches for; raises Malformed, Forged or Expired."""
    fields = parse(init_data)
    given = fields.get("hash", "")
    if not hmac.compare_digest(given.encode(), sign(fields, bot_token).encode()):
        raise Forged("hash mismatch")
    try:
        auth_date = int(fields["auth_date"])
        user = json.loads(fields["user"])
        user_id = int(user["id"])
    except (KeyError, ValueError, TypeError):
        raise Malformed("no user or auth_date") from None
    if now - auth_date > max_age or auth_date - now > CLOCK_SKEW:
        raise Expired(f"auth_date {auth_date}")
    lang = str(user.get("language_code") or "en")
    return LaunchData(WebUser(user_id, lang, str(user.get("first_name") or "")), auth_date)


def language_hint(init_data: str) -> str | None:
    """The user's language as the launch data claims it, unchecked: only to choose the
    language of a refusal."""
    try:
        user = json.loads(parse(init_data).get("user", "{}"))
        return str(user.get("language_code") or "") or None
    except (InitDataError, ValueError, AttributeError):
        return None

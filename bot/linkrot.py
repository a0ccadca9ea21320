"""Is a saved link still there? A light HTTP check, through the same guard as captures."""

from __future__ import annotations

import re
import socket
import urllib.parse
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.netguard import NetGuard
from storage.models import utcnow
from storage.repository import LinkStore

MAX_REDIRECTS = 5
GONE = frozenset({404, 410})
REQUEST_SECONDS = 15


class _Pinned(AbstractResolver):
    """Resolve only to the addresses the guard checked, so DNS cannot change its answer."""

    def __init__(self, addresses: tuple[str, ...]) -> None:
        self._addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self._addresses
        ]

    async def close(self) -> None:
        pass


async def is_alive(guard: NetGuard, url: str) -> bool | None:
    """True if the page answers; False if it is gone (404, 410, or its name no longer
    resolves); None when the answer says nothing about the page itself (401, 403, 429,
    5xx, a timeout, a refused connection): check again later."""
    for _ in range(MAX_REDIRECTS + 1):
        url = as_browser_would(url)
        verdict = await guard.check_url(url)
        if verdict.reason == "unresolvable":
            return False
        if not verdict.allowed:
            return None
        status, location = await _fetch_head(url, verdict.addresses)
        if status is None:
            return None
        if location is None:
            return _judge(status)
        url = urllib.parse.urljoin(url, location)
    return None


def _judge(status: int) -> bool | None:
    if status in GONE:
        return False
    return True if status < 400 else None


def as_browser_would(url: str) -> str:
    """The URL as the URL standard reads it, which is how the guard judged it: tabs and
    newlines dropped and, in http(s), a backslash is a slash. Without this an HTTP client
    could read `http://a.example\\@127.0.0.1/` as a request to 127.0.0.1."""
    cleaned = re.sub(r"[\t\n\r]", "", url.strip())
    if cleaned.lower().startswith(("http:", "https:")):
        cleaned = cleaned.replace("\\", "/")
    return cleaned


async def _fetch_head(url: str, addresses: tuple[str, ...]) -> tuple[int | None, str | None]:
    """(status, redirect target) of a GET that reads no body; (None, None) on failure."""
    connector = aiohttp.TCPConnector(resolver=_Pinned(addresses), limit=1)
    client_timeout = aiohttp.ClientTimeout(total=REQUEST_SECONDS)
    headers: dict[str, Any] = {"User-Agent": "linksnap-linkcheck/1.0"}
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session,
            session.get(url, allow_redirects=False, headers=headers) as response,
        ):
            redirect = response.headers.get("Location") if 300 <= response.status < 400 else None
            return response.status, redirect
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None, None


async def check_due(store: LinkStore, guard: NetGuard, max_age: float = 7 * 86400) -> int:
    """Check saved links not checked for `max_age` seconds; returns how many."""
    records = await store.due_for_check(utcnow() - timedelta(seconds=max_age))
    for record in records:
        await store.set_alive(record.id, await is_alive(guard, record.final_url or record.url))
    return len(records)

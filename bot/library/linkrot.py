"""Is a saved link still there? A light HTTP check, through the same guard as captures.

HEAD first (no body is sent back); GET where a server refuses HEAD (405, 501, a dropped
connection) or answers it with a client error, since some servers route HEAD badly and
only "gone" from a GET is trusted. Every request is judged by the guard and goes to the
addresses it checked (DNS pinned), and each host is asked at most once a second
(bot/library/hostpace.py).
"""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.guard.netguard import NetGuard, as_browser_would
from bot.library.hostpace import HostPacer

MAX_REDIRECTS = 5
GONE = frozenset({404, 410})
REQUEST_SECONDS = 15
# A whole check (HEAD, GET, redirects, waits for the host's turn) at most; then unknown.
CHECK_SECONDS = 60.0
HEAD_UNTRUSTED = frozenset({501})  # besides 4xx other than 429: ask again with GET
USER_AGENT = "linksnap-linkcheck/1.0"  # how a site (or a test's page server) tells a check
_HEADERS: dict[str, Any] = {"User-Agent": USER_AGENT}


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


@dataclass(frozen=True)
class _Answer:
    status: int | None  # None: no answer (timeout, refused, broken)
    location: str | None = None  # where a 3xx points
    retry_with_get: bool = False  # HEAD said nothing to trust


async def is_alive(guard: NetGuard, url: str, pacer: HostPacer | None = None) -> bool | None:
    """True if the page answers; False if it is gone (404, 410, or its name no longer
    resolves); None when the answer says nothing about the page itself (401, 403, 429,
    5xx, a timeout, a refused connection): check again later."""
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            return await _follow(guard, url, pacer or HostPacer(0))
    except TimeoutError:
        return None


async def _follow(guard: NetGuard, url: str, pacer: HostPacer) -> bool | None:
    method = "HEAD"
    for _ in range(MAX_REDIRECTS + 1):
        url = as_browser_would(url)
        verdict = await guard.check_url(url)
        if verdict.reason == "unresolvable":
            return False
        if not verdict.allowed:
            return None
        answer = await _ask(pacer, method, url, verdict.addresses)
        if answer.retry_with_get:
            method = "GET"  # for this hop and the rest: this site does not do HEAD well
            answer = await _ask(pacer, method, url, verdict.addresses)
        if answer.status is None:
            return None
        if answer.location is None:
            return _judge(answer.status)
        url = urllib.parse.urljoin(url, answer.location)
    return None


def _judge(status: int) -> bool | None:
    if status in GONE:
        return False
    return True if status < 400 else None


def host_of(url: str) -> str:
    """The host a URL asks (what the pacer counts by), as the guard reads it."""
    try:
        return (urllib.parse.urlsplit(as_browser_would(url)).hostname or "").lower()
    except ValueError:
        return ""


async def _ask(pacer: HostPacer, method: str, url: str, addresses: tuple[str, ...]) -> _Answer:
    async with pacer.turn(host_of(url)):
        return await _request(method, url, addresses)


async def _request(method: str, url: str, addresses: tuple[str, ...]) -> _Answer:
    """One request that reads no body."""
    connector = aiohttp.TCPConnector(resolver=_Pinned(addresses), limit=1)
    client_timeout = aiohttp.ClientTimeout(total=REQUEST_SECONDS)
    head = method == "HEAD"
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session,
            session.request(method, url, allow_redirects=False, headers=_HEADERS) as response,
        ):
            status = response.status
            redirect = response.headers.get("Location") if 300 <= status < 400 else None
            refused = (400 <= status < 500 and status != 429) or status in HEAD_UNTRUSTED
            return _Answer(status, redirect, retry_with_get=head and refused)
    except (TimeoutError, aiohttp.ClientConnectorError):
        return _Answer(None)  # slow or down: asking again with GET would not help
    except (aiohttp.ClientError, OSError):
        return _Answer(None, retry_with_get=head)  # e.g. the server hung up on HEAD

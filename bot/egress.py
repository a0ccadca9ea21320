"""A local forward proxy that Chromium is forced through: every connection is checked.

Playwright's request routing does not see redirect hops, WebSockets or DNS answers,
so the decision is made here instead, on the address actually connected to: each
CONNECT (https, wss) and each absolute-form request (http, ws) is resolved, checked by
`NetGuard`, and pinned to the checked address, which also defeats DNS rebinding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from collections import OrderedDict
from typing import Any

from bot.netguard import NetGuard, Verdict

log = logging.getLogger(__name__)

BLOCK_HEADER = "X-Linksnap-Blocked"
UPSTREAM_HEADER = "X-Linksnap-Upstream"
# Chromium's own background services (component updates, account cookies), which it
# calls whatever the flags say. Refused here without a DNS lookup: a capture never needs
# them, and the machine's resolver should not see a query per browser start.
BROWSER_SERVICE_HOSTS = frozenset(
    {
        "update.googleapis.com",
        "accounts.google.com",
        "clients2.google.com",
        "clientservices.googleapis.com",
        "optimizationguide-pa.googleapis.com",
        "safebrowsingohttpgateway.googleapis.com",
        "content-autofill.googleapis.com",
        "android.clients.google.com",
    }
)
_HEAD_LIMIT = 64 * 1024
_PIPE_CHUNK = 64 * 1024


class GuardProxy:
    """HTTP/1.1 proxy on 127.0.0.1 that refuses non-public destinations."""

    def __init__(self, guard: NetGuard, *, connect_timeout: float = 10.0) -> None:
        self._guard = guard
        self._connect_timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.refusals: OrderedDict[str, str] = OrderedDict()
        self.upstream_errors: OrderedDict[str, str] = OrderedDict()
        self.blocked = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=_HEAD_LIMIT)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    def refusal_for(self, host: str | None) -> str | None:
        """Why the last connection to `host` was refused, if it was."""
        return self.refusals.get(_key(host))

    def upstream_error_for(self, host: str | None) -> str | None:
        """Why the last connection to `host` failed upstream ("refused", "timeout")."""
        return self.upstream_errors.get(_key(host))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
        ):
            pass
        except Exception:
            log.exception("egress proxy: unexpected error")
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        request_line, _, rest = head.partition(b"\r\n")
        method, target, version = request_line.decode("latin-1").split(" ", 2)
        if method.upper() == "CONNECT":
            host, port = _split_authority(target, 443)
            verdict = await self._check(host, port)
            if not verdict.allowed:
                return await _refuse(writer, verdict.reason)
            upstream = await self._open(host, verdict, port)
            if upstream is None:
                return await _refuse(writer, self.upstream_errors[_key(host)], upstream=True)
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            return await _splice(reader, writer, *upstream)
        parts = urllib.parse.urlsplit(target)
        if parts.scheme not in {"http", "ws"} or not parts.hostname:
            return await _refuse(writer, "scheme")
        port = parts.port or 80
        verdict = await self._check(parts.hostname, port)
        if not verdict.allowed:
            return await _refuse(writer, verdict.reason)
        opened = await self._open(parts.hostname, verdict, port)
        if opened is None:
            reason = self.upstream_errors[_key(parts.hostname)]
            return await _refuse(writer, reason, upstream=True)
        up_reader, up_writer = opened
        path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        up_writer.write(f"{method} {path} {version}\r\n".encode("latin-1") + _forward_headers(rest))
        await _splice(reader, writer, up_reader, up_writer)

    async def _check(self, host: str, port: int) -> Verdict:
        if _key(host).rstrip(".") in BROWSER_SERVICE_HOSTS:
            return Verdict(False, "browser_service")
        verdict = await self._guard.check_host(host, port)
        if not verdict.allowed:
            self.blocked += 1
            _remember(self.refusals, host, verdict.reason)
            log.info("egress blocked: reason=%s port=%s", verdict.reason, port)
        return verdict

    async def _open(
        self, host: str, verdict: Verdict, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the first checked address that answers; None (and why) if none."""
        reason = "refused"
        for address in verdict.addresses:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(address, port, limit=_PIPE_CHUNK), self._connect_timeout
                )
            except TimeoutError:
                reason = "timeout"
            except OSError:
                reason = "refused"
        _remember(self.upstream_errors, host, reason)
        return None


def _key(host: str | None) -> str:
    return (host or "").lower().strip("[]")


def _remember(table: OrderedDict[str, str], host: str, reason: str) -> None:
    """Keep the latest reason per host, for the capture to explain a failure; bounded."""
    key = _key(host)
    table[key] = reason
    table.move_to_end(key)
    while len(table) > 256:
        table.popitem(last=False)


def _split_authority(target: str, default_port: int) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or "]" in port:
        return target.strip("[]"), default_port
    return host.strip("[]"), int(port)


def _forward_headers(raw: bytes) -> bytes:
    """Drop hop-by-hop proxy headers and ask for one request per connection.

    One request per connection keeps a reused client connection from reaching a
    second host without being checked.
    """
    kept = []
    for line in raw.split(b"\r\n"):
        name = line.split(b":", 1)[0].strip().lower()
        if line and name not in {b"proxy-connection", b"proxy-authorization", b"connection"}:
            kept.append(line)
    upgrade = any(line.lower().startswith(b"upgrade:") for line in kept)
    kept.append(b"Connection: Upgrade" if upgrade else b"Connection: close")
    return b"\r\n".join(kept) + b"\r\n\r\n"


async def _refuse(writer: asyncio.StreamWriter, reason: str, *, upstream: bool = False) -> None:
    status, header = (
        ("502 Bad Gateway", UPSTREAM_HEADER) if upstream else ("403 Forbidden", BLOCK_HEADER)
    )
    body = f"linksnap could not open this destination ({reason})".encode()
    writer.write(
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nConnection: close\r\n".encode()
        + f"{header}: {reason}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _splice(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    pumps = {
        asyncio.create_task(_pump(reader, up_writer)),
        asyncio.create_task(_pump(up_reader, writer)),
    }
    try:
        _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        # One side is done; let the other drain briefly, not forever.
        if pending:
            await asyncio.wait(pending, timeout=5)
    finally:
        for task in pumps:
            task.cancel()
        up_writer.close()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(_PIPE_CHUNK):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            if dst.can_write_eof():
                dst.write_eof()

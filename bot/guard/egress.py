"""A forward proxy that Chromium is forced through: every connection is checked.

Playwright's request routing does not see redirect hops, WebSockets or DNS answers,
so the decision is made here instead, on the address actually connected to: each
CONNECT (https, wss) and each absolute-form request (http, ws) is resolved, checked by
`NetGuard`, and pinned to the checked address, which also defeats DNS rebinding.

The proxy is a door into the bot's network, so it is guarded itself: each capture gets
its own random credential (an `EgressSession`, handed to Playwright as the context's
proxy `username`/`password`) and anything else is answered 407; connections are capped
per capture and in total, a tunnel with no traffic either way is closed, and the bytes
one capture may move are capped. Its own port is never a destination, whatever
CAPTURE_ALLOW_PRIVATE says.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import ipaddress
import logging
import secrets
import socket
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from bot.guard.netguard import NetGuard, Verdict

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
_DRAIN_GRACE = 5.0
_PROXY_AUTH_REQUIRED = (
    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
    b'Proxy-Authenticate: Basic realm="linksnap"\r\n'
    b"Content-Length: 0\r\nConnection: close\r\nProxy-Connection: close\r\n\r\n"
)


@dataclass(frozen=True)
class EgressLimits:
    """How much one capture, and all of them together, may use the proxy."""

    max_connections: int = 256
    max_connections_per_capture: int = 64
    idle_timeout: float = 20.0
    max_bytes_per_capture: int = 64 * 1024 * 1024


@dataclass(eq=False)
class EgressSession:
    """One capture's credential, budget and what the proxy refused it."""

    username: str
    password: str
    limits: EgressLimits
    open_connections: int = 0
    bytes_moved: int = 0
    over_budget: bool = False
    closed: bool = False
    refusals: dict[str, str] = field(default_factory=dict)
    upstream_errors: dict[str, str] = field(default_factory=dict)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def proxy_settings(self, server: str) -> dict[str, str]:
        """Playwright's `proxy` option for a context of this capture."""
        return {"server": server, "username": self.username, "password": self.password}

    def refusal_for(self, host: str | None, port: int) -> str | None:
        """Why the proxy refused this capture a connection to `host:port`, if it did."""
        return self.refusals.get(_key(host, port))

    def upstream_error_for(self, host: str | None, port: int) -> str | None:
        """Why a connection to `host:port` failed beyond the guard ("refused", "busy", ...)."""
        return self.upstream_errors.get(_key(host, port))

    def _count(self, size: int) -> None:
        self.bytes_moved += size
        if not self.over_budget and self.bytes_moved > self.limits.max_bytes_per_capture:
            self.over_budget = True
            log.info("egress: a capture went over its byte budget; closing its connections")
            self._abort_all()

    def _abort_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()


class GuardProxy:
    """HTTP/1.1 proxy that refuses non-public destinations and unauthenticated clients."""

    def __init__(
        self,
        guard: NetGuard,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
        limits: EgressLimits | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self._guard = guard
        self._host = host
        self._want_port = port
        self._public_url = public_url
        self.limits = limits or EgressLimits()
        self._connect_timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Connections that have not yet sent a request head, oldest first: when there
        # are too many, the oldest is dropped, so idle sockets can never crowd out a capture.
        self._waiting: dict[asyncio.StreamWriter, None] = {}
        self._sessions: dict[str, EgressSession] = {}
        self.active = 0
        self.blocked = 0
        self.port = 0

    @property
    def url(self) -> str:
        """Where a browser reaches the proxy (EGRESS_PROXY_URL, else the listening address)."""
        if self._public_url:
            return self._public_url.rstrip("/")
        host = self._host
        if host in {"0.0.0.0", "::", ""}:
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def sessions(self) -> int:
        """Capture credentials valid now (each page's context holds one)."""
        return len(self._sessions)

    @property
    def connections(self) -> int:
        """Client connections open now (authenticated or not)."""
        return len(self._tasks)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._want_port, limit=_HEAD_LIMIT, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    def open_session(self) -> EgressSession:
        """A fresh credential and budget for one capture."""
        session = EgressSession(secrets.token_hex(8), secrets.token_urlsafe(24), self.limits)
        self._sessions[session.username] = session
        return session

    def close_session(self, session: EgressSession) -> None:
        """Revoke the credential and cut every connection still open under it."""
        session.closed = True
        self._sessions.pop(session.username, None)
        session._abort_all()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._waiting[writer] = None
        while len(self._waiting) > self.limits.max_connections:
            oldest = next(iter(self._waiting))
            self._waiting.pop(oldest)
            oldest.transport.abort()
        try:
            await self._authenticated(reader, writer)
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ValueError,
        ):
            pass
        except Exception:
            log.exception("egress proxy: unexpected error")
        finally:
            self._waiting.pop(writer, None)
            self._tasks.discard(task)
            writer.close()

    async def _authenticated(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.limits.idle_timeout)
        self._waiting.pop(writer, None)
        request_line, _, rest = head.partition(b"\r\n")
        method, target, version = request_line.decode("latin-1").split(" ", 2)
        session = self._session_for(rest)
        if session is None:
            writer.write(_PROXY_AUTH_REQUIRED)
            await writer.drain()
            return
        host, port = _target(method, target)
        if (
            session.open_connections >= self.limits.max_connections_per_capture
            or self.active >= self.limits.max_connections
        ):
            _remember(session.upstream_errors, host, port, "busy")
            return await _refuse(writer, "busy", upstream=True)
        if session.over_budget:
            _remember(session.upstream_errors, host, port, "too_large")
            return await _refuse(writer, "too_large", upstream=True)
        session.open_connections += 1
        session._writers.add(writer)
        self.active += 1
        try:
            await self._handle(session, method, target, version, rest, reader, writer)
        finally:
            self.active -= 1
            session.open_connections -= 1
            session._writers.discard(writer)

    def _session_for(self, headers: bytes) -> EgressSession | None:
        """The live session whose credential this request carries, if any."""
        for line in headers.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() != b"proxy-authorization":
                continue
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() != b"basic":
                return None
            try:
                decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            username, _, password = decoded.partition(":")
            session = self._sessions.get(username)
            if session is None or session.closed:
                return None
            if hmac.compare_digest(password.encode(), session.password.encode()):
                return session
            return None
        return None

    async def _handle(
        self,
        session: EgressSession,
        method: str,
        target: str,
        version: str,
        rest: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        if method.upper() == "CONNECT":
            host, port = _split_authority(target, 443)
            verdict = await self._check(session, host, port)
            if not verdict.allowed:
                return await _refuse(writer, verdict.reason)
            upstream = await self._open(session, host, verdict, port)
            if upstream is None:
                return await _refuse(
                    writer, session.upstream_errors[_key(host, port)], upstream=True
                )
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            return await self._splice(session, reader, writer, *upstream)
        parts = urllib.parse.urlsplit(target)
        if parts.scheme not in {"http", "ws"} or not parts.hostname:
            return await _refuse(writer, "scheme")
        port = parts.port or 80
        verdict = await self._check(session, parts.hostname, port)
        if not verdict.allowed:
            return await _refuse(writer, verdict.reason)
        opened = await self._open(session, parts.hostname, verdict, port)
        if opened is None:
            reason = session.upstream_errors[_key(parts.hostname, port)]
            return await _refuse(writer, reason, upstream=True)
        up_reader, up_writer = opened
        path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        up_writer.write(f"{method} {path} {version}\r\n".encode("latin-1") + _forward_headers(rest))
        await self._splice(session, reader, writer, up_reader, up_writer)

    async def _check(self, session: EgressSession, host: str, port: int) -> Verdict:
        if host.lower().rstrip(".") in BROWSER_SERVICE_HOSTS:
            verdict = Verdict(False, "browser_service")
        else:
            verdict = await self._guard.check_host(host, port)
            if verdict.allowed and port == self.port and any(map(_is_own, verdict.addresses)):
                verdict = Verdict(False, "proxy")
        if not verdict.allowed:
            self.blocked += 1
            _remember(session.refusals, host, port, verdict.reason)
            log.info("egress blocked: reason=%s port=%s", verdict.reason, port)
        return verdict

    async def _open(
        self, session: EgressSession, host: str, verdict: Verdict, port: int
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
        _remember(session.upstream_errors, host, port, reason)
        return None

    async def _splice(
        self,
        session: EgressSession,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        """Relay both ways until one side ends, the tunnel idles out, or the budget is spent."""
        loop = asyncio.get_running_loop()
        last = [loop.time()]
        session._writers.add(up_writer)
        pumps = {
            asyncio.create_task(_pump(reader, up_writer, session, last)),
            asyncio.create_task(_pump(up_reader, writer, session, last)),
        }
        idle = self.limits.idle_timeout
        try:
            while True:
                done, pending = await asyncio.wait(
                    pumps, timeout=idle, return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    # One side is done; let the other drain briefly, not forever.
                    if pending:
                        await asyncio.wait(pending, timeout=min(_DRAIN_GRACE, idle))
                    break
                if loop.time() - last[0] >= idle:
                    log.debug("egress: closing a tunnel idle for %.0f s", idle)
                    break
        finally:
            for task in pumps:
                task.cancel()
            session._writers.discard(up_writer)
            up_writer.transport.abort()


def _is_own(address: str) -> bool:
    """Whether `address` is one of this machine's own (so it could reach the proxy's port)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    # Binding sends nothing; it succeeds only for an address of a local interface.
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(ip), 0))
        except OSError:
            return False
    return True


def _key(host: str | None, port: int) -> str:
    """One spelling per destination: the browser's host as it asked for it, and the port."""
    return f"{(host or '').lower().strip('[]').rstrip('.')}|{port}"


def _target(method: str, target: str) -> tuple[str, int]:
    if method.upper() == "CONNECT":
        return _split_authority(target, 443)
    parts = urllib.parse.urlsplit(target)
    return parts.hostname or "", parts.port or 80


def _remember(table: dict[str, str], host: str, port: int, reason: str) -> None:
    """Keep the latest reason per destination, for the capture to explain a failure; bounded."""
    key = _key(host, port)
    table.pop(key, None)
    table[key] = reason
    while len(table) > 256:
        table.pop(next(iter(table)))


def _split_authority(target: str, default_port: int) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or "]" in port:
        return target.strip("[]"), default_port
    return host.strip("[]"), int(port)


def _forward_headers(raw: bytes) -> bytes:
    """Drop hop-by-hop proxy headers (the credential too) and ask for one request per connection.

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


async def _pump(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, session: EgressSession, last: list[float]
) -> None:
    loop = asyncio.get_running_loop()
    try:
        while data := await src.read(_PIPE_CHUNK):
            last[0] = loop.time()
            session._count(len(data))
            if session.over_budget:
                return
            dst.write(data)
            await dst.drain()
            last[0] = loop.time()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            if dst.can_write_eof():
                dst.write_eof()

"""A forward proxy that Chromium is forced through: every connection is checked.

Playwright's request routing does not see redirect hops, WebSockets or DNS answers,
so the decision is made here instead, on the address actually connected to: each
CONNECT (https, wss) and each absolute-form request (http, ws) is resolved, checked by
`NetGuard`, and pinned to the checked address, which also defeats DNS rebinding.

The proxy is a door into the bot's network, so it is guarded itself: each capture (an
`EgressSession`) gets a port of its own on the loopback interface, open only while the
capture lives, and the shared port answers 407 to anything without a capture's random
credential. A browser reached through EGRESS_PROXY_URL (on another host) uses the
credential, as Playwright's context `username`/`password`; a local one uses its port,
because a proxy credential makes Playwright intercept every request of the page (about
10 % more Chromium CPU in a burst, docs/BENCHMARKS.md). Connections are capped
per capture and in total, a tunnel with no traffic either way is closed, and the bytes
one capture may move are capped. Its own port is never a destination, whatever
CAPTURE_ALLOW_PRIVATE says.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import logging
import secrets
import socket
import urllib.parse
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import TypeVar

from bot.guard import socks
from bot.guard.netguard import NetGuard, Verdict
from bot.guard.relay import End, Tunnel

log = logging.getLogger(__name__)
_T = TypeVar("_T")

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
    # The capture's own listening port (loopback only), when the proxy gives it one.
    port: int | None = None
    _listener: asyncio.Server | None = None
    open_connections: int = 0
    bytes_moved: int = 0
    over_budget: bool = False
    closed: bool = False
    refusals: dict[str, str] = field(default_factory=dict)
    upstream_errors: dict[str, str] = field(default_factory=dict)
    _transports: set[asyncio.Transport] = field(default_factory=set)
    # The guard's verdict per destination, for this capture's life: a page asks for the
    # same few hosts again and again, and each answer would otherwise be a DNS query.
    # Connections still go to the addresses that verdict checked.
    _verdicts: dict[str, Verdict] = field(default_factory=dict)

    def refusal_for(self, host: str | None, port: int) -> str | None:
        """Why the proxy refused this capture a connection to `host:port`, if it did."""
        return self.refusals.get(_key(host, port))

    def upstream_error_for(self, host: str | None, port: int) -> str | None:
        """Why a connection to `host:port` failed beyond the guard ("refused", "busy", ...)."""
        return self.upstream_errors.get(_key(host, port))

    def _count(self, size: int) -> bool:
        """Add `size` bytes to the budget; False (and every connection cut) once it is spent."""
        self.bytes_moved += size
        if not self.over_budget and self.bytes_moved > self.limits.max_bytes_per_capture:
            self.over_budget = True
            log.info("egress: a capture went over its byte budget; closing its connections")
            self._abort_all()
        return not self.over_budget

    def _abort_all(self) -> None:
        for transport in list(self._transports):
            transport.abort()


class _Client(End):
    """A browser's connection to the proxy: a request head first, then one end of a tunnel."""

    def __init__(self, proxy: GuardProxy, session: EgressSession | None = None) -> None:
        super().__init__()
        self._proxy = proxy
        self.session = session  # set when it came in on a capture's own port
        self._head = bytearray()
        self._head_timer: asyncio.TimerHandle | None = None
        self.handshake: asyncio.Task[None] | None = None
        self._socks = False  # speaking SOCKS5 (only on a capture's own port)
        self._socks_greeted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_timer = asyncio.get_running_loop().call_later(
            self._proxy.limits.idle_timeout, transport.close
        )
        self._proxy._accepted(self)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None or self.handshake is not None:
            # (Reading is paused during the handshake, so nothing arrives until the tunnel.)
            return super().data_received(data)
        if not self._head and data[:1] == b"\x05":
            self._socks = True  # (only on a live capture's own port: `_socks_received`)
        self._head += data
        if self._socks:
            return self._socks_received()
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > _HEAD_LIMIT:
                self.abort()
            return
        head, extra = bytes(self._head[: end + 4]), bytes(self._head[end + 4 :])
        self._start(self._proxy._handshake(self, head, extra))

    def _socks_received(self) -> None:
        assert self.transport is not None
        # SOCKS has no credential here: it is spoken only on a live capture's own port
        # (also cut if the capture ended while the greeting came in).
        if self.session is None or self.session.closed:
            return self.abort()
        try:
            if not self._socks_greeted:
                used = socks.greeting(bytes(self._head))
                if used is None:
                    return
                del self._head[:used]
                self._socks_greeted = True
                self.transport.write(socks.CHOSE_NO_AUTH)
            request = socks.request(bytes(self._head))
        except socks.SocksError as exc:
            return self.reply(exc.answer) if exc.answer else self.abort()
        if request is None:  # (at most a greeting and a request's 262 bytes wait here)
            return
        extra = bytes(self._head[request.used :])
        self._start(self._proxy._socks_handshake(self, request.host, request.port, extra))

    def _start(self, handshake: Coroutine[None, None, None]) -> None:
        """Check and connect the destination the browser asked for, reading nothing meanwhile."""
        self._head = bytearray()
        self._stop_head_timer()
        self._proxy._waiting.pop(self, None)
        assert self.transport is not None
        self.transport.pause_reading()  # until the destination is checked and connected
        self.handshake = asyncio.get_running_loop().create_task(handshake)

    def eof_received(self) -> bool:
        if self.tunnel is None:
            return False  # gone before its request was served: close
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)
        if self.handshake is not None and self.tunnel is None:
            self.handshake.cancel()
        self._proxy._gone(self)

    def reply(self, data: bytes) -> None:
        """Answer the browser and close (a refusal, a 407)."""
        if self.transport is not None and not self.lost:
            self.transport.write(data)
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None


class _Lease:
    """One browser connection counted against its capture's and the proxy's caps until it ends.

    Its transports (the browser's, then the destination's) are the ones the capture's
    byte budget or closing session cuts.
    """

    def __init__(self, proxy: GuardProxy, session: EgressSession, client: asyncio.Transport):
        self._proxy = proxy
        self._session = session
        self._transports = [client]
        self._released = False
        proxy.active += 1
        session.open_connections += 1
        session._transports.add(client)

    def hold(self, upstream: asyncio.Transport) -> None:
        self._transports.append(upstream)
        self._session._transports.add(upstream)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._proxy.active -= 1
        self._session.open_connections -= 1
        for transport in self._transports:
            self._session._transports.discard(transport)


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
        self._clients: set[_Client] = set()
        # Connections that have not yet sent a request head, oldest first: when there
        # are too many, the oldest is dropped, so idle sockets can never crowd out a capture.
        self._waiting: dict[_Client, None] = {}
        self._sessions: dict[str, EgressSession] = {}
        # Ports of its own for each capture, unless a browser elsewhere must be told an
        # address (EGRESS_PROXY_URL) or the proxy listens beyond the loopback interface.
        self._session_ports = public_url is None and _is_loopback(host)
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
        return f"http://{_bracketed(host)}:{self.port}"

    @property
    def sessions(self) -> int:
        """Capture credentials valid now (each page's context holds one)."""
        return len(self._sessions)

    @property
    def connections(self) -> int:
        """Client connections open now (authenticated or not)."""
        return len(self._clients)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Client(self), self._host, self._want_port, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for session in list(self._sessions.values()):
            self.close_session(session)
        if self._server is not None:
            self._server.close()
            handshakes = [c.handshake for c in self._clients if c.handshake is not None]
            for client in list(self._clients):
                client.abort()
            for task in handshakes:
                task.cancel()
            await asyncio.gather(*handshakes, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def open_session(self) -> EgressSession:
        """A fresh credential, port (when local) and budget for one capture."""
        session = EgressSession(secrets.token_hex(8), secrets.token_urlsafe(24), self.limits)
        self._sessions[session.username] = session
        if self._session_ports:
            try:
                await self._listen(session)
            except BaseException:  # cancelled too: no port outlives an unfinished session
                self.close_session(session)
                raise
        return session

    async def _listen(self, session: EgressSession) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.create_server((self._host, 0), family=family, backlog=128)
        try:
            listener = await asyncio.get_running_loop().create_server(
                lambda: _Client(self, session), sock=sock, start_serving=False
            )
        except BaseException:
            sock.close()
            raise
        session._listener = listener
        session.port = sock.getsockname()[1]
        await listener.start_serving()

    def close_session(self, session: EgressSession) -> None:
        """Revoke the credential, shut the port and cut every connection still open under it."""
        session.closed = True
        self._sessions.pop(session.username, None)
        if session._listener is not None:
            session._listener.close()
            session._listener = None
        session._abort_all()

    def browser_proxy(self, session: EgressSession) -> dict[str, str]:
        """Playwright's `proxy` option for a context of this capture."""
        if session.port is not None:
            return {"server": f"socks5://{_bracketed(self._host)}:{session.port}"}
        return {"server": self.url, "username": session.username, "password": session.password}

    def _accepted(self, client: _Client) -> None:
        self._clients.add(client)
        self._waiting[client] = None
        while len(self._waiting) > self.limits.max_connections:
            oldest = next(iter(self._waiting))
            self._waiting.pop(oldest)
            oldest.abort()

    def _gone(self, client: _Client) -> None:
        self._waiting.pop(client, None)
        self._clients.discard(client)

    async def _handshake(self, client: _Client, head: bytes, extra: bytes) -> None:
        await self._guarded(client, self._authenticated(client, head, extra))

    async def _socks_handshake(self, client: _Client, host: str, port: int, extra: bytes) -> None:
        await self._guarded(client, self._socks_connect(client, host, port, extra))

    async def _guarded(self, client: _Client, handshake: Awaitable[None]) -> None:
        try:
            await handshake
        except (ConnectionError, TimeoutError, ValueError):
            client.abort()
        except asyncio.CancelledError:
            client.abort()
            raise
        except Exception:
            log.exception("egress proxy: unexpected error")
            client.abort()

    async def _authenticated(self, client: _Client, head: bytes, extra: bytes) -> None:
        request_line, _, rest = head.partition(b"\r\n")
        method, target, version = request_line.decode("latin-1").split(" ", 2)
        session = client.session or self._session_for(rest)
        if session is None or session.closed:
            client.reply(_PROXY_AUTH_REQUIRED)
            return None
        host, port = _target(method, target)
        refusal = self._over_limits(session, host, port)
        if refusal is not None:
            client.reply(refusal)
            return None
        assert client.transport is not None
        lease = _Lease(self, session, client.transport)
        try:
            upstream = await self._handle(session, client, method, target, version, rest)
        except BaseException:
            lease.release()
            raise
        if upstream is None or upstream.transport is None:
            lease.release()
            return None
        self._tunnel(session, client, lease, upstream, host, port, extra)
        return None

    async def _socks_connect(self, client: _Client, host: str, port: int, extra: bytes) -> None:
        """A SOCKS5 CONNECT on a capture's own port: checked and connected as a CONNECT is."""
        session = client.session
        if session is None or session.closed:
            return client.abort()
        if self._over_limits(session, host, port) is not None:
            return client.reply(socks.reply(socks.REFUSED))
        assert client.transport is not None
        lease = _Lease(self, session, client.transport)
        try:
            verdict = await self._check(session, host, port)
            upstream = await self._open(session, host, verdict, port) if verdict.allowed else None
        except BaseException:
            lease.release()
            raise
        if upstream is None or upstream.transport is None:
            lease.release()
            code = socks.REFUSED if verdict.allowed else socks.NOT_ALLOWED
            return client.reply(socks.reply(code))
        client.transport.write(socks.reply(socks.SUCCEEDED))
        self._tunnel(session, client, lease, upstream, host, port, extra)

    def _tunnel(
        self,
        session: EgressSession,
        client: _Client,
        lease: _Lease,
        upstream: End,
        host: str,
        port: int,
        extra: bytes,
    ) -> None:
        """Join the browser's connection to the checked destination's, counted and timed."""
        assert upstream.transport is not None
        lease.hold(upstream.transport)
        tunnel = Tunnel(
            client,
            upstream,
            meter=session._count,
            idle=self.limits.idle_timeout,
            grace=_DRAIN_GRACE,
            on_close=lease.release,
            # Cut for silence before any answer: the page "did not answer", which is what
            # the capture says (the browser only sees the connection closed).
            on_silent=lambda: _remember(session.upstream_errors, host, port, "timeout"),
        )
        tunnel.send(client, extra)
        if client.transport is not None and not client.lost:
            client.transport.resume_reading()

    def _over_limits(self, session: EgressSession, host: str, port: int) -> bytes | None:
        """The refusal when this capture (or the proxy) has no room for one more connection."""
        if (
            session.open_connections >= self.limits.max_connections_per_capture
            or self.active >= self.limits.max_connections
        ):
            _remember(session.upstream_errors, host, port, "busy")
            return _refusal("busy", upstream=True)
        if session.over_budget:
            _remember(session.upstream_errors, host, port, "too_large")
            return _refusal("too_large", upstream=True)
        return None

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
            session = self._sessions.get(username)  # (a closed session has left it)
            if session is None:
                return None
            if hmac.compare_digest(password.encode(), session.password.encode()):
                return session
            return None
        return None

    async def _handle(
        self,
        session: EgressSession,
        client: _Client,
        method: str,
        target: str,
        version: str,
        rest: bytes,
    ) -> End | None:
        """The checked, connected upstream end (the browser told so), or None (refused)."""
        if method.upper() == "CONNECT":
            host, port = _split_authority(target, 443)
            verdict = await self._check(session, host, port)
            if not verdict.allowed:
                client.reply(_refusal(verdict.reason))
                return None
            upstream = await self._open(session, host, verdict, port)
            if upstream is None:
                reason = session.upstream_errors[_key(host, port)]
                client.reply(_refusal(reason, upstream=True))
                return None
            assert client.transport is not None
            client.transport.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            return upstream
        parts = urllib.parse.urlsplit(target)
        if parts.scheme not in {"http", "ws"} or not parts.hostname:
            client.reply(_refusal("scheme"))
            return None
        port = parts.port or 80
        verdict = await self._check(session, parts.hostname, port)
        if not verdict.allowed:
            client.reply(_refusal(verdict.reason))
            return None
        upstream = await self._open(session, parts.hostname, verdict, port)
        if upstream is None:
            # As the destination failed us, so we fail the browser: a reset, which Chromium
            # handles as cheaply as a refused connection; a 502 is a response it must load
            # (pageguard takes the reason from the session's record, not from an answer).
            client.abort()
            return None
        path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        assert upstream.transport is not None
        upstream.transport.write(
            f"{method} {path} {version}\r\n".encode("latin-1") + _forward_headers(rest)
        )
        return upstream

    async def _check(self, session: EgressSession, host: str, port: int) -> Verdict:
        key = _key(host, port)
        verdict = session._verdicts.get(key)
        if verdict is None:
            verdict = await self._decide(host, port)
            _remember(session._verdicts, host, port, verdict)
        if verdict.allowed and self._is_own_port(port) and any(map(_is_own, verdict.addresses)):
            # Checked on every connection, not remembered: capture ports come and go.
            verdict = Verdict(False, "proxy")
        if not verdict.allowed:
            self.blocked += 1
            _remember(session.refusals, host, port, verdict.reason)
            log.info("egress blocked: reason=%s port=%s", verdict.reason, port)
        return verdict

    async def _decide(self, host: str, port: int) -> Verdict:
        if host.lower().rstrip(".") in BROWSER_SERVICE_HOSTS:
            return Verdict(False, "browser_service")
        return await self._guard.check_host(host, port)

    def _is_own_port(self, port: int) -> bool:
        """The shared port, or a live capture's own (a few at a time: spares and slots)."""
        return port == self.port or any(s.port == port for s in self._sessions.values())

    async def _open(
        self, session: EgressSession, host: str, verdict: Verdict, port: int
    ) -> End | None:
        """A connection to the first checked address that answers; None (and why) if none."""
        loop = asyncio.get_running_loop()
        reason = "refused"
        for address in verdict.addresses:
            try:
                async with asyncio.timeout(self._connect_timeout):  # no extra task
                    _, end = await loop.create_connection(End, address, port)
                return end
            except TimeoutError:
                reason = "timeout"
            except OSError:
                reason = "refused"
        _remember(session.upstream_errors, host, port, reason)
        return None


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


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _key(host: str | None, port: int) -> str:
    """One spelling per destination: the browser's host as it asked for it, and the port."""
    return f"{(host or '').lower().strip('[]').rstrip('.')}|{port}"


def _target(method: str, target: str) -> tuple[str, int]:
    if method.upper() == "CONNECT":
        return _split_authority(target, 443)
    parts = urllib.parse.urlsplit(target)
    return parts.hostname or "", parts.port or 80


def _remember(table: dict[str, _T], host: str, port: int, reason: _T) -> None:
    """Keep the latest entry per destination (why it failed, the verdict); bounded."""
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


def _refusal(reason: str, *, upstream: bool = False) -> bytes:
    status, header = (
        ("502 Bad Gateway", UPSTREAM_HEADER) if upstream else ("403 Forbidden", BLOCK_HEADER)
    )
    body = f"linksnap could not open this destination ({reason})".encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nConnection: close\r\n".encode()
        + f"{header}: {reason}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )

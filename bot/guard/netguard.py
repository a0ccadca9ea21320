"""Decide whether the bot may open a destination: only public addresses, unless allowed.

Reason codes (stable; user texts are keyed by capture reasons, not these):
ok, scheme, malformed, unresolvable, loopback, private, link_local, metadata, cgnat,
multicast, reserved, unspecified, documentation, benchmark, broadcast.
Embedded IPv4 (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) is classified by the
address it embeds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from storage.errors import LinksnapError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

ALLOWED_SCHEMES = frozenset({"http", "https"})

_V4_RULES: list[tuple[str, str]] = [
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("169.254.169.254/32", "metadata"),
    ("169.254.0.0/16", "link_local"),
    ("100.100.100.200/32", "metadata"),  # Alibaba Cloud
    ("100.64.0.0/10", "cgnat"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "documentation"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("198.18.0.0/15", "benchmark"),
    ("192.88.99.0/24", "reserved"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
]
_V6_RULES: list[tuple[str, str]] = [
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fd00:ec2::254/128", "metadata"),  # AWS IMDS over IPv6
    ("fc00::/7", "private"),
    ("fe80::/10", "link_local"),
    ("fec0::/10", "private"),  # deprecated site-local
    ("ff00::/8", "multicast"),
    ("2001:db8::/32", "documentation"),
    ("100::/64", "reserved"),
    ("2001:10::/28", "reserved"),
    ("2001:2::/48", "benchmark"),
]
_V4_NETS = [(ipaddress.IPv4Network(n), r) for n, r in _V4_RULES]
_V6_NETS = [(ipaddress.IPv6Network(n), r) for n, r in _V6_RULES]
_NAT64 = [ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48")]
_FORBIDDEN_HOST = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^|\x7f]")


class Blocked(LinksnapError):
    """A destination the bot will not open; `reason` is one of the codes above."""

    def __init__(self, reason: str, host: str = "") -> None:
        super().__init__(f"{reason}: {host}" if host else reason)
        self.reason = reason
        self.host = host


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str
    addresses: tuple[str, ...] = ()


def _parse_v4_number(part: str) -> int | None:
    """One WHATWG IPv4 part: decimal, 0x hex or 0-prefixed octal; None if not numeric."""
    if part.lower().startswith("0x"):
        digits, base = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if digits == "":
        return 0
    try:
        return int(digits, base)
    except ValueError:
        return None


def _parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Chromium's reading of a numeric host (`127.1`, `0x7f.1`, `2130706433`), else None."""
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts.pop()
    if not parts or not re.fullmatch(r"(0[xX][0-9a-fA-F]*|[0-9]+)", parts[-1]):
        return None  # last label not numeric: a domain name
    if len(parts) > 4:
        raise Blocked("malformed", host)
    numbers = [_parse_v4_number(p) for p in parts]
    if any(n is None for n in numbers):
        raise Blocked("malformed", host)
    values = [n for n in numbers if n is not None]
    if any(v > 255 for v in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise Blocked("malformed", host)
    address = values[-1]
    for index, value in enumerate(values[:-1]):
        address += value << (8 * (3 - index))
    return ipaddress.IPv4Address(address)


def parse_host(host: str) -> IP | str:
    """Read a host as a browser does: numeric IPv4 forms, [IPv6], IDN → punycode."""
    host = re.sub(r"[\t\n\r]", "", host).strip()
    if host.startswith("[") or ":" in host:
        inner = host.removeprefix("[").removesuffix("]").split("%", 1)[0]
        try:
            return ipaddress.IPv6Address(inner)
        except ValueError:
            raise Blocked("malformed", host) from None
    if not host:
        raise Blocked("malformed", host)
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise Blocked("malformed", host) from None
    if _FORBIDDEN_HOST.search(ascii_host):
        raise Blocked("malformed", host)
    numeric = _parse_ipv4(ascii_host)
    if numeric is not None:
        return numeric
    return ascii_host.rstrip(".")


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # IPv4-compatible ::a.b.c.d (deprecated)
        return ipaddress.IPv4Address(int(ip))
    return None


def classify_ip(ip: IP) -> str:
    """'ok' for a public address, else why not."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            return classify_ip(embedded)
        for net6, reason in _V6_NETS:
            if ip in net6:
                return reason
        return "ok" if ip.is_global else "reserved"
    for net4, reason in _V4_NETS:
        if ip in net4:
            return reason
    return "ok" if ip.is_global else "reserved"


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class AllowEntry:
    """One CAPTURE_ALLOW_PRIVATE exception: a host name or network, on one port or all."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    host: str | None
    port: int | None

    def covers_ip(self, ip: IP, port: int) -> bool:
        net = self.network
        return (
            net is not None
            and ip.version == net.version
            and ip in net
            and self.port in (None, port)
        )

    def covers_host(self, host: str, port: int) -> bool:
        return self.host == host and self.port in (None, port)


def parse_allow_entry(entry: str) -> AllowEntry:
    """`host`, `IP`, `CIDR`, each optionally with `:port` (`[IPv6]:port`, `[CIDR]:port`).

    Raises ValueError naming the entry when it is none of these.
    """
    text = entry.strip()
    address, port = text, None
    if text.startswith("["):
        inner, bracket, tail = text[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(f"CAPTURE_ALLOW_PRIVATE entry {entry!r} is not a host, IP or CIDR")
        address, port = inner, _entry_port(entry, tail[1:]) if tail else None
    elif text.count(":") == 1:
        address, _, port_text = text.partition(":")
        port = _entry_port(entry, port_text)
    try:
        return AllowEntry(ipaddress.ip_network(address, strict=False), None, port)
    except ValueError:
        pass
    try:
        host = parse_host(address)
    except Blocked:
        raise ValueError(
            f"CAPTURE_ALLOW_PRIVATE entry {entry!r} is not a host, IP or CIDR"
        ) from None
    if isinstance(host, str):
        return AllowEntry(None, host, port)
    return AllowEntry(ipaddress.ip_network(host), None, port)


def _entry_port(entry: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"CAPTURE_ALLOW_PRIVATE entry {entry!r} has no valid port (1-65535)")
    return int(text)


def as_browser_would(url: str) -> str:
    """The URL as the URL standard reads it, which is how the guard judged it: tabs and
    newlines dropped and, in http(s), a backslash is a slash. Without this an HTTP client
    could read `http://a.example\\@127.0.0.1/` as a request to 127.0.0.1."""
    cleaned = re.sub(r"[\t\n\r]", "", url.strip())
    if cleaned.lower().startswith(("http:", "https:")):
        cleaned = cleaned.replace("\\", "/")
    return cleaned


class NetGuard:
    """The decision, with CAPTURE_ALLOW_PRIVATE's exceptions (hosts, IPs or CIDRs, ports)."""

    def __init__(self, allow: Iterable[str] = (), *, resolver: Resolver | None = None) -> None:
        self._allow = [parse_allow_entry(entry) for entry in allow]
        self._resolve = resolver or _system_resolver

    def _allowed_ip(self, ip: IP, port: int) -> bool:
        return any(entry.covers_ip(ip, port) for entry in self._allow)

    def check_scheme(self, url: str) -> Verdict:
        match = re.match(r"\s*([a-zA-Z][a-zA-Z0-9+.-]*):", url)
        scheme = match.group(1).lower() if match else ""
        return Verdict(scheme in ALLOWED_SCHEMES, "ok" if scheme in ALLOWED_SCHEMES else "scheme")

    async def check_url(self, url: str) -> Verdict:
        """Scheme, host and port of a link the user sent (or a redirect target)."""
        scheme = self.check_scheme(url)
        if not scheme.allowed:
            return scheme
        try:
            parts = urllib.parse.urlsplit(as_browser_would(url))
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        except ValueError:
            return Verdict(False, "malformed")
        if parts.hostname is None or not 0 < port < 65536:
            return Verdict(False, "malformed")
        raw_host = parts.netloc.rpartition("@")[2]
        raw_host = (
            raw_host[: raw_host.rfind("]") + 1]
            if raw_host.startswith("[")
            else raw_host.split(":")[0]
        )
        return await self.check_host(raw_host, port)

    async def check_host(self, host: str, port: int) -> Verdict:
        """Every address `host` stands for must be public (or allowed)."""
        try:
            parsed = parse_host(host)
        except Blocked as exc:
            return Verdict(False, exc.reason)
        if isinstance(parsed, str):
            if any(entry.covers_host(parsed, port) for entry in self._allow):
                return Verdict(True, "ok", tuple(await self._addresses(parsed, port)))
            try:
                addresses = [
                    ipaddress.ip_address(a.split("%", 1)[0])
                    for a in await self._addresses(parsed, port)
                ]
            except ValueError:
                return Verdict(False, "unresolvable")
            if not addresses:
                return Verdict(False, "unresolvable")
        else:
            addresses = [parsed]
        for ip in addresses:
            reason = classify_ip(ip)
            if reason != "ok" and not self._allowed_ip(ip, port):
                return Verdict(False, reason, tuple(str(a) for a in addresses))
        return Verdict(True, "ok", tuple(str(a) for a in addresses))

    async def _addresses(self, host: str, port: int) -> list[str]:
        try:
            return await self._resolve(host, port)
        except OSError:
            return []

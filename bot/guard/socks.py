"""The SOCKS5 greeting and CONNECT request (RFC 1928), as a local browser speaks them.

A capture's own loopback port is its credential, so only "no authentication" is
offered. Chromium sends the host name (it leaves resolving to the proxy), which the
proxy then resolves and checks as it does a CONNECT's. Plain-HTTP pages are why this
exists: through an HTTP proxy each of their requests is a connection of its own (the
proxy cannot let one connection reach a second host unchecked); through a SOCKS tunnel,
pinned to one checked destination, Chromium keeps its connections alive as it does
without a proxy (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from storage.errors import LinksnapError

VERSION = 5
NO_AUTH = 0
NO_METHOD = 0xFF
CONNECT = 1
_IPV4, _DOMAIN, _IPV6 = 1, 3, 4

# Reply codes
SUCCEEDED = 0
NOT_ALLOWED = 2  # "connection not allowed by ruleset": the guard refused it
REFUSED = 5  # the destination refused or did not answer, or the capture is over its caps
COMMAND_NOT_SUPPORTED = 7
ADDRESS_NOT_SUPPORTED = 8


class SocksError(LinksnapError):
    """The bytes are not a SOCKS5 greeting or request this proxy serves."""

    def __init__(self, answer: bytes = b"") -> None:
        super().__init__(f"socks: answered {answer.hex() or 'nothing'}")
        self.answer = answer  # what to send before closing (nothing: just close)


@dataclass(frozen=True)
class Request:
    host: str
    port: int
    used: int  # bytes of the buffer the request took


def greeting(buffer: bytes) -> int | None:
    """How many bytes the client's greeting takes; None while incomplete.

    Raises SocksError when it is not SOCKS5 or does not offer "no authentication".
    """
    if len(buffer) < 2:
        return None
    if buffer[0] != VERSION:
        raise SocksError()
    end = 2 + buffer[1]
    if len(buffer) < end:
        return None
    if NO_AUTH not in buffer[2:end]:
        raise SocksError(NO_ACCEPTABLE_METHOD)
    return end


def request(buffer: bytes) -> Request | None:
    """The CONNECT request at the start of `buffer`; None while incomplete.

    Raises SocksError for anything else (with the reply to send, if any).
    """
    if len(buffer) < 4:
        return None
    if buffer[0] != VERSION or buffer[2] != 0:  # (the third byte is reserved: zero)
        raise SocksError()
    if buffer[1] != CONNECT:
        raise SocksError(reply(COMMAND_NOT_SUPPORTED))
    found = _address(buffer, buffer[3])
    if found is None:
        return None
    host, end = found
    return Request(host, int.from_bytes(buffer[end : end + 2], "big"), end + 2)


def _address(buffer: bytes, kind: int) -> tuple[str, int] | None:
    """The destination's host and where its port starts; None while incomplete."""
    size = {_IPV4: 4, _IPV6: 16}.get(kind)
    if size is not None:
        if len(buffer) < 4 + size + 2:
            return None
        packed = buffer[4 : 4 + size]
        address = ipaddress.IPv4Address(packed) if size == 4 else ipaddress.IPv6Address(packed)
        return str(address), 4 + size
    if kind != _DOMAIN:
        raise SocksError(reply(ADDRESS_NOT_SUPPORTED))
    if len(buffer) < 5 or len(buffer) < 5 + buffer[4] + 2:
        return None
    # Chromium sends IDNA (ASCII); anything else is left for the guard to refuse as
    # malformed, so the capture says why like any other refusal.
    return buffer[5 : 5 + buffer[4]].decode("ascii", errors="replace"), 5 + buffer[4]


def reply(code: int) -> bytes:
    """The server's answer to a request (bound address left as 0.0.0.0:0)."""
    return bytes([VERSION, code, 0, _IPV4, 0, 0, 0, 0, 0, 0])


CHOSE_NO_AUTH = bytes([VERSION, NO_AUTH])
NO_ACCEPTABLE_METHOD = bytes([VERSION, NO_METHOD])

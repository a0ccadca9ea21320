"""The failure types of a capture (their own module so the page guard can raise them too)."""

from __future__ import annotations

from enum import StrEnum

from storage.errors import LinksnapError


class Failure(StrEnum):
    """Why a capture failed: the one list of codes. Each has a sentence in both languages
    (bot/i18n `capture_reasons`; tests/test_architecture.py checks none is missing)."""

    TIMEOUT = "timeout"
    DNS = "dns"
    REFUSED = "refused"
    RESET = "reset"
    UNREACHABLE = "unreachable"
    REDIRECT_LOOP = "redirect_loop"
    TLS = "tls"
    DOWNLOAD = "download"
    BLOCKED = "blocked"
    ABORTED = "aborted"
    BROWSER = "browser"
    TOO_LARGE = "too_large"
    BUSY = "busy"
    INTERNAL = "internal"
    NOT_A_PAGE = "not_a_page"
    BAD_FILE = "bad_file"


# Chromium's network errors (and Playwright's download notice), read as failures.
_NET_ERRORS = {
    "ERR_NAME_NOT_RESOLVED": Failure.DNS,
    "ERR_NAME_RESOLUTION_FAILED": Failure.DNS,
    "ERR_CONNECTION_REFUSED": Failure.REFUSED,
    "ERR_CONNECTION_RESET": Failure.RESET,
    "ERR_CONNECTION_CLOSED": Failure.RESET,
    "ERR_EMPTY_RESPONSE": Failure.RESET,
    "ERR_TOO_MANY_REDIRECTS": Failure.REDIRECT_LOOP,
    "ERR_CERT_": Failure.TLS,
    "ERR_SSL_": Failure.TLS,
    "ERR_TIMED_OUT": Failure.TIMEOUT,
    "ERR_CONNECTION_TIMED_OUT": Failure.TIMEOUT,
    "ERR_TUNNEL_CONNECTION_FAILED": Failure.UNREACHABLE,
    # A local capture's SOCKS tunnel the proxy did not open (its record says why).
    "ERR_SOCKS_CONNECTION_FAILED": Failure.UNREACHABLE,
    "ERR_SOCKS_CONNECTION_HOST_UNREACHABLE": Failure.UNREACHABLE,
    "ERR_ABORTED": Failure.ABORTED,
    "Download is starting": Failure.DOWNLOAD,
    "ERR_INVALID_RESPONSE": Failure.RESET,
    "ERR_UNSAFE_REDIRECT": Failure.BLOCKED,
}


def classify_error(message: str) -> Failure:
    for needle, reason in _NET_ERRORS.items():
        if needle in message:
            return reason
    return Failure.BROWSER


class CaptureError(LinksnapError):
    """A capture that could not produce a snapshot; `reason` says why (a `Failure`).

    The subclasses carry
    what a more precise text needs (bot.chat.render.capture_reason).
    """

    def __init__(self, reason: Failure, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class DownloadRefused(CaptureError):
    """The link is a file download that is neither a page, a PDF nor an image."""

    def __init__(self, content_type: str | None, size: int | None) -> None:
        super().__init__(Failure.DOWNLOAD, f"{content_type or 'unknown type'}, {size} bytes")
        self.content_type = content_type
        self.size = size


class FileTooLarge(CaptureError):
    """A file (`what`: "pdf", "image", "full_page", "print", "mhtml") over its size cap."""

    def __init__(self, what: str, size: int | None, limit: int) -> None:
        super().__init__(Failure.TOO_LARGE, f"{what}: {size} bytes, limit {limit}")
        self.what = what
        self.size = size
        self.limit = limit


class NotAPage(CaptureError):
    """A full page, PDF or archive was asked of a link that is a PDF or an image."""

    def __init__(self, kind: str) -> None:
        super().__init__(Failure.NOT_A_PAGE, kind)
        self.kind = kind


class UnreadableFile(CaptureError):
    """A PDF or image that could not be read (damaged, or not what its type says)."""

    def __init__(self, detail: str) -> None:
        super().__init__(Failure.BAD_FILE, detail)

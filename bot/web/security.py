"""Headers every answer carries, and refusals turned into clear answers.

Scripts come only from the bot itself (no inline script anywhere), the pages may be
framed only by Telegram's web clients (which run Mini Apps in an iframe), and nothing
is sniffed into another type.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from pymongo.errors import PyMongoError

from bot.web.auth import Refused
from bot.web.context import API_PREFIX
from bot.web.texts import refusal
from storage.errors import LinksnapError

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TELEGRAM_WEB = "https://web.telegram.org https://webk.telegram.org https://webz.telegram.org"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; "
    f"frame-ancestors {TELEGRAM_WEB}"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # sign-in and media links never leave in a Referer
    "Cross-Origin-Opener-Policy": "same-origin",
}


class BadInput(LinksnapError):
    """A request the page should not have made (bad JSON, a bad tag): 400 with `kind`."""

    def __init__(self, kind: str, lang: str | None, **values: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.lang = lang
        self.values = values


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except Refused as exc:
        response = _error(exc.status, exc.kind, refusal(exc.kind, exc.lang))
    except BadInput as exc:
        response = _error(400, exc.kind, refusal(exc.kind, exc.lang).format(**exc.values))
    except web.HTTPException as exc:
        _mark(exc, request)
        raise
    except PyMongoError as exc:
        log.warning("a page's request failed: the database: %s", type(exc).__name__)
        lang = request.headers.get("Accept-Language", "")[:2]
        response = _error(503, "db_down", refusal("db_down", lang))
    _mark(response, request)
    return response


def _mark(response: web.StreamResponse, request: web.Request) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith(request.app[API_PREFIX]):
        response.headers.setdefault("Cache-Control", "no-store")


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"error": kind, "message": message}, status=status)

"""Who is asking: Telegram's launch data on every call inside the Mini App (sent as
`Authorization: tma <initData>`: Telegram Web runs Mini Apps in a third-party iframe,
where cookies may be blocked), else the browser session's cookie, whose writes must
carry the session's CSRF token. ALLOWED_USERS applies to both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from aiohttp import web

from bot.i18n import Texts, texts_for
from bot.web import initdata
from bot.web.context import WebContext, context_of
from storage.errors import LinksnapError
from storage.models import LinkRecord
from storage.repository import parse_id
from storage.websessions import Session, WebUser

COOKIE = "linksnap_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Refused(LinksnapError):
    """No data for this request: `kind` names why (a key of the pages' texts)."""

    def __init__(self, status: int, kind: str, lang: str | None = None) -> None:
        super().__init__(kind)
        self.status = status
        self.kind = kind
        self.lang = lang


@dataclass(frozen=True)
class Viewer:
    user: WebUser
    session: Session | None = None  # None inside Telegram (launch data instead)

    @property
    def user_id(self) -> int:
        return self.user.user_id

    @property
    def texts(self) -> Texts:
        return texts_for(self.user.lang)


async def viewer_of(request: web.Request) -> Viewer:
    """The signed-in user; raises Refused."""
    ctx = context_of(request)
    header = request.headers.get("Authorization", "")
    if header.startswith("tma "):
        viewer = Viewer(_launch_user(ctx, header[4:]))
    else:
        token = request.cookies.get(COOKIE)
        session = await ctx.sessions.get(token) if token else None
        if session is None:
            raise Refused(401, "signed_out", accepted_language(request))
        viewer = Viewer(session.user, session)
    allowed = ctx.services.settings.allowed_users
    if allowed and viewer.user_id not in allowed:
        raise Refused(403, "not_allowed", viewer.user.lang)
    if viewer.session is not None and request.method not in SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), csrf_token(ctx, viewer.session).encode()):
            raise Refused(403, "csrf", viewer.user.lang)
    return viewer


def _launch_user(ctx: WebContext, raw: str) -> WebUser:
    try:
        return initdata.verify(raw, ctx.token, now=ctx.clock()).user
    except initdata.Expired:
        raise Refused(401, "expired", initdata.language_hint(raw)) from None
    except initdata.InitDataError:
        raise Refused(401, "forged", initdata.language_hint(raw)) from None


def csrf_token(ctx: WebContext, session: Session) -> str:
    """Derived from the session (nothing more to store); the page reads it from /api/me."""
    digest = hmac.new(ctx.key, b"csrf\0" + session.key.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def accepted_language(request: web.Request) -> str | None:
    """The browser's first language (for pages shown before anyone has signed in)."""
    first = request.headers.get("Accept-Language", "").split(",")[0].strip()
    return first.split(";")[0] or None


async def viewers_link(request: web.Request) -> tuple[Viewer, LinkRecord | None]:
    """Who asks, and the link named in the path if it is theirs (None otherwise: another
    user's link is answered exactly as a missing one)."""
    ctx = context_of(request)
    viewer = await viewer_of(request)
    link_id = parse_id(request.match_info["link_id"])
    record = await ctx.services.store.get(viewer.user_id, link_id) if link_id else None
    return viewer, record

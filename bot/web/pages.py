"""The HTML the server writes: the app's shell (the page itself is static/app.js) and
the sign-in pages, which work without any script. Every value is escaped."""

from __future__ import annotations

import html
import logging
from pathlib import Path

from aiohttp import web

from bot.i18n import texts_for
from bot.web.auth import COOKIE, accepted_language
from bot.web.context import context_of
from bot.web.texts import page_texts
from storage.websessions import SESSION_IDLE

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
# Telegram's own client script, as the npm package @twa-dev/sdk ships it (scripts/setup.sh).
SDK = (
    Path(__file__).resolve().parents[2]
    / "tools/webapp/node_modules/@twa-dev/sdk/dist/telegram-web-apps.js"
)


def _esc(value: str) -> str:
    return html.escape(value, quote=True)


def shell(base: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="color-scheme" content="light dark">
<meta name="linksnap-base" content="{_esc(base)}">
<title>linksnap</title>
<link rel="stylesheet" href="{_esc(base)}static/app.css">
<script src="{_esc(base)}static/telegram-web-app.js" defer></script>
<script type="module" src="{_esc(base)}static/app.js"></script>
</head>
<body>
<div id="app"><noscript>This page needs JavaScript. 此页面需要 JavaScript。</noscript></div>
</body>
</html>
"""


def _simple(base: str, title: str, body: str, lang: str, status: int = 200) -> web.Response:
    text = f"""<!doctype html>
<html lang="{_esc(lang)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{_esc(title)}</title>
<link rel="stylesheet" href="{_esc(base)}static/app.css">
</head>
<body class="plain"><main class="signin">{body}</main></body>
</html>
"""
    return web.Response(text=text, content_type="text/html", status=status)


async def index(request: web.Request) -> web.Response:
    ctx = context_of(request)
    return web.Response(
        text=shell(ctx.address.path),
        content_type="text/html",
        headers={"Cache-Control": "no-cache"},
    )


async def sdk(request: web.Request) -> web.StreamResponse:
    if not SDK.exists():
        log.warning("the Mini App client script is missing: run scripts/setup.sh")
        raise web.HTTPNotFound()
    return web.FileResponse(SDK, headers={"Cache-Control": "no-cache"})


async def signin_page(request: web.Request) -> web.Response:
    """A link that is still good shows whom it signs in and a button: opening the link
    spends nothing (link previews and prefetchers open links too); the button does."""
    ctx = context_of(request)
    user = await ctx.signins.peek(request.match_info["token"])
    if user is None:
        return _spent(request)
    words = page_texts(texts_for(user.lang))
    name = user.first_name or str(user.user_id)
    body = (
        f"<h1>{_esc(words['title'])}</h1>"
        f"<p>{_esc(words['signin_as'].format(name=name))}</p>"
        f'<form method="post"><button type="submit" class="primary">'
        f"{_esc(words['signin_button'])}</button></form>"
        f'<p class="hint">{_esc(words["signin_note"])}</p>'
    )
    return _simple(ctx.address.path, words["signin_title"], body, words["lang"])


async def signin(request: web.Request) -> web.StreamResponse:
    """Spend the link, start a browser session, and open the library."""
    ctx = context_of(request)
    user = await ctx.signins.spend(request.match_info["token"])
    if user is None:
        return _spent(request)
    token = await ctx.sessions.start(user)
    response = web.Response(status=303, headers={"Location": ctx.address.path})
    set_session_cookie(request, response, token)
    return response


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    ctx = context_of(request)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_IDLE.total_seconds()),
        path=ctx.address.path,
        httponly=True,
        secure=ctx.address.https,
        samesite="Strict",
    )


def _spent(request: web.Request) -> web.Response:
    words = page_texts(texts_for(accepted_language(request)))
    body = f"<h1>{_esc(words['title'])}</h1><p>{_esc(words['signin_spent'])}</p>"
    base = context_of(request).address.path
    return _simple(base, words["signin_title"], body, words["lang"], status=410)

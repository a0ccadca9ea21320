"""Reading the library: who I am, the listing (link管理's grid), tags, one link."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.i18n import texts_for
from bot.library.manage import UNDO_SECONDS
from bot.tags import clean_tag
from bot.web.auth import COOKIE, Viewer, csrf_token, viewer_of, viewers_link
from bot.web.context import context_of
from bot.web.media import not_found
from bot.web.pages import set_session_cookie
from bot.web.security import BadInput
from bot.web.texts import page_texts
from bot.web.views import card, detail

PAGE_SIZE = 60
MAX_PAGE = 10_000
MAX_WORDS = 200


async def me(request: web.Request) -> web.Response:
    ctx = context_of(request)
    viewer = await viewer_of(request)
    body = {
        "user": {"id": viewer.user_id, "name": viewer.user.first_name},
        "texts": page_texts(viewer.texts),
        "csrf": csrf_token(ctx, viewer.session) if viewer.session else None,
        "browser": viewer.session is not None,
        "undo_seconds": UNDO_SECONDS,
        "page_size": PAGE_SIZE,
    }
    response = web.json_response(body)
    token = request.cookies.get(COOKIE)
    if viewer.session is not None and token:
        set_session_cookie(request, response, token)  # 30 days from the last visit
    return response


async def texts(request: web.Request) -> web.Response:
    """The pages' words before anyone is signed in (to say why not)."""
    return web.json_response(page_texts(texts_for(request.query.get("lang"))))


def tags_of(viewer: Viewer, raw: str) -> list[str]:
    tags: list[str] = []
    for part in raw.replace(" ", ",").split(","):
        if not part.strip():
            continue
        tag = clean_tag(part)
        if tag is None:
            raise BadInput("bad_tag", viewer.user.lang, tag=part.strip().lstrip("#＃")[:50])
        if tag not in tags:
            tags.append(tag)
    return tags


async def links(request: web.Request) -> web.Response:
    """A page of the viewer's links, newest first: carrying every tag asked for, and
    every word (Chinese too, as /find reads it); or, with `gone=1`, those found offline."""
    ctx = context_of(request)
    viewer = await viewer_of(request)
    tags = tags_of(viewer, request.query.get("tags", ""))
    words = request.query.get("q", "")[:MAX_WORDS]
    try:
        page = min(max(int(request.query.get("page", "0")), 0), MAX_PAGE)
    except ValueError:
        page = 0
    store = ctx.services.store
    if request.query.get("gone") == "1":  # the offline filter: pages link-rot found gone
        found = await store.gone(viewer.user_id, page=page, page_size=PAGE_SIZE)
    else:
        found = await store.find(viewer.user_id, tags, words, page=page, page_size=PAGE_SIZE)
    body: dict[str, Any] = {
        "items": [card(ctx, viewer.user_id, r) for r in found.items],
        "total": found.total,
        "page": found.page,
        "pages": found.pages,
    }
    return web.json_response(body)


async def tags(request: web.Request) -> web.Response:
    ctx = context_of(request)
    viewer = await viewer_of(request)
    counts = await ctx.services.store.tag_counts(viewer.user_id, limit=500)
    return web.json_response([{"tag": c.tag, "count": c.count} for c in counts])


async def link(request: web.Request) -> web.Response:
    ctx = context_of(request)
    viewer, record = await viewers_link(request)
    if record is None:
        return not_found()
    return web.json_response(detail(ctx, viewer.user_id, record, viewer.texts))

"""Thumbnails, screenshots and made files, by signed links.

An `<img>` cannot send the Mini App's `Authorization` header (and in Telegram Web's
iframe no cookie may come either), so the API hands out links signed for one user, one
link and one version, valid a day or two and the same all day (so the browser's cache
keeps them). A link that is not signed for its user, or names a link that user does not
have, answers the same 404 as one that never existed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Awaitable, Callable

from aiohttp import web
from bson import ObjectId

from bot.library import artifacts
from bot.web import thumbnails
from bot.web.context import WebContext, context_of
from storage.images import ImageNotFound
from storage.models import LinkRecord
from storage.repository import parse_id

DAY = 86_400
FILE_KINDS = frozenset({"full_page", "pdf", "mhtml"})
CACHE = "private, max-age=86400"


def not_found() -> web.Response:
    """The one answer for a link that is missing, another user's, or wrongly signed."""
    return web.json_response({"error": "not_found"}, status=404)


def _signature(ctx: WebContext, uid: int, what: str, link_id: str, version: str, exp: int) -> str:
    message = f"{what}|{uid}|{link_id}|{version}|{exp}".encode()
    digest = hmac.new(ctx.key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def media_url(ctx: WebContext, uid: int, what: str, link_id: ObjectId, version: str) -> str:
    exp = (int(ctx.clock()) // DAY + 2) * DAY  # the same link all day, good for a day more
    sig = _signature(ctx, uid, what, str(link_id), version, exp)
    query = urllib.parse.urlencode({"u": uid, "v": version, "e": exp, "s": sig})
    return f"{ctx.address.path}media/{what}/{link_id}?{query}"


def thumb_url(ctx: WebContext, uid: int, record: LinkRecord) -> str | None:
    shot = record.screenshot
    if shot is None or shot.gridfs_id is None:
        return None
    return media_url(ctx, uid, "thumb", record.id, str(shot.gridfs_id))


def shot_url(ctx: WebContext, uid: int, record: LinkRecord) -> str | None:
    shot = record.screenshot
    if shot is None or shot.gridfs_id is None:
        return None
    return media_url(ctx, uid, "shot", record.id, str(shot.gridfs_id))


async def serve(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    what, raw_id = request.match_info["what"], request.match_info["link_id"]
    record = await _signed_record(ctx, request, what, raw_id)
    if record is None:
        return not_found()
    if what in _IMAGES:
        return await _serve_image(ctx, request, record, *_IMAGES[what])
    if what in FILE_KINDS:
        return await _file(ctx, record, what)
    return not_found()


async def _signed_record(
    ctx: WebContext, request: web.Request, what: str, raw_id: str
) -> LinkRecord | None:
    q = request.query
    try:
        uid, exp = int(q.get("u", "")), int(q.get("e", ""))
    except ValueError:
        return None
    expected = _signature(ctx, uid, what, raw_id, q.get("v", ""), exp)
    if not hmac.compare_digest(q.get("s", "").encode(), expected.encode()) or exp < ctx.clock():
        return None
    link_id = parse_id(raw_id)
    allowed = ctx.services.settings.allowed_users
    if link_id is None or (allowed and uid not in allowed):
        return None
    return await ctx.services.store.get(uid, link_id)


def _cached(request: web.Request, etag: str) -> web.Response | None:
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag, "Cache-Control": CACHE})
    return None


async def _serve_image(
    ctx: WebContext, request: web.Request, record: LinkRecord, letter: str, load: _Load
) -> web.StreamResponse:
    """The record's screenshot as `load` reads it, under an ETag of `letter` and its id."""
    shot = record.screenshot
    if shot is None or shot.gridfs_id is None:
        return not_found()
    etag = f'"{letter}{shot.gridfs_id}"'
    if (unchanged := _cached(request, etag)) is not None:
        return unchanged
    try:
        data, mime = await load(ctx, shot.gridfs_id, etag)
    except ImageNotFound:
        return not_found()
    return _image(data, mime, etag)


async def _thumb(ctx: WebContext, gridfs_id: ObjectId, etag: str) -> tuple[bytes, str]:
    """The thumbnail: from this process's cache or the store, else made once and kept."""
    key = str(gridfs_id)
    data = ctx.thumbs_cache.get(key, (b"", ""))[0] or await ctx.thumbnails.get(gridfs_id)
    if data is None:
        full = await ctx.services.store.get_image(gridfs_id)
        data = await asyncio.to_thread(thumbnails.make, full)
        await ctx.thumbnails.put(gridfs_id, data)
    ctx.thumbs_cache[key] = (data, etag)
    return data, "image/jpeg"


async def _shot(ctx: WebContext, gridfs_id: ObjectId, etag: str) -> tuple[bytes, str]:
    data = await ctx.services.store.get_image(gridfs_id)
    return data, thumbnails.mime_of(data)


_Load = Callable[[WebContext, ObjectId, str], Awaitable[tuple[bytes, str]]]
# What /media/<what>/ serves of a screenshot: the letter that starts its ETag, its reader.
_IMAGES: dict[str, tuple[str, _Load]] = {"thumb": ("t", _thumb), "shot": ("s", _shot)}


def _image(data: bytes, mime: str, etag: str) -> web.Response:
    return web.Response(
        body=data, content_type=mime, headers={"ETag": etag, "Cache-Control": CACHE}
    )


async def _file(ctx: WebContext, record: LinkRecord, kind: str) -> web.StreamResponse:
    of_shot = record.screenshot.gridfs_id if record.screenshot else None
    made = await artifacts.files_of(ctx.services.store).get(record.id, kind, of_shot)
    if made is None or made.file.gridfs_id is None:
        return not_found()
    try:
        data = await artifacts.files_of(ctx.services.store).read(made)
    except LookupError:
        return not_found()
    name = urllib.parse.quote(made.file.file_name)
    return web.Response(
        body=data,
        content_type=made.file.mime_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
            "Cache-Control": "private, no-cache",
        },
    )

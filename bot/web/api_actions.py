"""Changing the library, through the same services as the chat: links added go through
the chat's screening and recording (bot/pipeline/intake.py) into the user's private
chat; retags, deletes and undo through ManageService; capture again and files as the
chat's buttons do them. The chat's snapshot message is edited to match each change.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from aiohttp import web
from bson import ObjectId

from bot import purge_timer
from bot.browser.errors import CaptureError
from bot.browser.types import ArtifactKind
from bot.chat import render
from bot.chat.links import Rejected, parse_text
from bot.i18n import texts_for
from bot.library import artifacts, snapshot_edits
from bot.library.manage import Retag
from bot.pipeline import intake
from bot.pipeline.intake import LinkRequest
from bot.tags import clean_tag
from bot.web.auth import COOKIE, Viewer, viewer_of
from bot.web.context import WebContext, context_of
from bot.web.media import media_url, not_found
from bot.web.security import BadInput
from bot.web.texts import page_texts
from bot.web.views import card, detail
from storage.models import LinkRecord
from storage.repository import parse_id
from storage.trash import Trashed, UndoConflict, UndoExpired

log = logging.getLogger(__name__)
MAX_TEXT = 4096  # as much as one Telegram message
MAX_BULK = 500


async def _body(request: web.Request, viewer: Viewer) -> dict[str, Any]:
    try:
        body = json.loads(await request.text() or "{}")
    except ValueError:
        raise BadInput("error", viewer.user.lang) from None
    if not isinstance(body, dict):
        raise BadInput("error", viewer.user.lang)
    return body


def _tags(viewer: Viewer, raw: object) -> list[str]:
    out: list[str] = []
    for item in raw if isinstance(raw, list) else []:
        tag = clean_tag(str(item))
        if tag is None:
            raise BadInput("bad_tag", viewer.user.lang, tag=str(item).lstrip("#＃")[:50])
        if tag not in out:
            out.append(tag)
    return out


async def _owned(ctx: WebContext, viewer: Viewer, raw: str) -> LinkRecord | None:
    link_id = parse_id(raw)
    return await ctx.services.store.get(viewer.user_id, link_id) if link_id else None


# -- 添加链接: add links -------------------------------------------------------------


async def add(request: web.Request) -> web.Response:
    """Links, #tags and a note, read as a chat message is and recorded the same way."""
    ctx = context_of(request)
    viewer = await viewer_of(request)
    text = str((await _body(request, viewer)).get("text", ""))[:MAX_TEXT]
    parsed = parse_text(text)
    services, uid = ctx.services, viewer.user_id
    urls, refused = await intake.screen(services.pipeline, parsed.urls)
    parsed.rejected.extend(Rejected(url, reason) for url, reason in refused)
    request_ = LinkRequest(
        owner_id=uid,
        chat_id=uid,  # the user's private chat with the bot: the photo goes there too
        message_id=None,
        lang_code=viewer.user.lang,
        tags=parsed.tags,
        note=parsed.note,
    )
    async with services.recording.of(uid):
        recorded = await intake.record(
            services.pipeline, request_, urls, on_new=services.shoot_ahead
        )
    services.hand_or_wake(recorded)
    out = []
    for record, created in recorded.links:
        if not created:  # shown again in the chat as a re-sent link is
            services.spawn(_again(ctx, record))
        out.append({**card(ctx, uid, record), "created": created})
    lines = [render.plain_text(line) for line in render.refusal_lines(parsed, viewer.texts)]
    body: dict[str, Any] = {"links": out, "refused": lines, "later": None}
    if recorded.later is not None:
        body["later"] = recorded.later.isoformat()
    return web.json_response(body)


async def _again(ctx: WebContext, record: LinkRecord) -> None:
    await intake.answer_again(ctx.services.pipeline, ctx.bot, record)
    ctx.services.wake_workers()  # it may have been queued to capture afresh


# -- link管理: manage ---------------------------------------------------------------


async def retag(request: web.Request) -> web.Response:
    """`{"tags": [...]}` sets the link's tags; `{"add": [...], "remove": [...]}` changes them."""
    ctx = context_of(request)
    viewer = await viewer_of(request)
    body = await _body(request, viewer)
    record = await _owned(ctx, viewer, request.match_info["link_id"])
    if record is None:
        return not_found()
    if "tags" in body:
        wanted = _tags(viewer, body["tags"])
        change = Retag(
            add=[t for t in wanted if t not in record.tags],
            remove=[t for t in record.tags if t not in wanted],
        )
    else:
        change = Retag(_tags(viewer, body.get("add")), _tags(viewer, body.get("remove")))
    updated = await ctx.manage.retag(viewer.user_id, record.id, change)
    if updated is None:
        return not_found()
    await _show(ctx, updated)
    return web.json_response(detail(ctx, viewer.user_id, updated, viewer.texts))


async def _show(ctx: WebContext, record: LinkRecord) -> None:
    """The chat's snapshot, as the record now stands (in the language it was sent in)."""
    texts = texts_for(record.lang_code)
    await snapshot_edits.show_snapshot(ctx.bot, record, texts, snapshot_edits.where_of(record))


async def delete(request: web.Request) -> web.Response:
    ctx = context_of(request)
    viewer = await viewer_of(request)
    record = await _owned(ctx, viewer, request.match_info["link_id"])
    trashed = await _delete(ctx, viewer, record) if record is not None else None
    if trashed is None:
        return not_found()
    await _show_deleted(ctx, [trashed])
    return web.json_response(
        {"deleted": [str(trashed.record.id)], "undo_seconds": ctx.manage.undo_seconds}
    )


async def _delete(ctx: WebContext, viewer: Viewer, record: LinkRecord) -> Trashed | None:
    """Hide the link for the undo minute (the chat's message is edited by the caller)."""
    where = snapshot_edits.where_of(record)
    manage = ctx.manage
    trashed = await manage.delete(viewer.user_id, record.id, *(where if where else (None, None)))
    if trashed is not None:
        purge_timer.schedule_purge(ctx.jobs, record.id, record.lang_code, manage.undo_seconds)
    return trashed


async def _show_deleted(ctx: WebContext, trashed: list[Trashed]) -> None:
    for item in trashed:
        record = item.record
        texts = texts_for(record.lang_code)
        where = snapshot_edits.where_of(record)
        await snapshot_edits.show_deleted(ctx.bot, record, texts, where, for_good=False)


async def undo(request: web.Request) -> web.Response:
    ctx = context_of(request)
    viewer = await viewer_of(request)
    link_id = parse_id(request.match_info["link_id"])
    if link_id is None:
        return not_found()
    try:
        record = await _undo(ctx, viewer, link_id)
        await _show(ctx, record)
    except UndoExpired:
        return _conflict(410, "undo_expired", viewer)
    except UndoConflict:
        return _conflict(409, "undo_conflict", viewer)
    return web.json_response(card(ctx, viewer.user_id, record))


async def _undo(ctx: WebContext, viewer: Viewer, link_id: ObjectId) -> LinkRecord:
    """Put the link back (the chat's message is edited by the caller)."""
    record = await ctx.manage.undo(viewer.user_id, link_id)
    purge_timer.cancel_purge(ctx.jobs, link_id)
    return record


def _conflict(status: int, kind: str, viewer: Viewer) -> web.Response:
    message = page_texts(viewer.texts)[kind]
    return web.json_response({"error": kind, "message": message}, status=status)


async def recapture(request: web.Request) -> web.Response:
    """🔄 as in the chat: captured afresh by the workers, the new photo sent to the chat."""
    ctx = context_of(request)
    viewer = await viewer_of(request)
    record = await _owned(ctx, viewer, request.match_info["link_id"])
    if record is None:
        return not_found()
    await intake.requeue(ctx.services.pipeline, record)
    ctx.services.wake_workers()
    # As it stands now (queued again), not as it was: the page follows it from there.
    requeued = await ctx.services.store.get(viewer.user_id, record.id)
    if requeued is None:  # deleted this very moment
        return not_found()
    return web.json_response(card(ctx, viewer.user_id, requeued))


async def make_file(request: web.Request) -> web.Response:
    """📄 🖨 🗄: the same file the chat's buttons send, made once and kept; in a front
    (no browser) a worker makes it and this waits for it (bot/library/artifacts.py)."""
    ctx = context_of(request)
    viewer = await viewer_of(request)
    texts = viewer.texts
    record = await _owned(ctx, viewer, request.match_info["link_id"])
    try:
        kind = ArtifactKind(request.match_info["kind"])
    except ValueError:
        return not_found()
    if record is None:
        return not_found()
    if record.kind != "page":
        return _message(400, "not_a_page", texts.file_not_a_page)
    try:
        # Under the chat's lock: a press here and one in the chat make the file once.
        async with artifacts.making(record, kind):
            ready = await artifacts.ready(
                ctx.services.store, ctx.services.capturer, record, kind, locale=texts.locale
            )
    except artifacts.NoBrowser:
        return _message(409, "no_browser", texts.file_no_browser)
    except CaptureError as exc:
        what = texts.file_kinds.get(str(kind), str(kind))
        text = texts.file_failed.format(
            what=render.esc(what),
            url=render.esc((record.final_url or record.url)[:300]),
            reason=render.capture_reason(exc, texts),
        )
        return _message(502, "file_failed", render.plain_text(text))
    file = ready.made.file
    return web.json_response(
        {
            "url": media_url(ctx, viewer.user_id, str(kind), record.id, str(kind)),
            "name": file.file_name,
            "size": render.file_size(file.size),
            "caption": render.plain_text(artifacts.caption(record, ready.made, texts)),
        }
    )


def _ids(body: dict[str, Any]) -> list[ObjectId]:
    raw = body.get("ids")
    items = raw[:MAX_BULK] if isinstance(raw, list) else []
    return [i for i in (parse_id(str(r)) for r in items) if i is not None]


def _message(status: int, kind: str, text: str) -> web.Response:
    return web.json_response({"error": kind, "message": render.plain_text(text)}, status=status)


async def bulk(request: web.Request) -> web.Response:
    """Several links at once: `{"ids": [...], "add": [...], "remove": [...]}` or
    `{"ids": [...], "delete": true}`. Ids that are not the viewer's are skipped."""
    ctx = context_of(request)
    viewer = await viewer_of(request)
    body = await _body(request, viewer)
    ids = _ids(body)
    if body.get("delete") is True:
        done: list[Trashed] = []
        for link_id in ids:
            record = await ctx.services.store.get(viewer.user_id, link_id)
            trashed = await _delete(ctx, viewer, record) if record is not None else None
            done += [trashed] if trashed is not None else []
        ctx.services.spawn(_show_deleted(ctx, done))  # paced edits: not held for them
        deleted = [str(t.record.id) for t in done]
        return web.json_response({"deleted": deleted, "undo_seconds": ctx.manage.undo_seconds})
    change = Retag(_tags(viewer, body.get("add")), _tags(viewer, body.get("remove")))
    changed: list[LinkRecord] = []
    for link_id in ids:
        updated = await ctx.manage.retag(viewer.user_id, link_id, change)
        if updated is not None:
            changed.append(updated)
    ctx.services.spawn(snapshot_edits.show_many(ctx.bot, changed))  # paced: may take a while
    return web.json_response({"changed": [str(r.id) for r in changed]})


async def bulk_undo(request: web.Request) -> web.Response:
    """↩ for a bulk delete: every link of it that can still come back."""
    ctx = context_of(request)
    viewer = await viewer_of(request)
    body = await _body(request, viewer)
    restored: list[LinkRecord] = []
    for link_id in _ids(body):
        with contextlib.suppress(UndoExpired, UndoConflict):
            restored.append(await _undo(ctx, viewer, link_id))
    ctx.services.spawn(snapshot_edits.show_many(ctx.bot, restored))
    return web.json_response({"restored": [str(r.id) for r in restored]})


async def rename_tag(request: web.Request) -> web.Response:
    """`#js` → `#javascript` on every link that has it (a merge when it exists)."""
    ctx = context_of(request)
    viewer = await viewer_of(request)
    body = await _body(request, viewer)
    [old, new] = [
        _tags(viewer, [body.get(k, "")])[0] if body.get(k) else "" for k in ("from", "to")
    ]
    if not old or not new:
        raise BadInput("bad_tag", viewer.user.lang, tag="")
    changed = await ctx.services.store.rename_tag(viewer.user_id, old, new)
    records = [r for r in [await ctx.services.store.get(viewer.user_id, i) for i in changed] if r]
    ctx.services.spawn(snapshot_edits.show_many(ctx.bot, records))
    return web.json_response({"from": old, "to": new, "changed": len(changed)})


async def sign_out(request: web.Request) -> web.Response:
    ctx = context_of(request)
    viewer = await viewer_of(request)
    token = request.cookies.get(COOKIE)
    if viewer.session is not None and token:
        await ctx.sessions.end(token)
    response = web.json_response({"signed_out": True})
    response.del_cookie(COOKIE, path=ctx.address.path)
    return response

"""A link's progress on the page, live: its stage, then its screenshot, then the summary
as the model writes it (server-sent events, read by the page with fetch so the Mini
App's `Authorization` header can go with it; EventSource cannot send one).

Stages of this process are heard at once (bot/live.py). The record is also read from
the database every second, so a link worked on by another process (`python -m bot
front` beside `python -m bot worker`) shows its stages too, only without the summary's
pieces: its summary appears whole when it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from bot.live import Listener
from bot.web.auth import Viewer, viewers_link
from bot.web.context import WebContext, context_of
from bot.web.media import not_found
from bot.web.views import detail
from storage.models import LinkRecord, Status

POLL = 1.0  # seconds between reads of the record
PING_EVERY = 15  # quiet polls between keep-alive comments
ENDED = frozenset({Status.DONE, Status.FAILED, Status.SUMMARY_FAILED})


async def events(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    viewer, record = await viewers_link(request)
    if record is None:
        return not_found()
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # a proxy in front must not hold the stream back
        }
    )
    await response.prepare(request)
    with (
        contextlib.suppress(ConnectionResetError),
        ctx.services.pipeline.live.listen(record.id) as listener,
    ):
        await _follow(ctx, viewer, response, record, listener)
    return response


async def _follow(
    ctx: WebContext,
    viewer: Viewer,
    response: web.StreamResponse,
    record: LinkRecord,
    listener: Listener,
) -> None:
    live = ctx.services.pipeline.live
    state = _state(ctx, viewer, record)
    await _send(response, "state", state)
    shown = len(state["summary"] or "") if record.status == Status.SUMMARIZING else 0
    quiet = 0
    while record.status not in ENDED and not ctx.closing.is_set():
        woke = await _wait(listener, ctx.closing)
        moved = False
        for event in listener.take():
            if event.piece is not None and event.at == shown:
                await _send(response, "summary", {"piece": event.piece})
                shown += len(event.piece)
            elif event.piece is not None and event.at > shown:
                listener.lagged = True  # a piece missed: the whole text instead
            moved = moved or event.status is not None
        if listener.lagged:
            listener.lagged = False
            text = live.summary_so_far(record.id) or ""
            await _send(response, "summary", {"all": text})
            shown = len(text)
        if moved or not woke:
            current = await ctx.services.store.get(viewer.user_id, record.id)
            if current is None:
                await _send(response, "gone", {})
                return
            if moved or current.status != record.status:
                state = _state(ctx, viewer, current)
                await _send(response, "state", state)
                if current.status == Status.SUMMARIZING:
                    shown = len(state["summary"] or "")
            record = current
        quiet = 0 if woke else quiet + 1
        if quiet and quiet % PING_EVERY == 0:
            await response.write(b": ping\n\n")


def _state(ctx: WebContext, viewer: Viewer, record: LinkRecord) -> dict[str, Any]:
    state = detail(ctx, viewer.user_id, record, viewer.texts)
    if record.status == Status.SUMMARIZING:
        state["summary"] = ctx.services.pipeline.live.summary_so_far(record.id) or ""
    if record.status == Status.SUMMARY_FAILED and record.summary_error:
        reasons = viewer.texts.summary_reasons
        state["failure"] = reasons.get(record.summary_error, reasons["server_error"])
    return state


async def _wait(listener: Listener, closing: asyncio.Event) -> bool:
    """True when events came, False after a quiet POLL (or when the server closes)."""
    waits = [asyncio.ensure_future(listener.wake.wait()), asyncio.ensure_future(closing.wait())]
    done, pending = await asyncio.wait(waits, timeout=POLL, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return waits[0] in done


async def _send(response: web.StreamResponse, event: str, data: dict[str, Any]) -> None:
    payload = json.dumps(data, ensure_ascii=False)
    await response.write(f"event: {event}\ndata: {payload}\n\n".encode())

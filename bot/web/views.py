"""Records as the pages see them (JSON): everything a user stored is sent as text, and
the page puts it on screen as text (textContent), never as HTML."""

from __future__ import annotations

from typing import Any

from bot.browser.errors import Failure
from bot.chat import render
from bot.i18n import Texts
from bot.web.context import WebContext
from bot.web.media import shot_url, thumb_url
from storage.models import LinkRecord

FILE_KINDS = ("full_page", "pdf", "mhtml")


def card(ctx: WebContext, uid: int, record: LinkRecord) -> dict[str, Any]:
    """One tile of the grid."""
    return {
        "id": str(record.id),
        "title": record.title or record.url,
        "url": record.url,
        "domain": render.domain(record.final_url or record.url),
        "created": record.created_at.isoformat(),
        "date": record.created_at.strftime("%Y-%m-%d"),
        "tags": record.tags,
        "status": str(record.status),
        "gone": record.alive is False,
        "partial": record.partial,
        "thumb": thumb_url(ctx, uid, record),
    }


def detail(ctx: WebContext, uid: int, record: LinkRecord, texts: Texts) -> dict[str, Any]:
    """Everything the link's own view shows."""
    return {
        **card(ctx, uid, record),
        "final_url": record.final_url,
        "note": record.note,
        "summary": record.summary,
        "http_status": record.http_status,
        "kind": record.kind,
        "shot": shot_url(ctx, uid, record),
        "failure": failure(record, texts),
        "files": list(FILE_KINDS) if record.kind == "page" else [],
    }


def failure(record: LinkRecord, texts: Texts) -> str | None:
    """Why a capture failed, in the user's words, as the chat said it."""
    if record.error is None:
        return None
    reason = record.error.partition(":")[0]
    return render.plain_text(
        texts.capture_reasons.get(reason, texts.capture_reasons[Failure.BROWSER])
    )

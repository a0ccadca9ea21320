"""Stage 3: pending → capturing → captured. Open the page, keep its screenshot and text.

A capture that cannot produce a snapshot ends the link as failed, and the user is told
why in their language.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram.ext import ExtBot

from bot import render
from bot.capture import CaptureError, Snapshot
from bot.i18n import texts_for
from bot.pipeline.base import Pipeline
from bot.pipeline.replies import reply
from storage.models import LinkRecord, Screenshot

log = logging.getLogger(__name__)


async def capture(p: Pipeline, bot: ExtBot[Any], record: LinkRecord) -> bool:
    """True when the link was captured (and its delivery is now owed)."""
    assert p.capturer is not None, "a capture worker needs a browser"
    texts = texts_for(record.lang_code)
    await p.store.start_attempt(record.id)
    try:
        snap = await p.capturer.capture(record.url, locale=texts.locale)
    except CaptureError as exc:
        await failed(p, bot, record, exc.reason, exc.detail)
        return False
    except Exception:
        log.exception("capture crashed")
        await failed(p, bot, record, "internal", "")
        return False
    await _save(p, record, snap)
    return True


async def _save(p: Pipeline, record: LinkRecord, snap: Snapshot) -> None:
    record.final_url, record.http_status = snap.final_url, snap.http_status
    record.title, record.description = snap.title, snap.description
    record.site_name, record.lang, record.text = snap.site_name, snap.lang, snap.text
    image_id = await p.store.put_image(snap.image, f"{record.id}.jpg")
    record.screenshot = Screenshot(width=snap.width, height=snap.height, gridfs_id=image_id)
    await p.store.save_capture(record)


async def failed(
    p: Pipeline, bot: ExtBot[Any], record: LinkRecord, reason: str, detail: str
) -> None:
    """The link ends here; the user is told why."""
    texts = texts_for(record.lang_code)
    await p.store.mark_failed(record.id, f"{reason}: {detail}")
    why = texts.capture_reasons.get(reason, texts.capture_reasons["browser"])
    await reply(bot, record, texts.failed_link.format(url=render.esc(record.url[:300]), reason=why))

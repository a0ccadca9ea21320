"""Stage 5: summarizing → done. The summary streamed into the photo's caption.

Intermediate edits ride the outbound path's PROGRESS turns; the final text must land.
A summary that breaks off keeps its partial text and a note, and is tried again later
(`summary_retry_delay`) up to MAX_SUMMARY_ATTEMPTS times: the worker claims it again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram.ext import ExtBot

from bot import render
from bot.i18n import texts_for
from bot.pipeline.base import Pipeline
from bot.streaming import StreamLayout, SummaryEditor
from bot.summarize import PageText, SummaryError
from storage.models import LinkRecord, LlmUsage, Status

log = logging.getLogger(__name__)


async def summarize(p: Pipeline, bot: ExtBot[Any], record: LinkRecord, message_id: int) -> bool:
    """True when the link is done (with a summary, or with summaries off)."""
    if p.summarizer is None:
        await p.store.update(record.id, status=Status.DONE)
        return True
    texts = texts_for(record.lang_code)
    record.summary_attempts += 1
    await p.store.update(
        record.id, status=Status.SUMMARIZING, summary_attempts=record.summary_attempts
    )
    layout = StreamLayout(head=render.caption(record, texts), heading=texts.summary_heading)
    editor = SummaryEditor(bot, record.chat_id, message_id, layout, p.outbound)
    page = PageText(record.title, record.description, record.text, record.final_url or record.url)
    stream = p.summarizer.stream(page, texts.summary_prompt)
    reason: str | None = None
    try:
        async for piece in stream:
            editor.push(piece)
    except SummaryError as exc:
        reason = exc.reason
    except asyncio.CancelledError:
        await editor.cancel()  # stopping: the record stays `summarizing` for the next start
        raise
    except Exception:
        log.exception("summary broke off")
        reason = "internal"
    if reason is not None:
        why = texts.summary_reasons.get(reason, texts.summary_reasons["server_error"])
        editor.note(texts.summary_failed.format(reason=why))
    await editor.finish()
    if reason is not None:
        await p.store.update(
            record.id, status=Status.SUMMARY_FAILED, summary=stream.text, summary_error=reason
        )
        return False
    usage = stream.usage
    llm = LlmUsage(usage.model, usage.prompt_tokens, usage.completion_tokens)
    await p.store.update(record.id, status=Status.DONE, summary=stream.text, llm=llm)
    return True

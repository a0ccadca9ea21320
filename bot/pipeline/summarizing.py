"""Stage 5: summarizing → done. The summary streamed into the photo's caption.

Intermediate edits ride the outbound path's PROGRESS turns; the final text must land.
A summary that breaks off keeps its partial text and a note, and is tried again later
(`summary_retry_delay`) up to MAX_SUMMARY_ATTEMPTS times: the worker claims it again.

Every edit carries the snapshot's buttons (an edit without them would remove them).
Once the summary has started, the model is also asked for tags (bot/library/tagsuggest.py) beside
the stream; they join the buttons as ＋#tag in the final edit, whose caption head is drawn
from the stored record so a retag made meanwhile is kept.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram.ext import ExtBot

from bot.chat import render
from bot.chat.callbacks import codec_for, snapshot_keyboard
from bot.chat.streaming import StreamLayout, SummaryEditor
from bot.i18n import Texts, texts_for
from bot.library.tagsuggest import Suggested, propose
from bot.pipeline.base import Pipeline
from bot.summarize import PageText, SummaryError
from storage.models import LinkRecord, LlmUsage, Status

log = logging.getLogger(__name__)


async def summarize(p: Pipeline, bot: ExtBot[Any], record: LinkRecord, message_id: int) -> bool:
    """True when the link is done (with a summary, or with summaries off)."""
    if p.summarizer is None:
        await p.store.update(record.id, status=Status.DONE)
        p.live.stage(record.id, Status.DONE)
        return True
    texts = texts_for(record.lang_code)
    codec = codec_for(bot.token)
    record.summary_attempts += 1
    await p.store.update(
        record.id, status=Status.SUMMARIZING, summary_attempts=record.summary_attempts
    )
    p.live.stage(record.id, Status.SUMMARIZING)
    layout = StreamLayout(
        head=render.caption(record, texts),
        heading=texts.summary_heading,
        markup=snapshot_keyboard(codec, record, texts),
    )

    async def alive() -> bool:
        return await p.store.exists(record.id)

    editor = SummaryEditor(bot, record.chat_id, message_id, layout, p.outbound, alive)
    page = PageText(record.title, record.description, record.text, record.final_url or record.url)
    stream = p.summarizer.stream(page, texts.summary_prompt)
    tagging: asyncio.Task[Suggested] | None = None
    reason: str | None = None
    try:
        async for piece in stream:
            editor.push(piece)
            p.live.summary(record.id, piece)  # the same text, to a page showing this link
            if tagging is None:  # the summary is under way: ask for tags beside it
                tagging = asyncio.create_task(_propose(p, record, texts))
    except SummaryError as exc:
        reason = exc.reason
    except asyncio.CancelledError:
        await _drop(tagging)
        await editor.cancel()  # stopping: the record stays `summarizing` for the next start
        raise
    except Exception:
        log.exception("summary broke off")
        reason = "internal"
    if reason is not None:
        await _drop(tagging)
        why = texts.summary_reasons.get(reason, texts.summary_reasons["server_error"])
        editor.note(texts.summary_failed.format(reason=why))
    try:
        suggested = await _tags(tagging) if reason is None else Suggested([])
        current = await p.durably(lambda: p.store.load(record.id))
    except BaseException:  # stopping (or the database gone for good): left for later
        await _drop(tagging)
        await editor.cancel()
        raise
    if current is None or editor.gone:  # deleted meanwhile: its message offers ↩ Undo
        await editor.cancel()
        p.live.stage(record.id, Status.DONE)
        return True
    editor.restyle(
        head=render.caption(current, texts),
        markup=snapshot_keyboard(codec, current, texts, suggested.tags),
    )
    await editor.finish()
    if reason is not None:
        await p.store.update(
            record.id, status=Status.SUMMARY_FAILED, summary=stream.text, summary_error=reason
        )
        why = texts.summary_reasons.get(reason, texts.summary_reasons["server_error"])
        p.live.stage(record.id, Status.SUMMARY_FAILED, reason=why)
        return False
    usage = stream.usage
    llm = LlmUsage(usage.model, usage.prompt_tokens, usage.completion_tokens)
    fields: dict[str, Any] = {"status": Status.DONE, "summary": stream.text, "llm": llm}
    if suggested.usage is not None:
        fields["llm_tags"] = suggested.usage  # the tag proposal's tokens, for /stats
    await p.store.update(record.id, **fields)
    p.live.stage(record.id, Status.DONE)
    return True


async def _propose(p: Pipeline, record: LinkRecord, texts: Texts) -> Suggested:
    """Tags for the buttons, from the user's tags as read lately (created in the task, so
    a task cancelled before it starts leaves no read half made)."""
    assert p.summarizer is not None
    return await propose(
        p.store, p.summarizer, record, texts, p.known_tags.of(p.store, record.owner_id)
    )


async def _tags(task: asyncio.Task[Suggested] | None) -> Suggested:
    """The suggestions (bounded by tagsuggest.LLM_PATIENCE); none when they failed."""
    if task is None:
        return Suggested([])
    try:
        return await task
    except Exception:  # a nicety: a database hiccup here must not cost the summary
        log.warning("tag suggestions failed", exc_info=True)
        return Suggested([])


async def _drop(task: asyncio.Task[Suggested] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

"""Recording a link when the database's answer to the insert was lost."""

from __future__ import annotations

from bot.chat.links import url_key
from bot.pipeline import intake
from bot.pipeline.intake import LinkRequest
from storage.models import LinkRecord
from tests.harness import BotHarness


async def test_an_insert_whose_answer_was_lost_is_still_queued(bot: BotHarness) -> None:
    """The retry of a landed insert reads the link back as saved before; it is this
    message's own link, so it is queued (and captured), not answered as a repeat."""
    pipeline = bot.services.pipeline
    url = bot.pages.url("/article/lost-answer")
    request = LinkRequest(owner_id=77, chat_id=77, message_id=5, lang_code="en", tags=[], note="")
    landed = LinkRecord(owner_id=77, chat_id=77, url=url, url_key=url_key(url), source_message_id=5)
    await pipeline.store.add_pending(landed)  # the first try, whose answer never came
    recorded = await intake.record(pipeline, request, [url])
    [(record, created)] = recorded.links
    assert created and await pipeline.store.queue.queued(record.id)
    # The same URL in a later message is a repeat, as before.
    again = LinkRequest(owner_id=77, chat_id=77, message_id=9, lang_code="en", tags=[], note="")
    [(_, created_again)] = (await intake.record(pipeline, again, [url])).links
    assert not created_again

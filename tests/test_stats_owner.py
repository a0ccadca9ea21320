"""/stats for the bot's owner (the first id in ALLOWED_USERS) also shows this process's
memory and whether its browser is open or closed since when (issue 19); nobody else
sees those lines. In English and Chinese."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from bot.browser.capture import Capturer
from tests.clock import IDLE, FakeClock, closed
from tests.harness import BotHarness

OWNER, OTHER = 42, 43
SIZE = r"[\d.]+ (?:B|KB|MB|GB)"  # as render.file_size writes it: the unit follows the size
MEMORY = re.compile(rf"Memory: {SIZE} \(bot ([\d.]+) (KB|MB|GB), browser {SIZE}\)")


async def test_the_owner_sees_memory_and_the_browser_state_others_do_not(
    idle_harness_factory: Callable[..., Awaitable[BotHarness]],
    idle_capturer: Capturer,
    clock: FakeClock,
) -> None:
    bot = await idle_harness_factory(ALLOWED_USERS=f"{OWNER},{OTHER}")
    text = await bot.answer(OWNER, "/stats")
    memory = MEMORY.search(text)
    assert memory is not None, text
    bot_mb = float(memory.group(1)) * {"KB": 1 / 1024, "MB": 1, "GB": 1024}[memory.group(2)]
    assert bot_mb > 10  # this Python process holds more than 10 MB
    assert "Browser: open since " in text

    other = await bot.answer(OTHER, "/stats")
    assert "Links: 0" in other
    assert "Memory" not in other and "Browser" not in other

    await clock.advance(IDLE)
    await closed(idle_capturer)
    text = await bot.answer(OWNER, "/stats")
    assert "Browser: closed since " in text and MEMORY.search(text)
    chinese = await bot.answer(OWNER, "/stats", "zh-hans")
    assert "内存：" in chinese and "起已关闭" in chinese

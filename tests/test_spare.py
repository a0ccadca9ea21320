"""The page kept ready for the next capture (bot/browser/spare.py) serves one link only, and
only a link in its own language: nothing one page leaves reaches the next, and a
Chinese user's page is opened in Chinese even when the spare was made for English."""

from __future__ import annotations

from bot.browser.capture import Capturer
from tests.fakes.pages import PageServer


async def test_a_page_never_sees_what_the_previous_capture_left(
    capturer: Capturer, pages: PageServer
) -> None:
    first = await capturer.capture(pages.url("/remember"))
    assert first.title == "cookie-none storage-none lang-en-US"
    for _ in range(3):  # each on the page made ready after the one before
        again = await capturer.capture(pages.url("/remember"))
        assert again.title == "cookie-none storage-none lang-en-US"


async def test_a_capture_in_another_language_gets_a_page_in_that_language(
    capturer: Capturer, pages: PageServer
) -> None:
    await capturer.capture(pages.url("/remember"), locale="en-US")  # the spare is English
    pages.languages.clear()
    chinese = await capturer.capture(pages.url("/remember"), locale="zh-CN")
    assert chinese.title == "cookie-none storage-none lang-zh-CN"
    assert pages.languages[0].startswith("zh-CN")
    english = await capturer.capture(pages.url("/remember"), locale="en-US")
    assert english.title == "cookie-none storage-none lang-en-US"
    assert pages.languages[1].startswith("en-US")


async def test_no_page_is_made_ahead_once_no_capture_is_in_flight(
    capturer: Capturer, pages: PageServer
) -> None:
    """A slot whose next link was claimed while its page was shot asks for that link's page
    then (`spare_ahead`). A claim answered only after the capture has ended (a slow
    database) makes none: the idle close may be closing the browser meanwhile."""
    await capturer.capture(pages.url("/remember"))
    await capturer._spare.drop()  # no spare, as the idle close leaves it
    assert capturer._idle.busy == 0  # nothing in flight
    capturer.spare_ahead()
    assert capturer._spare._next is None

"""Opening the platform's pages as Telegram does, and seeding a library."""

from __future__ import annotations

import io
import json
import re
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from PIL import Image, ImageDraw

from bot.app import build_application, running
from bot.browser.capture import Capturer
from bot.services import Role
from bot.web import initdata
from storage.models import LinkRecord, Screenshot, Status, utcnow
from storage.repository import LinkStore
from tests.conftest import base_env, settings_for
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.pages import PageServer
from tests.harness import BotHarness
from tests.records import owned, seed_links

TOKEN = "123456:TEST-token"
LIGHT = {
    "bg_color": "#ffffff",
    "text_color": "#000000",
    "hint_color": "#999999",
    "link_color": "#2481cc",
    "button_color": "#2481cc",
    "button_text_color": "#ffffff",
    "secondary_bg_color": "#efeff3",
}
DARK = {
    "bg_color": "#17212b",
    "text_color": "#f5f5f5",
    "hint_color": "#708499",
    "link_color": "#6ab3f3",
    "button_color": "#5288c1",
    "button_text_color": "#ffffff",
    "secondary_bg_color": "#232e3c",
}


def init_data(
    user_id: int,
    *,
    lang: str = "en",
    name: str = "Ann",
    auth_date: float | None = None,
    token: str = TOKEN,
) -> str:
    """Launch data as Telegram signs it for this bot."""
    user = {"id": user_id, "first_name": name, "language_code": lang, "allows_write_to_pm": True}
    fields = {
        "query_id": f"AAq{user_id}",
        "user": json.dumps(user, separators=(",", ":"), ensure_ascii=False),
        "auth_date": str(int(auth_date if auth_date is not None else time.time())),
        "signature": "c2lnbmF0dXJl",
    }
    fields["hash"] = initdata.sign(fields, token)
    return urllib.parse.urlencode(fields, quote_via=urllib.parse.quote)


def launch_url(url: str, data: str, theme: dict[str, str] | None = None) -> str:
    """The app's URL as Telegram opens a Mini App: launch parameters in the hash."""
    params = {
        "tgWebAppData": data,
        "tgWebAppVersion": "8.0",
        "tgWebAppPlatform": "tdesktop",
        "tgWebAppThemeParams": json.dumps(theme or LIGHT, separators=(",", ":")),
    }
    return url + "#" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


def app_url(bot: BotHarness) -> str:
    web = bot.services.web
    assert web is not None
    return web.base


async def signin_link(bot: BotHarness, user: int) -> str:
    """The one-time sign-in link the bot answers `user`'s /web with."""
    start = len(bot.api.calls)
    bot.send(user, "/web")
    reply = await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and c.ok and c.params["chat_id"] == user,
        timeout=20,
        since=start,
    )
    [link] = re.findall(r"http://\S+/signin/\S+", reply.result["text"])
    return str(link)


class FrontHarness(BotHarness):
    """`python -m bot front`: updates and the pages, no browser, no workers."""

    async def start(self) -> None:
        self.api.release_polls(False)
        app = build_application(self.settings, role=Role.FRONT)
        self._count_handled(app)
        self.app = await self._stack.enter_async_context(running(app, self.settings))


@asynccontextmanager
async def front_and_worker(
    api: FakeBotAPI, mongodb_uri: str, pages: PageServer, capturer: Capturer
) -> AsyncIterator[BotHarness]:
    """A front (no browser) and, beside it, a worker with the browser, on one database."""
    settings = settings_for(base_env(api.root, mongodb_uri))
    front = FrontHarness(api, settings, pages, None)
    async with AsyncExitStack() as stack:
        await front.start()
        stack.push_async_callback(front.stop)
        worker = build_application(settings, role=Role.WORKER, capturer=capturer)
        await stack.enter_async_context(running(worker, settings))
        yield front


def picture(width: int = 1280, height: int = 800, colour: str = "#3a7bd5") -> bytes:
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 120), fill=colour)
    for row in range(8):
        draw.rectangle((60, 180 + row * 70, width - 60 - row * 80, 220 + row * 70), fill="#cccccc")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


async def seed(
    store: LinkStore,
    owner: int,
    title: str,
    tags: list[str],
    *,
    text: str = "",
    minutes_ago: int = 0,
    colour: str = "#3a7bd5",
    url: str | None = None,
    image: bytes | None = None,
    **fields: Any,
) -> LinkRecord:
    """A finished link with a stored screenshot (`image`, else a JPEG drawn here), as if
    captured `minutes_ago`."""
    url = url or f"https://example.org/{owner}/{urllib.parse.quote(title)}/{minutes_ago}"
    image_id = await store.put_image(image or picture(colour=colour), "seed.jpg")
    created: datetime = utcnow() - timedelta(minutes=minutes_ago)
    record = owned(
        owner,
        url,
        tags=tags,
        title=title,
        final_url=url,
        text=text,
        status=Status.DONE,
        screenshot=Screenshot(1280, 800, gridfs_id=image_id),
        created_at=created,
        updated_at=created,
        **fields,
    )
    assert await seed_links(store, [record]) == 1
    return record

"""The front's web server (aiohttp): the pages, their API, and in webhook mode Telegram's
webhook too, on one port (a PaaS gives a `web` process one).

The webhook is PTB's documented custom-server pattern: check the secret header, turn
the JSON into an `Update`, put it on the Application's update queue; answered once the
update is settled (its links written), as a polled update is confirmed.
"""

from __future__ import annotations

import hmac
import logging
import urllib.parse
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.ext import Application

from bot.config import Settings, split_listen
from bot.services import Services
from bot.web import api_actions, api_library, media, pages, progress
from bot.web.context import API_PREFIX, CONTEXT, WebContext
from bot.web.security import guard
from bot.web_address import WebAddress
from storage.errors import LinksnapError

log = logging.getLogger(__name__)
App = Application[Any, Any, Any, Any, Any, Any]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class ListenError(LinksnapError):
    """The web server could not bind its address (one line, for start-up)."""


class WebServer:
    def __init__(self, app: App, services: Services, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        path = "/"
        if settings.webapp_url is not None:
            path = WebAddress.of(str(settings.webapp_url)).path
        # The address is known once the port is bound (WEB_LISTEN may name port 0).
        self.ctx = WebContext(services, app.bot, app.job_queue, WebAddress("http://127.0.0.1/"))
        self.path = path
        self._runner: web.AppRunner | None = None

    @property
    def takes_webhook(self) -> bool:
        return self.settings.webhook_url is not None

    def _listen(self) -> tuple[str, int]:
        if self.takes_webhook:  # the webhook's port ($PORT), on every interface as before
            return "0.0.0.0", self.settings.port
        return split_listen(self.settings.web_listen)

    async def start(self) -> WebAddress:
        host, port = self._listen()
        self._runner = web.AppRunner(
            self._application(), handle_signals=False, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host, port).start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ListenError(f"cannot listen on {host}:{port} (WEB_LISTEN/PORT): {exc}") from exc
        bound = int(self._runner.addresses[0][1])
        local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        url = str(self.settings.webapp_url or f"http://{local}:{bound}/")
        self.ctx.address = WebAddress.of(url)
        log.info("pages at %s (listening on %s:%d)", self.ctx.address.base, host, bound)
        return self.ctx.address

    async def stop(self) -> None:
        self.ctx.closing.set()  # live streams end
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _application(self) -> web.Application:
        aio = web.Application(middlewares=[guard], client_max_size=2**20)
        aio[CONTEXT] = self.ctx
        p = self.path
        aio[API_PREFIX] = f"{p}api/"
        if self.takes_webhook:
            hook = urllib.parse.urlsplit(str(self.settings.webhook_url)).path or "/"
            aio.router.add_post(hook, self._webhook)
        aio.router.add_get(p, pages.index)
        if p != "/":
            aio.router.add_get(p.rstrip("/"), pages.index)
        aio.router.add_get(f"{p}static/telegram-web-app.js", pages.sdk)
        aio.router.add_static(f"{p}static/", pages.STATIC)
        aio.router.add_get(f"{p}signin/{{token}}", pages.signin_page)
        aio.router.add_post(f"{p}signin/{{token}}", pages.signin)
        aio.router.add_get(f"{p}media/{{what}}/{{link_id}}", media.serve)
        api = f"{p}api/"
        aio.router.add_get(f"{api}me", api_library.me)
        aio.router.add_get(f"{api}texts", api_library.texts)
        aio.router.add_get(f"{api}links", api_library.links)
        aio.router.add_post(f"{api}links", api_actions.add)
        aio.router.add_get(f"{api}tags", api_library.tags)
        aio.router.add_post(f"{api}tags/rename", api_actions.rename_tag)
        aio.router.add_post(f"{api}bulk", api_actions.bulk)
        aio.router.add_post(f"{api}bulk/undo", api_actions.bulk_undo)
        aio.router.add_post(f"{api}signout", api_actions.sign_out)
        link = f"{api}links/{{link_id}}"
        aio.router.add_get(link, api_library.link)
        aio.router.add_delete(link, api_actions.delete)
        aio.router.add_get(f"{link}/events", progress.events)
        aio.router.add_post(f"{link}/tags", api_actions.retag)
        aio.router.add_post(f"{link}/undo", api_actions.undo)
        aio.router.add_post(f"{link}/recapture", api_actions.recapture)
        aio.router.add_post(f"{link}/files/{{kind}}", api_actions.make_file)
        return aio

    async def _webhook(self, request: web.Request) -> web.Response:
        secret = self.settings.webhook_secret
        given = request.headers.get(SECRET_HEADER, "")
        if secret is not None and not hmac.compare_digest(
            given.encode(), secret.get_secret_value().encode()
        ):
            return web.Response(status=403)
        try:
            update = Update.de_json(await request.json(), self.app.bot)
        except (ValueError, TypeError, KeyError):
            return web.Response(status=400)
        # Answered once its links are written (a kill before that: Telegram delivers it
        # again, to the next start), SETTLE_AT_MOST seconds at most (bot/chat/receipts.py).
        receipts = self.app.bot_data.receipts
        receipts.delivered(update.update_id)
        await self.app.update_queue.put(update)
        await receipts.answered(update.update_id)
        return web.Response(status=200)

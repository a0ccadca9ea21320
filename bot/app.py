"""Build the PTB Application from Settings; own the shared resources' life."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from pymongo.errors import PyMongoError
from telegram import BotCommand, MenuButtonWebApp, Update, WebAppInfo
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes
from telegram.request import HTTPXRequest

import handlers
from bot import scheduler, tags
from bot.browser.binary import find_chromium
from bot.browser.types import CaptureOptions
from bot.chat.ordering import PerUserOrder
from bot.chat.outbound import Outbound, Pace
from bot.chat.receipts import GatedUpdates, Receipts
from bot.config import Settings, split_listen
from bot.guard.egress import EgressLimits, GuardProxy
from bot.guard.netguard import NetGuard
from bot.i18n import Texts, en, zh
from bot.pipeline.base import Pipeline
from bot.pipeline.durable import past_hiccups
from bot.pipeline.worker import Worker
from bot.services import BotData, Context, Role, Services, UserLimits
from bot.summarize import Summarizer
from bot.tls import tls_context
from bot.web.server import ListenError, WebServer
from bot.web_address import WebAddress
from storage.errors import LinksnapError
from storage.migrate import migrate_tags
from storage.queue.pacing import SendLedger
from storage.repository import LinkStore

if TYPE_CHECKING:
    from bot.browser.capture import Capturer
    from bot.browser.idle import Clock

log = logging.getLogger(__name__)

App = Application[Any, Any, Any, Any, Any, Any]


class StartupError(LinksnapError):
    """A resource the bot needs is not there; the message is one clear line."""


def build_application(
    settings: Settings, *, role: Role = Role.ALL, capturer: Capturer | None = None
) -> App:
    """The Application with handlers, the outbound path and typed bot data; nothing started.

    A worker has no update stream. A `capturer` given here is used as is and left running
    at shutdown (its owner, e.g. a test session sharing one browser, stops it).
    """
    # PTB's coming behaviour (RetryAfter.retry_after as a timedelta) opted in when the bot
    # is built, not when `bot` is imported; outbound.retry_seconds reads either form.
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    root = settings.api_root
    receipts = Receipts()  # links recorded before their update is confirmed (polling)
    builder = (
        ApplicationBuilder()
        .token(settings.token)
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .rate_limiter(Outbound(_pace(settings)))
        .context_types(ContextTypes(context=Context, bot_data=BotData))
        .concurrent_updates(PerUserOrder(receipts))
        .request(_bot_api_request(pool=32, connect=10, read=30, write=60, wait=30))
        # getUpdates as PTB's builder makes it: one connection, PTB's default timeouts.
        .get_updates_request(_bot_api_request(pool=1, receipts=receipts))
    )
    if role is Role.WORKER:
        builder = builder.updater(None)
    app = builder.build()
    data: BotData = app.bot_data
    data.settings, data.role, data.shared_capturer = settings, role, capturer
    data.receipts = receipts
    if role is not Role.WORKER:
        handlers.register(app)
    return app


def _bot_api_request(
    pool: int,
    connect: float = 5.0,
    read: float = 5.0,
    write: float = 5.0,
    wait: float = 1.0,
    receipts: Receipts | None = None,
) -> HTTPXRequest:
    """PTB's request (its defaults unless given) with the process's one TLS context;
    with `receipts`, the getUpdates request that confirms only settled updates."""
    options: dict[str, Any] = {
        "connection_pool_size": pool,
        "connect_timeout": connect,
        "read_timeout": read,
        "write_timeout": write,
        "pool_timeout": wait,
        "httpx_kwargs": {"verify": tls_context()},
    }
    return HTTPXRequest(**options) if receipts is None else GatedUpdates(receipts, **options)


def build_proxy(guard: NetGuard, settings: Settings) -> GuardProxy:
    """The egress proxy as configured (EGRESS_* and CAPTURE_MAX_MB). Built here, as the
    summarizer is, so that the guard package knows nothing of the settings."""
    host, port = split_listen(settings.egress_proxy_listen)
    return GuardProxy(
        guard,
        host=host,
        port=port,
        public_url=str(settings.egress_proxy_url) if settings.egress_proxy_url else None,
        limits=EgressLimits(
            max_connections=settings.egress_max_connections,
            max_connections_per_capture=settings.egress_max_connections_per_capture,
            idle_timeout=settings.egress_idle_timeout,
            max_bytes_per_capture=int(settings.capture_max_mb * 1024 * 1024),
        ),
    )


def _pace(settings: Settings) -> Pace:
    return Pace(
        private_burst=settings.telegram_private_burst,
        private_per_second=settings.telegram_private_per_second,
        group_burst=min(settings.telegram_private_burst, settings.telegram_group_per_minute),
        group_per_minute=settings.telegram_group_per_minute,
        overall_per_second=settings.telegram_overall_per_second,
    )


async def start_services(app: App) -> None:
    """Database, browser (not in a front) and LLM client, once for the process."""
    data: BotData = app.bot_data
    settings = data.require_settings()
    store = await _open_store(settings)
    capturer: Capturer | None = None
    if data.role is not Role.FRONT:
        try:
            capturer = data.shared_capturer or await start_capturer(settings)
        except StartupError:
            await store.close()
            raise
    outbound = app.bot.rate_limiter
    assert isinstance(outbound, Outbound)
    outbound.holds = SendLedger(store.db)
    if data.role is not Role.ALL:  # other processes write to the same chats
        outbound.ledger = outbound.holds
    await outbound.restore_holds()
    pipeline = Pipeline(
        store=store,
        guard=capturer.guard if capturer else NetGuard(settings.capture_allow_private),
        capturer=capturer,
        summarizer=_summarizer(settings),
        outbound=outbound,
        per_minute=settings.user_rate_per_minute,
        db_patience=settings.database_patience,
        summary_retry_delay=settings.summary_retry_delay,
    )
    worker = None
    if data.role is not Role.FRONT:
        worker = Worker(pipeline, app.bot, capture_slots=settings.capture_concurrency)
    data.services = Services(
        settings=settings,
        store=store,
        pipeline=pipeline,
        limits=UserLimits(settings.user_rate_per_minute),
        outbound=outbound,
        worker=worker,
        stopping=outbound.stopping,  # one signal: pacing, retries and waits all stop
    )
    data.receipts.keep_with(store.settle_update)


async def start_capturer(settings: Settings, *, clock: Clock | None = None) -> Capturer:
    """The process's one browser, behind the egress guard (`clock`: tests drive the idle
    close with their own)."""
    from bot.browser.capture import Capturer  # Playwright is loaded by processes that capture

    guard = NetGuard(settings.capture_allow_private)
    capturer = Capturer(
        guard,
        executable=settings.chromium_path or find_chromium(),
        ws_endpoint=settings.browser_ws_endpoint,
        concurrency=settings.capture_concurrency,
        timeout=settings.capture_timeout,
        proxy=build_proxy(guard, settings),
        options=CaptureOptions.from_settings(settings),
        idle_close=settings.browser_idle_close,
        clock=clock,
    )
    try:
        await capturer.start()
    except Exception as exc:
        await capturer.stop()
        raise StartupError(f"cannot start Chromium (CHROMIUM_PATH): {exc}".splitlines()[0]) from exc
    return capturer


async def _open_store(settings: Settings) -> LinkStore:
    uri = settings.mongodb_uri.get_secret_value()
    store = LinkStore.connect(
        uri,
        index_dir=settings.search_index_dir,
        listing=settings.listing,
        heal_every=settings.index_heal_every,
    )

    async def prepare() -> None:
        await store.ping()
        await store.ensure_indexes()
        await migrate_tags(store.db, store.writes, tags.normalise)

    try:
        await past_hiccups(prepare)
    except PyMongoError as exc:
        await store.close()
        where = urllib.parse.urlsplit(uri).hostname or "?"
        raise StartupError(
            f"cannot reach the database at {where} (MONGODB_URI): {type(exc).__name__}"
        ) from exc
    return store


def _summarizer(settings: Settings) -> Summarizer | None:
    if not settings.summaries_enabled or settings.openai_api_key is None:
        log.info("summaries off: OPENAI_API_KEY is not set")
        return None
    return Summarizer(
        settings.openai_api_key.get_secret_value(),
        base_url=str(settings.openai_base_url) if settings.openai_base_url else None,
        model=settings.openai_model,
        first_token_timeout=settings.summary_first_token_timeout,
        stall_timeout=settings.summary_stall_timeout,
    )


def _commands(texts: Texts) -> list[BotCommand]:
    return [
        BotCommand("find", texts.cmd_find),
        BotCommand("tags", texts.cmd_tags),
        BotCommand("export", texts.cmd_export),
        BotCommand("import", texts.cmd_import),
        BotCommand("stats", texts.cmd_stats),
        BotCommand("digest", texts.cmd_digest),
        BotCommand("web", texts.cmd_web),
        BotCommand("help", texts.cmd_help),
        BotCommand("start", texts.cmd_start),
    ]


async def _set_commands(app: App) -> None:
    await app.bot.set_my_commands(_commands(en.TEXTS))
    await app.bot.set_my_commands(_commands(zh.TEXTS), language_code="zh")


async def stop_services(app: App) -> None:
    data: BotData = app.bot_data
    services, data.services = data.services, None
    if services is None:
        return
    await services.drain(0)
    if data.shared_capturer is None and services.capturer is not None:
        await services.capturer.stop()
    if services.summarizer is not None:
        await services.summarizer.close()
    await services.store.close()


@asynccontextmanager
async def running(app: App, settings: Settings) -> AsyncIterator[App]:
    """Initialise, start the update stream (front) and the workers, and stop it all on exit.

    `python -m bot` and the tests both run the bot through here.
    """
    await start_services(app)
    data: BotData = app.bot_data
    pages: WebServer | None = None
    try:
        await _initialize(app, settings)
        services = data.require_services()
        if data.role is not Role.WORKER:
            await _set_commands(app)
            pages = WebServer(app, services, settings)
            services.web = await _serve_pages(pages)
            await _set_menu_button(app, services.web)
        scheduler.schedule(app, data.role)
        if data.role is not Role.WORKER:
            await _start_updates(app, settings)
        await app.start()
        if services.worker is not None:
            services.worker.start()
        yield app
    finally:
        taking = pages is not None or (app.updater is not None and app.updater.running)
        if pages is not None:
            await pages.stop()  # no new requests (nor webhook updates)
        if app.updater is not None and app.updater.running:
            await app.updater.stop()  # no new updates; what is in flight may finish
        if taking:
            await _take_fetched(app)
        if data.services is not None:
            await data.services.drain(settings.shutdown_grace)
        if app.running:
            await app.stop()
        await data.receipts.marked()  # before the database closes
        await stop_services(app)
        await app.shutdown()


def set_heap_aside() -> int:
    """Set what is alive once the bot has started (its modules, the Application, the
    services: ~150 000 objects) aside from the collector's full passes, and say how many.
    A full pass walks every object, every few dozen links: it took 80-160 ms, a stall on
    one link's way to its photo, and ~11 ms once the start-up heap is set aside
    (docs/BENCHMARKS.md). Collected first, so nothing set aside is garbage then; what is
    set aside is still freed when its last reference goes, and only cycles among it stay
    (the first browser's objects once the idle close ends it: ~1 000 objects, once). For
    a process that runs one bot (`python -m bot`), not one that starts many (the tests)."""
    gc.collect()
    gc.freeze()
    count = gc.get_freeze_count()
    log.info("started; %d objects set aside from full collections", count)
    return count


async def _take_fetched(app: App) -> None:
    """Hand the updates already fetched to their handlers while the Application still
    runs: PTB tracks (and `app.stop()` awaits) only tasks created while it runs, so a
    handler started later would outlive the bot's database and connections."""
    if app.running:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(app.update_queue.join(), 10)


async def _initialize(app: App, settings: Settings) -> None:
    """app.initialize() (it calls getMe), with failures told in one line."""
    try:
        await app.initialize()
    except InvalidToken:
        raise StartupError(
            "Telegram rejected TELEGRAM_BOT_TOKEN (check it with @BotFather)"
        ) from None
    except NetworkError as exc:
        where = urllib.parse.urlsplit(settings.api_root).hostname
        raise StartupError(
            f"cannot reach the Bot API at {where} (TELEGRAM_API_URL): {type(exc).__name__}"
        ) from None


async def _serve_pages(pages: WebServer) -> WebAddress:
    try:
        return await pages.start()
    except ListenError as exc:
        raise StartupError(str(exc)) from None


async def _set_menu_button(app: App, address: WebAddress) -> None:
    """The menu button opens the library as a Mini App: Telegram takes only https ones
    (BUTTON_URL_INVALID), so with a local http address it is left as it is."""
    if not address.https:
        return
    button = MenuButtonWebApp(en.TEXTS.menu_button, WebAppInfo(address.base))
    try:
        await app.bot.set_chat_menu_button(menu_button=button)
    except TelegramError as exc:
        log.warning("menu button not set: %s", exc)


async def _start_updates(app: App, settings: Settings) -> None:
    """Polling; or the webhook, which the pages' server (already listening) takes."""
    assert app.updater is not None
    if settings.webhook_url is None:
        await app.updater.start_polling(allowed_updates=Update.ALL_TYPES, timeout=10)
        return
    await app.bot.set_webhook(
        str(settings.webhook_url),
        secret_token=settings.webhook_secret.get_secret_value()
        if settings.webhook_secret
        else None,
        allowed_updates=Update.ALL_TYPES,
    )

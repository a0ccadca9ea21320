"""A Bot API server for tests, as strict as Telegram where the bot could go wrong.

The real PTB Application talks to it over HTTP (`ApplicationBuilder.base_url`). It
rejects what Telegram rejects (lengths, markup, photo dimensions, reactions, unknown
parameters), answers 429 with `retry_after` when a chat is flooded, records every
call, and lets a test play users: messages, forwards, shares and button presses.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import itertools
import json
import math
import mimetypes
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, hdrs, web
from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from PIL import Image, UnidentifiedImageError

from tests.fakes.telegram_rules import (
    ALLOWED_REACTIONS,
    KNOWN_PARAMS,
    ApiError,
    detect_entities,
    parse_html,
    utf16_len,
)
from tests.fakes.web import serve

JSON_FIELDS = {
    "reply_markup",
    "reply_parameters",
    "reaction",
    "entities",
    "caption_entities",
    "commands",
    "scope",
    "link_preview_options",
    "allowed_updates",
    "media",
    "results",
    "menu_button",
}
INT_FIELDS = {"chat_id", "message_id", "offset", "limit", "timeout", "from_chat_id", "cache_time"}
BOOL_FIELDS = {
    "disable_notification",
    "protect_content",
    "show_alert",
    "is_personal",
    "is_big",
    "drop_pending_updates",
    "show_caption_above_media",
    "has_spoiler",
    "allow_sending_without_reply",
}
LIMITED = re.compile(r"^(send|edit|copy|forward)")
GETFILE_LIMIT = 20 * 2**20


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes]
    at: float
    ok: bool = False
    filenames: dict[str, str] = field(default_factory=dict)
    error_code: int | None = None
    description: str | None = None
    result: Any = None


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class _Injection:
    seconds: int
    methods: set[str] | None
    times: int


@dataclass
class _Chat:
    info: dict[str, Any]
    next_id: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


def _user(user_id: int, language_code: str, first_name: str = "Ann") -> dict[str, Any]:
    """A Telegram User: who sends a message, an inline query or a button press."""
    return {
        "id": user_id,
        "is_bot": False,
        "first_name": first_name,
        "language_code": language_code,
    }


def _check_unanswered(answered: dict[str, bool], query_id: str) -> None:
    """A query Telegram delivered may be answered once; an unknown id, never."""
    if answered.get(query_id, True):
        raise ApiError(
            400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
        )


class FakeBotAPI:
    """aiohttp server on 127.0.0.1 speaking the Bot API."""

    def __init__(
        self,
        token: str = "123456:TEST-token",
        *,
        bot_username: str = "linksnap_test_bot",
        private_burst: float = 3,
        private_rate: float = 1.0,
        group_burst: float = 3,
        group_rate: float = 20 / 60,
        global_rate: float = 30,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":")[0])
        self.bot_user = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "linksnap",
            "username": bot_username,
        }
        self.root = ""
        self.calls: list[Call] = []
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.flood_violations: list[Call] = []
        self.violations_expected = False  # a test of the fake itself may set this
        self._limits = {
            "private": (private_burst, private_rate),
            "group": (group_burst, group_rate),
        }
        self._global = _Bucket(global_rate, time.monotonic())
        self._global_rate = global_rate
        self._buckets: dict[int, _Bucket] = {}
        self._blocked: dict[int, float] = {}
        self._injections: dict[int, list[_Injection]] = {}
        self._stalls: list[tuple[str, float]] = []  # (method, seconds): arrivals held back
        self._chats: dict[int, _Chat] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._new_update = asyncio.Event()
        self._files: dict[str, tuple[bytes, int, int]] = {}
        self._callbacks: dict[str, bool] = {}
        self._callback_ids = itertools.count(1)
        self._file_meta: dict[str, dict[str, Any]] = {}  # documents: file_name, mime_type
        self._inline: dict[str, bool] = {}  # inline query id -> answered
        self._inline_ids = itertools.count(1)
        self.inline_answers: dict[str, dict[str, Any]] = {}
        self._commands: dict[str, list[dict[str, Any]]] = {}
        self._webhook: dict[str, Any] = {}
        # The menu button: bot-wide (key None) and per private chat, as last set.
        self.menu_buttons: dict[int | None, dict[str, Any]] = {}
        self._runner: web.AppRunner | None = None
        self._releasing = False
        self._filenames: dict[str, str] = {}

    # --- server life -------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=60 * 2**20)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner, port = await serve(app)
        self.root = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._new_update.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what tests use ----------------------------------------------------------

    def calls_of(
        self, method: str, chat_id: int | None = None, *, ok_only: bool = False
    ) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == method
            and (chat_id is None or c.params.get("chat_id") == chat_id)
            and (c.ok or not ok_only)
        ]

    async def wait_for(
        self, predicate: Callable[[Call], bool], timeout: float = 30, *, since: int = 0
    ) -> Call:
        """The first call from index `since` on (recorded already or yet to come) matching."""
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            for call in self.calls[seen:]:
                if predicate(call):
                    return call
            seen = len(self.calls)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching call within {timeout}s; last: {self._tail()}")
            await asyncio.sleep(0.01)

    async def wait_until(self, cond: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s; last: {self._tail()}")
            await asyncio.sleep(0.01)

    def _tail(self) -> str:
        return "; ".join(
            f"{c.method}{'' if c.ok else ' ✗ ' + str(c.description)}" for c in self.calls[-6:]
        )

    @property
    def updates_waiting(self) -> int:
        """Updates not yet confirmed by the bot (a later getUpdates' offset)."""
        return len(self._updates)

    def message_text(self, chat_id: int, message_id: int) -> str | None:
        message = self.messages.get((chat_id, message_id))
        if message is None:
            return None
        return message.get("text", message.get("caption"))

    def download(self, file_id: str) -> bytes:
        return self._files[file_id][0]

    def inject_retry_after(
        self, chat_id: int, seconds: int, *, methods: set[str] | None = None, times: int = 1
    ) -> None:
        self._injections.setdefault(chat_id, []).append(_Injection(seconds, methods, times))

    def stall_arrival(self, method: str, seconds: float) -> None:
        """The next `method` call is counted `seconds` after it was sent, as a request held
        up on its way (a loaded machine, a slow uplink) reaches Telegram late."""
        self._stalls.append((method, seconds))

    def release_polls(self, releasing: bool = True) -> None:
        """Answer long polls at once (a bot is stopping), or stop doing so."""
        self._releasing = releasing
        self._new_update.set()

    def push_update(self, update: dict[str, Any]) -> int:
        update.setdefault("update_id", next(self._update_ids))
        # A query Telegram delivered may be answered (once); ids never delivered may not.
        if "inline_query" in update:
            self._inline.setdefault(str(update["inline_query"]["id"]), False)
        if "callback_query" in update:
            self._callbacks.setdefault(str(update["callback_query"]["id"]), False)
        self._updates.append(update)
        self._new_update.set()
        return int(update["update_id"])

    def send_message(
        self,
        user_id: int,
        text: str | None = None,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        language_code: str = "en",
        first_name: str = "Ann",
        entities: list[dict[str, Any]] | None = None,
        caption: str | None = None,
        caption_entities: list[dict[str, Any]] | None = None,
        photo: bool = False,
        forward_origin: dict[str, Any] | None = None,
        reply_to_message_id: int | None = None,
    ) -> dict[str, Any]:
        """A user writes to the bot; returns the Message as delivered."""
        user = _user(user_id, language_code, first_name)
        chat = self._chat(chat_id if chat_id is not None else user_id, chat_type, first_name)
        message: dict[str, Any] = {
            "message_id": next(chat.next_id),
            "date": int(time.time()),
            "chat": chat.info,
            "from": user,
        }
        if photo:
            message["photo"] = [self._photo_size(b"user-photo", 320, 240)]
            body, ents = caption if caption is not None else text, caption_entities
            if body is not None:
                message["caption"] = body
                message["caption_entities"] = ents if ents is not None else detect_entities(body)
        elif text is not None:
            message["text"] = text
            message["entities"] = entities if entities is not None else detect_entities(text)
        if forward_origin is not None:
            message["forward_origin"] = forward_origin
        if reply_to_message_id is not None:
            message["reply_to_message"] = self.messages[(chat.info["id"], reply_to_message_id)]
        for key in ("entities", "caption_entities"):
            if key in message and not message[key]:
                del message[key]
        self.messages[(chat.info["id"], message["message_id"])] = message
        self.push_update({"message": message})
        return message

    def open_chat(self, user_id: int, name: str = "Ann") -> None:
        """A private chat with a user who has talked to the bot before, so the bot may write
        to them (as Telegram allows once the user has started the bot)."""
        self._chat(user_id, "private", name)

    def stored_photo(self, data: bytes, width: int, height: int) -> str:
        """A photo Telegram already holds (as if the bot had sent it); its file_id."""
        return str(self._photo_size(data, width, height)["file_id"])

    def send_document(
        self,
        user_id: int,
        data: bytes,
        file_name: str,
        *,
        mime_type: str | None = None,
        caption: str | None = None,
        chat_id: int | None = None,
        chat_type: str = "private",
        language_code: str = "en",
    ) -> dict[str, Any]:
        """A user sends a file (as a document); returns the Message as delivered."""
        unique = hashlib.sha256(data).hexdigest()[:16]
        file_id = f"BQAC{unique}{len(self._files):04d}"
        self._files[file_id] = (data, 0, 0)
        mime = mime_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        self._file_meta[file_id] = {"file_name": file_name, "mime_type": mime}
        user = _user(user_id, language_code)
        chat = self._chat(chat_id if chat_id is not None else user_id, chat_type)
        message: dict[str, Any] = {
            "message_id": next(chat.next_id),
            "date": int(time.time()),
            "chat": chat.info,
            "from": user,
            "document": {
                "file_id": file_id,
                "file_unique_id": unique,
                "file_name": file_name,
                "mime_type": mime,
                "file_size": len(data),
            },
        }
        if caption:
            message["caption"] = caption
            entities = detect_entities(caption)
            if entities:
                message["caption_entities"] = entities
        self.messages[(chat.info["id"], message["message_id"])] = message
        self.push_update({"message": message})
        return message

    def send_inline_query(
        self, user_id: int, query: str, *, offset: str = "", language_code: str = "en"
    ) -> str:
        """A user types `@bot query` in some chat; returns the inline query's id."""
        if len(query) > 256:
            raise ValueError("Telegram cuts inline queries at 256 characters")
        query_id = str(next(self._inline_ids))
        self._inline[query_id] = False
        self.push_update(
            {
                "inline_query": {
                    "id": query_id,
                    "from": _user(user_id, language_code),
                    "query": query,
                    "offset": offset,
                    "chat_type": "sender",
                }
            }
        )
        return query_id

    def press_button(
        self, user_id: int, message: dict[str, Any], data: str, *, language_code: str = "en"
    ) -> dict[str, Any]:
        query_id = str(next(self._callback_ids))
        self._callbacks[query_id] = False
        query = {
            "id": query_id,
            "from": _user(user_id, language_code),
            "chat_instance": "ci-1",
            "message": message,
            "data": data,
        }
        self.push_update({"callback_query": query})
        return query

    # --- transport ---------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, files, filenames = await _read_params(request)
        canonical = _canonical(method)
        for stall in self._stalls:
            if stall[0] == canonical:
                self._stalls.remove(stall)
                await asyncio.sleep(stall[1])
                break
        call = Call(canonical, params, files, time.monotonic(), filenames=filenames)
        self._filenames = filenames
        self.calls.append(call)
        if request.match_info["token"] != self.token:
            return self._fail(call, ApiError(401, "Unauthorized"))
        handler = getattr(self, f"_m_{canonical}", None)
        if handler is None:
            return self._fail(call, ApiError(404, "Not Found"))
        try:
            _check_known(canonical, params)
            self._flood(call)
            result = await handler(params, files)
        except ApiError as exc:
            return self._fail(call, exc)
        call.ok, call.result = True, result
        return web.json_response({"ok": True, "result": result})

    def _fail(self, call: Call, exc: ApiError) -> web.Response:
        call.ok, call.error_code, call.description = False, exc.code, exc.description
        body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
        if exc.parameters:
            body["parameters"] = exc.parameters
        return web.json_response(body, status=exc.code)

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        file_id = request.match_info["path"].rsplit("/", 1)[-1].split(".")[0]
        if file_id not in self._files:
            return web.Response(status=404)
        mime = self._file_meta.get(file_id, {}).get("mime_type", "image/jpeg")
        return web.Response(body=self._files[file_id][0], content_type=mime)

    # --- flood control -----------------------------------------------------------

    def _flood(self, call: Call) -> None:
        chat_id = call.params.get("chat_id")
        if not isinstance(chat_id, int):
            return
        now = call.at
        until = self._blocked.get(chat_id, 0.0)
        if now < until:
            self.flood_violations.append(call)
            raise _too_many(until - now)
        for injection in self._injections.get(chat_id, []):
            if injection.times > 0 and (
                injection.methods is None or call.method in injection.methods
            ):
                injection.times -= 1
                self._blocked[chat_id] = now + injection.seconds
                raise _too_many(injection.seconds)
        if not LIMITED.match(call.method):
            return
        burst, rate = self._limits["private" if chat_id > 0 else "group"]
        bucket = self._buckets.setdefault(chat_id, _Bucket(burst, now))
        for b, cap, r in (
            (bucket, burst, rate),
            (self._global, self._global_rate, self._global_rate),
        ):
            b.tokens = min(cap, b.tokens + (now - b.stamp) * r)
            b.stamp = now
        if bucket.tokens < 1 or self._global.tokens < 1:
            wait = max((1 - bucket.tokens) / rate, (1 - self._global.tokens) / self._global_rate)
            seconds = max(1, math.ceil(wait))
            self._blocked[chat_id] = now + seconds
            raise _too_many(seconds)
        bucket.tokens -= 1
        self._global.tokens -= 1

    # --- helpers -----------------------------------------------------------------

    def _chat(self, chat_id: int, chat_type: str = "private", name: str = "Ann") -> _Chat:
        if chat_id not in self._chats:
            info: dict[str, Any] = {"id": chat_id, "type": chat_type}
            if chat_type == "private":
                info["first_name"] = name
            else:
                info["title"] = f"Group {chat_id}"
            self._chats[chat_id] = _Chat(info)
        return self._chats[chat_id]

    def _known_chat(self, params: dict[str, Any]) -> _Chat:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int) or chat_id not in self._chats:
            raise ApiError(400, "Bad Request: chat not found")
        return self._chats[chat_id]

    def _message(self, params: dict[str, Any], missing: str) -> dict[str, Any]:
        chat = self._known_chat(params)
        message = self.messages.get((chat.info["id"], params.get("message_id", -1)))
        if message is None:
            raise ApiError(400, f"Bad Request: {missing}")
        return message

    def _photo_size(self, data: bytes, width: int, height: int) -> dict[str, Any]:
        unique = hashlib.sha256(data).hexdigest()[:16]
        file_id = f"AgAC{unique}{len(self._files):04d}"
        self._files[file_id] = (data, width, height)
        return {
            "file_id": file_id,
            "file_unique_id": unique,
            "width": width,
            "height": height,
            "file_size": len(data),
        }

    def _new_bot_message(self, chat: _Chat, params: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": next(chat.next_id),
            "date": int(time.time()),
            "chat": chat.info,
            "from": self.bot_user,
        }
        reply = params.get("reply_parameters") or {}
        reply_id = reply.get("message_id") or params.get("reply_to_message_id")
        if reply_id:
            original = self.messages.get((chat.info["id"], reply_id))
            if original is None and not reply.get("allow_sending_without_reply"):
                raise ApiError(400, "Bad Request: message to be replied not found")
            if original is not None:
                message["reply_to_message"] = {
                    k: v for k, v in original.items() if k != "reply_to_message"
                }
        if params.get("reply_markup"):
            _check_markup(params["reply_markup"], chat.info["type"])
            message["reply_markup"] = params["reply_markup"]
        return message

    def _store(self, message: dict[str, Any]) -> dict[str, Any]:
        self.messages[(message["chat"]["id"], message["message_id"])] = message
        return message

    def _photo_upload(
        self, params: dict[str, Any], files: dict[str, bytes], field: str
    ) -> dict[str, Any]:
        value = params.get(field)
        if isinstance(value, str) and value.startswith("attach://"):
            value = files.get(value.removeprefix("attach://"))
        data = files.get(field, value)
        if isinstance(data, str):
            if data not in self._files:
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
            stored, width, height = self._files[data]
            return {
                "file_id": data,
                "file_unique_id": hashlib.sha256(stored).hexdigest()[:16],
                "width": width,
                "height": height,
                "file_size": len(stored),
            }
        if not isinstance(data, bytes):
            raise ApiError(400, f"Bad Request: there is no {field} in the request")
        return self._decode_image(data, field)

    def _decode_image(self, data: bytes, field: str) -> dict[str, Any]:
        if field == "document":
            if len(data) > 50 * 2**20:
                raise ApiError(400, "Bad Request: file is too big")
            return self._photo_size(data, 0, 0)
        if len(data) > 10 * 2**20:
            raise ApiError(400, "Bad Request: file is too big")
        try:
            width, height = Image.open(io.BytesIO(data)).size
        except (UnidentifiedImageError, OSError):
            raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED") from None
        if width + height > 10000 or max(width, height) > 20 * min(width, height):
            raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        return self._photo_size(data, width, height)

    def _apply_text(
        self, message: dict[str, Any], key: str, params: dict[str, Any], limit: int
    ) -> None:
        raw = params.get(key) or ""
        if params.get("parse_mode") == "HTML":
            plain, entities = parse_html(raw)
        else:
            plain, entities = (
                raw,
                params.get("entities" if key == "text" else "caption_entities") or [],
            )
        if key == "text" and not plain.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(plain) > limit:
            kind = "message is too long" if key == "text" else "message caption is too long"
            raise ApiError(400, f"Bad Request: {kind}")
        message[key] = plain
        ents_key = "entities" if key == "text" else "caption_entities"
        message.pop(ents_key, None)
        if entities:
            message[ents_key] = entities

    # --- methods -----------------------------------------------------------------

    async def _m_getMe(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,
        }

    async def _m_getUpdates(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        offset = params.get("offset") or 0
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        while not self._updates and not self._releasing and time.monotonic() < deadline:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
            if self._runner is None:
                break
        limit = params.get("limit") or 100
        return self._updates[:limit]

    async def _m_deleteWebhook(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        self._webhook = {}
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _m_setWebhook(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        if not str(params.get("url", "")).startswith("https://"):
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        self._webhook = dict(params)
        return True

    async def _m_getWebhookInfo(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return {
            "url": self._webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    async def _m_setMyCommands(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list) or not 1 <= len(commands) <= 100:
            raise ApiError(400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[str(params.get("language_code") or "")] = commands
        return True

    async def _m_getMyCommands(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._commands.get(str(params.get("language_code") or ""), [])

    async def _m_deleteMyCommands(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        self._commands.pop(str(params.get("language_code") or ""), None)
        return True

    async def _m_close(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return True

    async def _m_logOut(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return True

    async def _m_sendMessage(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        chat = self._known_chat(params)
        message = self._new_bot_message(chat, params)
        self._apply_text(message, "text", params, 4096)
        return self._store(message)

    def _captioned_upload(
        self, params: dict[str, Any], files: dict[str, bytes], field: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new bot message with its caption checked, and the size of its uploaded `field`."""
        chat = self._known_chat(params)
        size = self._photo_upload(params, files, field)
        message = self._new_bot_message(chat, params)
        self._apply_text(message, "caption", params, 1024)
        return message, size

    async def _m_sendPhoto(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        message, size = self._captioned_upload(params, files, "photo")
        thumb = dict(size, file_id=size["file_id"] + "s", width=90, height=56)
        self._files[thumb["file_id"]] = self._files[size["file_id"]]
        message["photo"] = [thumb, size]
        return self._store(message)

    async def _m_sendDocument(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        message, size = self._captioned_upload(params, files, "document")
        message["document"] = {k: size[k] for k in ("file_id", "file_unique_id", "file_size")}
        name = self._filenames.get("document")
        if name:
            mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
            message["document"].update(file_name=name, mime_type=mime)
            self._file_meta[size["file_id"]] = {"file_name": name, "mime_type": mime}
        return self._store(message)

    async def _m_sendChatAction(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        self._known_chat(params)
        return True

    async def _edit(self, params: dict[str, Any], key: str, limit: int) -> Any:
        message = self._message(params, "message to edit not found")
        if key not in message and key == "text":
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        if key == "caption" and "text" in message:
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        updated = dict(message)
        self._apply_text(updated, key, params, limit)
        markup = params.get("reply_markup")
        if markup:
            _check_markup(markup, message["chat"]["type"])
            updated["reply_markup"] = markup
        else:
            updated.pop("reply_markup", None)
        if _same(updated, message):
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup of the specified message are exactly the same as a current content and "
                "reply markup of the message",
            )
        updated["edit_date"] = int(time.time())
        return self._store(updated)

    async def _m_editMessageText(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return await self._edit(params, "text", 4096)

    async def _m_editMessageCaption(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return await self._edit(params, "caption", 1024)

    async def _m_editMessageReplyMarkup(
        self, params: dict[str, Any], files: dict[str, bytes]
    ) -> Any:
        message = self._message(params, "message to edit not found")
        updated = dict(message, reply_markup=params.get("reply_markup"))
        if _same(updated, message):
            raise ApiError(400, "Bad Request: message is not modified")
        return self._store(updated)

    async def _m_deleteMessage(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        message = self._message(params, "message to delete not found")
        del self.messages[(message["chat"]["id"], message["message_id"])]
        return True

    async def _m_setMessageReaction(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        self._message(params, "message to react not found")
        reaction = params.get("reaction") or []
        if not isinstance(reaction, list) or len(reaction) > 1:
            raise ApiError(400, "Bad Request: REACTIONS_TOO_MANY")
        for item in reaction:
            if item.get("type") != "emoji" or item.get("emoji") not in ALLOWED_REACTIONS:
                raise ApiError(400, "Bad Request: REACTION_INVALID")
        return True

    async def _m_answerCallbackQuery(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        query_id = str(params.get("callback_query_id"))
        _check_unanswered(self._callbacks, query_id)
        if len(str(params.get("text") or "")) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self._callbacks[query_id] = True
        return True

    async def _m_answerInlineQuery(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        query_id = str(params.get("inline_query_id"))
        _check_unanswered(self._inline, query_id)
        results = params.get("results")
        if not isinstance(results, list):
            raise ApiError(400, "Bad Request: can't parse inline query results JSON object")
        if len(results) > 50:
            raise ApiError(400, "Bad Request: RESULTS_TOO_MUCH")
        if len(str(params.get("next_offset") or "").encode()) > 64:
            raise ApiError(400, "Bad Request: NEXT_OFFSET_INVALID")
        ids: set[str] = set()
        for result in results:
            self._check_inline_result(result)
            if result["id"] in ids:
                raise ApiError(400, "Bad Request: RESULT_ID_DUPLICATE")
            ids.add(result["id"])
        self._inline[query_id] = True
        self.inline_answers[query_id] = params
        return True

    def _check_inline_result(self, result: Any) -> None:
        if not isinstance(result, dict) or not isinstance(result.get("id"), str):
            raise ApiError(400, "Bad Request: RESULT_ID_INVALID")
        if not 1 <= len(result["id"].encode()) <= 64:
            raise ApiError(400, "Bad Request: RESULT_ID_INVALID")
        kind = result.get("type")
        if kind == "photo":
            if "photo_file_id" in result:
                self._known_file(result["photo_file_id"])
            elif not (result.get("photo_url") and result.get("thumbnail_url")):
                raise ApiError(400, "Bad Request: PHOTO_INVALID")
        elif kind == "document":
            if not result.get("title"):
                raise ApiError(400, "Bad Request: RESULT_TITLE_EMPTY")
            self._known_file(result.get("document_file_id"))
        elif kind == "article":
            if not result.get("title"):
                raise ApiError(400, "Bad Request: RESULT_TITLE_EMPTY")
            content = result.get("input_message_content") or {}
            if not content.get("message_text"):
                raise ApiError(400, "Bad Request: MESSAGE_EMPTY")
            self._check_text(content, "message_text", 4096, "MESSAGE_TOO_LONG")
        else:
            raise ApiError(400, "Bad Request: RESULT_TYPE_INVALID")
        if "caption" in result:
            self._check_text(result, "caption", 1024, "MEDIA_CAPTION_TOO_LONG")
        if result.get("reply_markup"):
            _check_markup(result["reply_markup"])

    def _known_file(self, file_id: object) -> None:
        if not isinstance(file_id, str) or file_id not in self._files:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    def _check_text(self, holder: dict[str, Any], key: str, limit: int, error: str) -> None:
        """An inline result's text: measured as Telegram does, after entity parsing, in
        UTF-16 units (Telegram answers MEDIA_CAPTION_TOO_LONG for a caption)."""
        raw = str(holder.get(key) or "")
        plain = parse_html(raw)[0] if holder.get("parse_mode") == "HTML" else raw
        if utf16_len(plain) > limit:
            raise ApiError(400, f"Bad Request: {error}")

    async def _m_setChatMenuButton(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        chat_id = params.get("chat_id")
        if chat_id is not None:
            chat = self._known_chat(params)
            if chat.info["type"] != "private":
                raise ApiError(400, "Bad Request: chat not found")
        button = params.get("menu_button") or {"type": "default"}
        kind = button.get("type") if isinstance(button, dict) else None
        if kind == "web_app":
            if not button.get("text"):
                raise ApiError(400, "Bad Request: BUTTON_TEXT_INVALID")
            _check_web_app(button.get("web_app"))
        elif kind not in ("commands", "default"):
            raise ApiError(400, "Bad Request: can't parse menu button")
        self.menu_buttons[chat_id] = button
        return True

    async def _m_getChatMenuButton(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        chat_id = params.get("chat_id")
        return self.menu_buttons.get(chat_id, self.menu_buttons.get(None, {"type": "commands"}))

    async def _m_getFile(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        file_id = str(params.get("file_id"))
        if file_id not in self._files:
            raise ApiError(400, "Bad Request: invalid file_id")
        data = self._files[file_id][0]
        meta = self._file_meta.get(file_id)
        if len(data) > GETFILE_LIMIT:  # bots download at most 20 MB through getFile
            raise ApiError(400, "Bad Request: file is too big")
        path = f"photos/{file_id}.jpg"
        if meta is not None:
            ext = (meta.get("file_name") or "").rpartition(".")[2]
            path = f"documents/{file_id}.{ext}" if ext else f"documents/{file_id}"
        return {
            "file_id": file_id,
            "file_unique_id": hashlib.sha256(data).hexdigest()[:16],
            "file_size": len(data),
            "file_path": path,
        }


def _too_many(seconds: float) -> ApiError:
    retry = max(1, math.ceil(seconds))
    return ApiError(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("text", "caption", "entities", "caption_entities", "reply_markup")
    return all(a.get(k) == b.get(k) for k in keys)


def _canonical(method: str) -> str:
    lowered = method.lower()
    for name in KNOWN_PARAMS:
        if name.lower() == lowered:
            return name
    return method


def _check_known(method: str, params: dict[str, Any]) -> None:
    allowed = KNOWN_PARAMS.get(method)
    if allowed is None:
        return
    for name in params:
        if name not in allowed:
            raise ApiError(400, f"Bad Request: unknown parameter {name}")


def _check_web_app(info: Any) -> None:
    """Telegram opens Mini Apps only over https."""
    url = info.get("url") if isinstance(info, dict) else None
    if not isinstance(url, str) or not url.startswith("https://") or len(url) <= len("https://"):
        raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")


def _check_markup(markup: Any, chat_type: str = "private") -> None:
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if rows is None:
        return
    for row in rows:
        for button in row:
            actions = [k for k in button if k != "text"]
            if len(actions) != 1 or not button.get("text"):
                raise ApiError(400, "Bad Request: BUTTON_TYPE_INVALID")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            if "web_app" in button:
                if chat_type != "private":  # web_app buttons only in private chats
                    raise ApiError(400, "Bad Request: BUTTON_TYPE_INVALID")
                _check_web_app(button["web_app"])


@functools.lru_cache(maxsize=1024)
def _disposition(header: str) -> tuple[str | None, str | None]:
    """A part's name and filename, by aiohttp's own parser, once per distinct header.
    Its parser escapes a 128-character class anew on every call, and `part.name` and
    `part.filename` each call it: profiled, 11 ms of CPU a link in a bench whose bot
    shares this fake's process (Telegram's parsing is not on the bot's machine)."""
    _, params = parse_content_disposition(header or None)
    return content_disposition_filename(params, "name"), content_disposition_filename(
        params, "filename"
    )


async def _read_params(
    request: web.Request,
) -> tuple[dict[str, Any], dict[str, bytes], dict[str, str]]:
    raw: dict[str, str] = {}
    files: dict[str, bytes] = {}
    filenames: dict[str, str] = {}
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            name, filename = _disposition(part.headers.get(hdrs.CONTENT_DISPOSITION, ""))
            if name is None:
                continue
            data = await part.read()
            if filename:
                files[name] = bytes(data)
                filenames[name] = filename
            else:
                raw[name] = bytes(data).decode()
    elif request.content_type == "application/json":
        body = await request.json()
        raw = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
    elif request.can_read_body:
        form = await request.post()
        raw = {k: str(v) for k, v in form.items()}
    else:
        raw = dict(request.query)
    return {k: _decode(k, v) for k, v in raw.items()}, files, filenames


def _decode(name: str, value: str) -> Any:
    if name in JSON_FIELDS:
        return json.loads(value)
    if name in INT_FIELDS:
        try:
            return int(value)
        except ValueError:
            return value
    if name in BOOL_FIELDS:
        return value.lower() == "true"
    return value

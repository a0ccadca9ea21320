"""Telegram's own rules, as the Bot API fake applies them: parameters, HTML, entities."""

from __future__ import annotations

import html
import re
from typing import Any

from telegram.constants import ReactionEmoji

ALLOWED_REACTIONS = frozenset(e.value for e in ReactionEmoji)

_SEND = {
    "business_connection_id",
    "chat_id",
    "message_thread_id",
    "direct_messages_topic_id",
    "disable_notification",
    "protect_content",
    "allow_paid_broadcast",
    "message_effect_id",
    "suggested_post_parameters",
    "reply_parameters",
    "reply_markup",
    "reply_to_message_id",
    "allow_sending_without_reply",
}
_CAPTION = {"caption", "parse_mode", "caption_entities", "show_caption_above_media"}
_EDIT = {"business_connection_id", "chat_id", "message_id", "inline_message_id", "reply_markup"}

KNOWN_PARAMS: dict[str, set[str]] = {
    "getMe": set(),
    "getUpdates": {"offset", "limit", "timeout", "allowed_updates"},
    "deleteWebhook": {"drop_pending_updates"},
    "setWebhook": {
        "url",
        "certificate",
        "ip_address",
        "max_connections",
        "allowed_updates",
        "drop_pending_updates",
        "secret_token",
    },
    "getWebhookInfo": set(),
    "setMyCommands": {"commands", "scope", "language_code"},
    "getMyCommands": {"scope", "language_code"},
    "deleteMyCommands": {"scope", "language_code"},
    "close": set(),
    "logOut": set(),
    "sendMessage": _SEND | {"text", "parse_mode", "entities", "link_preview_options"},
    "sendPhoto": _SEND | _CAPTION | {"photo", "has_spoiler"},
    "sendDocument": _SEND | _CAPTION | {"document", "thumbnail", "disable_content_type_detection"},
    "sendChatAction": {"business_connection_id", "chat_id", "message_thread_id", "action"},
    "editMessageText": _EDIT | {"text", "parse_mode", "entities", "link_preview_options"},
    "editMessageCaption": _EDIT | _CAPTION,
    "editMessageReplyMarkup": _EDIT,
    "deleteMessage": {"chat_id", "message_id"},
    "setMessageReaction": {"chat_id", "message_id", "reaction", "is_big"},
    "answerCallbackQuery": {"callback_query_id", "text", "show_alert", "url", "cache_time"},
    "answerInlineQuery": {
        "inline_query_id",
        "results",
        "cache_time",
        "is_personal",
        "next_offset",
        "button",
    },
    "getFile": {"file_id"},
    "setChatMenuButton": {"chat_id", "menu_button"},
    "getChatMenuButton": {"chat_id"},
}

_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
    "span": "spoiler",
}
_TOKEN = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)\s*>|&(#[0-9]+|#x[0-9a-fA-F]+|[a-zA-Z]+);|[<>&]"
)
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class ApiError(Exception):
    def __init__(
        self, code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _bad(why: str) -> ApiError:
    return ApiError(400, f"Bad Request: can't parse entities: {why}")


def parse_html(markup: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML: plain text plus entities (UTF-16 offsets), or the error it gives."""
    out: list[str] = []
    stack: list[tuple[str, int, dict[str, Any]]] = []
    entities: list[dict[str, Any]] = []
    pos = 0
    for match in _TOKEN.finditer(markup):
        out.append(markup[pos : match.start()])
        pos = match.end()
        token = match.group(0)
        if token in "<>&":
            raise _bad(
                f"unsupported start tag or unescaped {token!r} at byte offset {match.start()}"
            )
        if match.group(4):
            out.append(_entity(match.group(4)))
            continue
        closing, name, attrs = match.group(1), match.group(2).lower(), match.group(3) or ""
        if name not in _TAGS:
            raise _bad(f'unsupported start tag "{name}" at byte offset {match.start()}')
        offset = utf16_len("".join(out))
        if not closing:
            stack.append((name, offset, _entity_of(name, attrs)))
            continue
        if not stack or stack[-1][0] != name:
            raise _bad(
                f'unmatched end tag at byte offset {match.start()}, expected "</{stack[-1][0] if stack else "?"}>"'
            )
        _, start, entity = stack.pop()
        if offset > start:
            entities.append(dict(entity, offset=start, length=offset - start))
    out.append(markup[pos:])
    if stack:
        raise _bad(f'can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return "".join(out), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def _entity(ref: str) -> str:
    if ref.startswith("#x"):
        return chr(int(ref[2:], 16))
    if ref.startswith("#"):
        return chr(int(ref[1:]))
    if ref not in _NAMED:
        raise _bad(f'unsupported HTML entity "&{ref};"')
    return _NAMED[ref]


def _entity_of(name: str, attrs: str) -> dict[str, Any]:
    kind = _TAGS[name]
    if name == "a":
        href = re.search(r'href\s*=\s*"([^"]*)"', attrs) or re.search(
            r"href\s*=\s*'([^']*)'", attrs
        )
        if not href:
            raise _bad("<a> without href")
        return {"type": "text_link", "url": html.unescape(href.group(1))}
    if name == "span" and "tg-spoiler" not in attrs:
        raise _bad('unsupported start tag "span"')
    return {"type": kind}


# Entity detection for messages users send, as Telegram's clients see them.
# Scheme-less links are recognised by a known top-level domain, as Telegram does.
_TLDS = "com|org|net|io|dev|app|info|co|uk|de|cn|jp|ru|fr|edu|gov|me|ai|example|test|xyz|tv"
_URL = re.compile(
    r"(?:https?://[^\s<>\"]+)"
    rf"|(?<![\w@./:-])(?:[a-zA-Z0-9-]+\.)+(?:{_TLDS})\b(?::\d{{1,5}})?(?:/[^\s<>\"]*)?",
)
_HASHTAG = re.compile(r"(?<![\w#/])#(\w+)")
_COMMAND = re.compile(r"^/[a-zA-Z0-9_]{1,32}(?:@\w+)?")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_TRAILING = ".,;:!?)]}'\""


def detect_entities(text: str) -> list[dict[str, Any]]:
    """bot_command, email, url (with or without scheme) and hashtag entities."""
    found: list[tuple[int, int, str]] = []
    taken: list[tuple[int, int]] = []

    def add(start: int, end: int, kind: str) -> None:
        if any(a < end and start < b for a, b in taken):
            return
        taken.append((start, end))
        found.append((start, end, kind))

    command = _COMMAND.match(text)
    if command:
        add(0, command.end(), "bot_command")
    # Token by token keeps detection linear on huge pastes (whole-text regexes backtrack).
    for token in re.finditer(r"\S+", text):
        base, word = token.start(), token.group(0)
        if len(word) > 10000:
            continue
        for pattern, kind in ((_EMAIL, "email"), (_URL, "url")):
            for match in pattern.finditer(word) if ("@" in word or kind == "url") else ():
                end = match.end()
                while end > match.start() and word[end - 1] in _TRAILING:
                    end -= 1
                add(base + match.start(), base + end, kind)
        for match in _HASHTAG.finditer(word):
            if not match.group(1).isdigit():
                add(base + match.start(), base + match.end(), "hashtag")
    return [
        {"type": kind, "offset": utf16_len(text[:start]), "length": utf16_len(text[start:end])}
        for start, end, kind in sorted(found)
    ]

"""An OpenAI-compatible Chat Completions server for tests: streams, stalls, fails on cue.

It speaks the wire format of `POST /v1/chat/completions` closely enough for the real
`AsyncOpenAI` client, and is as strict as OpenAI about the request, so a bot that passes
against it sends requests OpenAI would accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.web import serve

# The documented Chat Completions parameters (including the deprecated function-calling
# pair, which OpenAI still accepts); anything else is a 400, as it is on the real API.
KNOWN_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "n",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "seed",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "logprobs",
        "top_logprobs",
        "metadata",
        "store",
        "service_tier",
        "reasoning_effort",
        "modalities",
        "prediction",
        "audio",
        "web_search_options",
        "safety_identifier",
        "prompt_cache_key",
        "verbosity",
        "functions",
        "function_call",
    }
)
ROLES = ("system", "user", "assistant", "developer", "tool")
SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
STATUS_MESSAGES = {
    500: SERVER_ERROR,
    502: "Bad gateway.",
    503: "The server is overloaded or not ready yet.",
}
# How often a stalled stream checks whether its client has gone: aiohttp does not cancel
# handlers when the peer disconnects, so the stall has to notice it by itself.
STALL_POLL = 0.05
# The `requests` record a request's handler and response hook both update.
ENTRY = web.RequestKey("openai_fake_entry", dict[str, Any])


@dataclass
class Script:
    """How the server answers one request.

    The `*_after` counts are content chunks sent before the failure; 0 fails right after
    the role chunk, `len(chunks)` fails instead of the finish chunk.
    """

    chunks: list[str]
    interval: float = 0.0
    first_delay: float = 0.0
    status: int = 200
    retry_after: float | None = None
    error_after: int | None = None
    stall_after: int | None = None
    stall_seconds: float = 300.0
    drop_after: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Before content chunk `hold_after`, wait until the test sets `hold` (a stream caught
    # mid-way, without timing: the test sees what was shown so far, then lets it go on).
    hold_after: int | None = None
    hold: asyncio.Event | None = None


class FakeOpenAI:
    """`POST /v1/chat/completions` on 127.0.0.1, answering each request from a Script.

    Scripts come from `enqueue` (FIFO), else `responder(body)`, else a short default
    summary of the last user message.
    """

    def __init__(self, *, api_key: str = "sk-test") -> None:
        self.api_key = api_key
        self.base_url = ""
        # Every request that reached the endpoint, rejected ones included: {"body": parsed
        # JSON or None, "headers": dict, "at": monotonic, "status": int, None if unanswered}.
        self.requests: list[dict[str, Any]] = []
        self.responder: Callable[[dict[str, Any]], Script] | None = None
        # (piece, monotonic time written) for every content chunk, across requests.
        self.chunk_times: list[tuple[str, float]] = []
        # Monotonic time each stream's first (role) chunk was written.
        self.role_times: list[float] = []
        self.active_streams = 0
        self._queue: deque[Script] = deque()
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(1)
        self._stopping = False

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.on_response_prepare.append(self._stamp)
        self._runner, port = await serve(app)
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        # Stalls end first, so shutdown need not wait out the runner's grace period for them.
        self._stopping = True
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def enqueue(self, *scripts: Script) -> None:
        self._queue.extend(scripts)

    def _script_for(self, body: dict[str, Any]) -> Script:
        if self._queue:
            return self._queue.popleft()
        if self.responder is not None:
            return self.responder(body)
        return default_script(body)

    async def _stamp(self, request: web.Request, response: web.StreamResponse) -> None:
        # The SDK exposes x-request-id on errors and responses; tests may log it.
        response.headers["x-request-id"] = f"req_fake{next(self._ids)}"
        # Recorded here rather than after the handler: a stream still open has a status too.
        if ENTRY in request:
            request[ENTRY]["status"] = response.status

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body, parsed = _parse(await request.read())
        request[ENTRY] = {
            "body": body,
            "headers": dict(request.headers),
            "at": time.monotonic(),
            "status": None,
        }
        self.requests.append(request[ENTRY])
        return await self._answer(request, body, parsed)

    async def _answer(self, request: web.Request, body: Any, parsed: bool) -> web.StreamResponse:
        rejection = self._reject(request, body, parsed)
        if rejection is not None:
            return rejection
        script = self._script_for(body)
        if script.status != 200:
            return _failure(script, body["model"])
        if body.get("stream") is True:
            return await self._stream(request, script, body)
        return await self._whole(request, script, body)

    def _reject(self, request: web.Request, body: Any, parsed: bool) -> web.Response | None:
        """The 401/400 OpenAI would give this request, or None when it is acceptable."""
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, _key_message(request), "invalid_request_error", "invalid_api_key")
        if not parsed:
            return _error(400, NOT_JSON, "invalid_request_error")
        problem = validate(body)
        if problem is not None:
            message, param, code = problem
            return _error(400, message, "invalid_request_error", code, param)
        return None

    async def _whole(
        self, request: web.Request, script: Script, body: dict[str, Any]
    ) -> web.StreamResponse:
        """A non-streamed answer, after as long as the stream would have taken."""
        await asyncio.sleep(script.first_delay + script.interval * max(len(script.chunks) - 1, 0))
        if script.stall_after is not None:
            await self._stall(request, script.stall_seconds)
        if script.drop_after is not None and request.transport is not None:
            request.transport.abort()
        if script.error_after is not None:
            return _error(500, SERVER_ERROR, "server_error")
        return web.json_response(
            {
                "id": f"chatcmpl-fake{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "".join(script.chunks),
                            "refusal": None,
                        },
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage(script, body),
            }
        )

    async def _stream(
        self, request: web.Request, script: Script, body: dict[str, Any]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        sse = _Events(response, f"chatcmpl-fake{next(self._ids)}", body)
        self.active_streams += 1
        try:
            await self._play(request, script, sse)
        except ConnectionResetError:
            pass  # the client went away mid-stream: nothing left to tell it
        finally:
            self.active_streams -= 1
        return response

    async def _play(self, request: web.Request, script: Script, sse: _Events) -> None:
        await sse.send(sse.chunk({"role": "assistant", "content": ""}))
        self.role_times.append(time.monotonic())
        await asyncio.sleep(script.first_delay)
        for index in range(len(script.chunks) + 1):
            if await self._interrupt(request, script, index, sse):
                return
            if index == len(script.chunks):
                break
            if script.hold is not None and index == script.hold_after:
                await self._held(request, script.hold)
            if index:
                await asyncio.sleep(script.interval)
            await sse.send(sse.chunk({"content": script.chunks[index]}))
            self.chunk_times.append((script.chunks[index], time.monotonic()))
        await sse.send(sse.chunk({}, "stop"))
        if sse.include_usage:
            await sse.send(sse.envelope(choices=[], usage=usage(script, sse.body)))
        await sse.done()

    async def _interrupt(
        self, request: web.Request, script: Script, index: int, sse: _Events
    ) -> bool:
        """Act out the script's failure due after `index` content chunks; True ends the stream."""
        if script.error_after == index:
            error = {"message": SERVER_ERROR, "type": "server_error", "param": None, "code": None}
            await sse.send({"error": error})
            return True
        if script.stall_after == index:
            await self._stall(request, script.stall_seconds)
            return True
        if script.drop_after == index:
            # abort() closes without flushing or a chunked terminator: the client sees a
            # connection cut mid-body. (Not an RST, which could discard chunks already sent.)
            if request.transport is not None:
                request.transport.abort()
            return True
        return False

    async def _held(self, request: web.Request, hold: asyncio.Event) -> None:
        while not hold.is_set() and not self._stopping and request.transport is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hold.wait(), STALL_POLL)

    async def _stall(self, request: web.Request, seconds: float) -> None:
        """Send nothing until the client disconnects, `seconds` pass or the server stops."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline and not self._stopping:
            # Polled: aiohttp tells no one but itself of a lost peer (its transport goes None).
            if request.transport is None:
                return
            await asyncio.sleep(STALL_POLL)


class _Events:
    """Writes one completion's SSE chunks, each flushed to the socket as it is sent."""

    def __init__(self, response: web.StreamResponse, ident: str, body: dict[str, Any]) -> None:
        self.response = response
        self.body = body
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self._base = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
        }

    def envelope(self, **fields: Any) -> dict[str, Any]:
        return {**self._base, **fields}

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        # With include_usage OpenAI puts `"usage": null` on every chunk but the last.
        extra = {"usage": None} if self.include_usage else {}
        return self.envelope(choices=[choice], **extra)

    async def send(self, payload: dict[str, Any]) -> None:
        await self.response.write(f"data: {json.dumps(payload)}\n\n".encode())

    async def done(self) -> None:
        await self.response.write(b"data: [DONE]\n\n")


def default_script(body: dict[str, Any]) -> Script:
    """'Summary: ' plus the start of the last user message, one word per chunk."""
    users = [m for m in body["messages"] if m.get("role") == "user"]
    last = message_text(users[-1].get("content")) if users else ""
    words = ["Summary:", *last[:40].split()]
    return Script(chunks=[words[0], *(f" {w}" for w in words[1:])])


def message_text(content: Any) -> str:
    """The text of a message's content, whether a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def usage(script: Script, body: dict[str, Any]) -> dict[str, int]:
    text = " ".join(message_text(m.get("content")) for m in body["messages"])
    prompt = script.prompt_tokens if script.prompt_tokens is not None else len(text) // 4 + 1
    completion = script.completion_tokens
    if completion is None:
        completion = len(script.chunks)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


NOT_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)"
)
Problem = tuple[str, str | None, str | None]  # message, param, code


def _parse(raw: bytes) -> tuple[Any, bool]:
    try:
        return json.loads(raw), True
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, False


def validate(body: Any) -> Problem | None:
    """OpenAI's 400 for this body (message, param, code), or None when it is valid."""
    if not isinstance(body, dict):
        return (
            f"Invalid type for body: expected an object, but got {_kind(body)} instead.",
            None,
            "invalid_type",
        )
    for name in body:
        if name not in KNOWN_FIELDS:
            return f"Unrecognized request argument supplied: {name}", None, None
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter", None, None
    problem = _validate_messages(body.get("messages"))
    if (
        problem is None
        and body.get("stream_options") is not None
        and body.get("stream") is not True
    ):
        message = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        return message, "stream_options", None
    return problem


def _validate_messages(messages: Any) -> Problem | None:
    if messages is None:
        return "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
    if not isinstance(messages, list):
        return _wrong_type("messages", "an array of objects", messages)
    if not messages:
        message = "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."
        return message, "messages", "empty_array"
    for index, item in enumerate(messages):
        problem = _validate_message(f"messages[{index}]", item)
        if problem is not None:
            return problem
    return None


def _validate_message(where: str, item: Any) -> Problem | None:
    if not isinstance(item, dict):
        return _wrong_type(where, "an object", item)
    role = item.get("role")
    if role not in ROLES:
        supported = ", ".join(f"'{r}'" for r in ROLES)
        return (
            f"Invalid value: {role!r}. Supported values are: {supported}.",
            f"{where}.role",
            "invalid_value",
        )
    content = item.get("content")
    # An assistant turn that only calls tools carries no content; every other turn must.
    if content is None and role == "assistant" and item.get("tool_calls"):
        return None
    if content is None:
        return (
            f"Missing required parameter: '{where}.content'.",
            f"{where}.content",
            "missing_required_parameter",
        )
    if not isinstance(content, str | list):
        return _wrong_type(f"{where}.content", "one of a string or array of objects", content)
    return None


def _wrong_type(param: str, expected: str, value: Any) -> Problem:
    message = f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead."
    return message, param, "invalid_type"


def _kind(value: Any) -> str:
    """A JSON value's type the way OpenAI's error messages name it."""
    if value is None:
        return "null"
    for kind, name in (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a decimal"),
        (str, "a string"),
        (list, "an array"),
        (dict, "an object"),
    ):
        if isinstance(value, kind):
            return name
    return "an unknown type"


def _key_message(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return (
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    key = header.removeprefix("Bearer ")
    return (
        f"Incorrect API key provided: {key[:3]}***{key[-4:]}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )


def _error(
    status: int, message: str, kind: str, code: str | None = None, param: str | None = None
) -> web.Response:
    error = {"message": message, "type": kind, "param": param, "code": code}
    return web.json_response({"error": error}, status=status)


def _failure(script: Script, model: str) -> web.Response:
    """The scripted non-200 answer: a JSON error body, never a stream."""
    if script.status != 429:
        message = STATUS_MESSAGES.get(script.status, SERVER_ERROR)
        return _error(script.status, message, "server_error")
    message = (
        f"Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again later."
    )
    response = _error(429, message, "requests", "rate_limit_exceeded")
    if script.retry_after is not None:
        response.headers["retry-after"] = f"{script.retry_after:g}"
        response.headers["x-ratelimit-reset-requests"] = _duration(script.retry_after)
    return response


def _duration(seconds: float) -> str:
    """OpenAI's reset-header style: '20s', '1.5s', '500ms'."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"

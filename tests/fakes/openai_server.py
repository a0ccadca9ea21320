"""An OpenAI-compatible Chat Completions server for tests: streams, stalls, fails on cue."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.web import serve

KNOWN_FIELDS = {
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
}
ROLES = {"system", "user", "assistant", "developer", "tool"}


@dataclass
class Script:
    """How the server answers one request."""

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


@dataclass
class FakeOpenAI:
    api_key: str = "sk-test"
    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    responder: Callable[[dict[str, Any]], Script] | None = None
    chunk_times: list[tuple[str, float]] = field(default_factory=list)
    active_streams: int = 0
    _queue: list[Script] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        self._runner, port = await serve(app)
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def enqueue(self, *scripts: Script) -> None:
        self._queue.extend(scripts)

    def _script_for(self, body: dict[str, Any]) -> Script:
        if self._queue:
            return self._queue.pop(0)
        if self.responder is not None:
            return self.responder(body)
        last = str(body["messages"][-1].get("content", ""))
        return Script(chunks=[f"{w} " for w in ("Summary:", *last[:40].split())])

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
        problem = _validate(body)
        if problem:
            return _error(400, problem, "invalid_request_error")
        self.requests.append(
            {"body": body, "headers": dict(request.headers), "at": time.monotonic()}
        )
        script = self._script_for(body)
        if script.status != 200:
            return _failure(script, body)
        if not body.get("stream"):
            return web.json_response(self._whole(script, body))
        return await self._stream(request, script, body)

    def _usage(self, script: Script, body: dict[str, Any]) -> dict[str, int]:
        text = " ".join(str(m.get("content", "")) for m in body["messages"])
        prompt = script.prompt_tokens if script.prompt_tokens is not None else len(text) // 4 + 1
        completion = (
            script.completion_tokens if script.completion_tokens is not None else len(script.chunks)
        )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _whole(self, script: Script, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(script.chunks)},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": self._usage(script, body),
        }

    async def _stream(
        self, request: web.Request, script: Script, body: dict[str, Any]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
        }

        async def send(payload: dict[str, Any]) -> None:
            await response.write(f"data: {json.dumps(payload)}\n\n".encode())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            out = dict(
                base,
                choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            )
            if usage:
                out["usage"] = None
            return out

        self.active_streams += 1
        try:
            await send(chunk({"role": "assistant", "content": ""}))
            await asyncio.sleep(script.first_delay)
            for index, piece in enumerate(script.chunks):
                if await self._interrupt(request, response, script, index, send):
                    return response
                if index:
                    await asyncio.sleep(script.interval)
                await send(chunk({"content": piece}))
                self.chunk_times.append((piece, time.monotonic()))
            await send(chunk({}, "stop"))
            if usage:
                await send(dict(base, choices=[], usage=self._usage(script, body)))
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        finally:
            self.active_streams -= 1
        return response

    async def _interrupt(
        self,
        request: web.Request,
        response: web.StreamResponse,
        script: Script,
        index: int,
        send: Callable[[dict[str, Any]], Any],
    ) -> bool:
        """Act out a failure at chunk `index`; True when the stream must end here."""
        if script.error_after == index:
            await send(
                {
                    "error": {
                        "message": "The server had an error while processing your request.",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
            )
            return True
        if script.stall_after == index:
            await asyncio.sleep(script.stall_seconds)
            return True
        if script.drop_after == index and request.transport is not None:
            request.transport.abort()
            return True
        return False


def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    for name in body:
        if name not in KNOWN_FIELDS:
            return f"Unrecognized request argument supplied: {name}"
    if not body.get("model"):
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return "Invalid value for 'messages[].role'"
        if not isinstance(message.get("content"), str | list):
            return "Invalid type for 'messages[].content'"
    if "stream_options" in body and body.get("stream") is not True:
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    return None


def _error(status: int, message: str, kind: str, code: str | None = None) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}, status=status
    )


def _failure(script: Script, body: dict[str, Any]) -> web.Response:
    if script.status == 429:
        response = _error(
            429,
            f"Rate limit reached for {body['model']} on requests per min.",
            "requests",
            "rate_limit_exceeded",
        )
        if script.retry_after is not None:
            response.headers["retry-after"] = str(script.retry_after)
            response.headers["x-ratelimit-reset-requests"] = f"{script.retry_after}s"
        return response
    return _error(
        script.status, "The server had an error while processing your request.", "server_error"
    )

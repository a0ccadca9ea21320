"""The OpenAI fake, checked through the real AsyncOpenAI client so its wire format is right."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx2
import openai
import pytest
from openai import AsyncOpenAI

from tests.fakes.openai_server import FakeOpenAI, Script
from tests.waiting import until

MODEL = "gpt-4o-mini"
MESSAGES: list[Any] = [
    {"role": "system", "content": "Summarise the page."},
    {"role": "user", "content": "The quick brown fox jumps over the lazy dog, twice."},
]


@pytest.fixture
async def client(llm: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    # A short timeout: a fake that hangs must fail the test, not the suite's 120 s limit.
    sdk = AsyncOpenAI(base_url=llm.base_url, api_key="sk-test", max_retries=0, timeout=5)
    yield sdk
    await sdk.close()


async def open_stream(client: AsyncOpenAI) -> openai.AsyncStream[Any]:
    return await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )


async def read_pieces(stream: openai.AsyncStream[Any], pieces: list[str]) -> None:
    """Append content pieces as they arrive, so a test sees them even if iteration fails."""
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)


async def test_stream_has_openais_shape(llm: FakeOpenAI, client: AsyncOpenAI) -> None:
    llm.enqueue(Script(chunks=["Hel", "lo", " world"]))
    chunks = [chunk async for chunk in await open_stream(client)]

    first, *content, finish, last = chunks
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    assert [c.choices[0].delta.content for c in content] == ["Hel", "lo", " world"]
    assert finish.choices[0].finish_reason == "stop" and finish.choices[0].delta.content is None
    assert all(c.usage is None for c in chunks[:-1])
    assert last.choices == []
    prompt = len(" ".join(m["content"] for m in MESSAGES)) // 4 + 1
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (prompt, 3)
    assert last.usage.total_tokens == prompt + 3
    assert {c.id for c in chunks} == {first.id} and first.id.startswith("chatcmpl-")
    assert {c.model for c in chunks} == {MODEL}
    assert [piece for piece, _ in llm.chunk_times] == ["Hel", "lo", " world"]
    request = llm.requests[-1]
    assert request["body"]["model"] == MODEL and request["status"] == 200
    assert request["headers"]["Authorization"] == "Bearer sk-test"


async def test_token_counts_can_be_scripted(llm: FakeOpenAI, client: AsyncOpenAI) -> None:
    llm.enqueue(Script(chunks=["a", "b"], prompt_tokens=1234, completion_tokens=56))
    chunks = [chunk async for chunk in await open_stream(client)]
    assert chunks[-1].usage.prompt_tokens == 1234
    assert chunks[-1].usage.completion_tokens == 56


async def test_interval_and_first_delay_are_real(llm: FakeOpenAI, client: AsyncOpenAI) -> None:
    llm.enqueue(Script(chunks=["a", "b", "c", "d", "e"], interval=0.1, first_delay=0.2))
    arrivals: list[float] = []
    stream = await open_stream(client)
    async for _ in stream:
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            assert llm.active_streams == 1  # the fake is still in its first_delay

    # The client got the role chunk and all five pieces, in order.
    assert len(arrivals) >= 6 and arrivals == sorted(arrivals)
    # The waits are measured where they are made, at the fake's writes: on a loaded
    # machine the client may read the role chunk late and the first piece right after it.
    written = [at for _, at in llm.chunk_times]
    assert [piece for piece, _ in llm.chunk_times] == ["a", "b", "c", "d", "e"]
    assert written[0] - llm.role_times[0] >= 0.8 * 0.2  # loose: the fake waits at all
    assert all(later - earlier >= 0.8 * 0.1 for earlier, later in itertools.pairwise(written))
    await until(lambda: llm.active_streams == 0, 2.0, poll=0.02)


async def test_non_streaming_completion(llm: FakeOpenAI, client: AsyncOpenAI) -> None:
    llm.enqueue(Script(chunks=["One ", "two."], prompt_tokens=10))
    completion = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.object == "chat.completion" and completion.model == MODEL
    assert completion.choices[0].message.content == "One two."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 12


async def test_queue_then_responder_then_default(llm: FakeOpenAI, client: AsyncOpenAI) -> None:
    async def ask(text: str) -> str | None:
        messages: list[Any] = [{"role": "user", "content": text}]
        done = await client.chat.completions.create(model=MODEL, messages=messages)
        return done.choices[0].message.content

    assert await ask("The cat sat on the mat and then went to sleep for hours") == (
        "Summary: The cat sat on the mat and then went to"
    )
    llm.enqueue(Script(chunks=["queued"]))
    llm.responder = lambda body: Script(chunks=["echo: ", body["messages"][-1]["content"]])
    assert await ask("hi") == "queued"
    assert await ask("hi") == "echo: hi"


async def test_rate_limit(llm: FakeOpenAI, client: AsyncOpenAI) -> None:
    llm.enqueue(Script(chunks=["x"], status=429, retry_after=20))
    with pytest.raises(openai.RateLimitError) as caught:
        await open_stream(client)
    assert caught.value.response.headers["retry-after"] == "20"
    assert caught.value.response.headers["x-ratelimit-reset-requests"] == "20s"
    assert caught.value.code == "rate_limit_exceeded"
    assert f"Rate limit reached for {MODEL}" in caught.value.message
    assert caught.value.request_id is not None


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors(llm: FakeOpenAI, client: AsyncOpenAI, status: int) -> None:
    llm.enqueue(Script(chunks=["x"], status=status))
    with pytest.raises(openai.InternalServerError) as caught:
        await open_stream(client)
    assert caught.value.status_code == status
    assert llm.requests[-1]["status"] == status


async def test_error_event_mid_stream(llm: FakeOpenAI, client: AsyncOpenAI) -> None:
    llm.enqueue(Script(chunks=["a", "b", "c", "d"], error_after=2))
    pieces: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        await read_pieces(await open_stream(client), pieces)
    # The SDK raises the base APIError itself (not a status or connection subclass).
    assert type(caught.value) is openai.APIError
    assert pieces == ["a", "b"]
    assert caught.value.body == {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }


async def test_stall_keeps_silent_until_client_leaves(llm: FakeOpenAI, client: AsyncOpenAI) -> None:
    llm.enqueue(Script(chunks=["a", "b", "c"], stall_after=1))
    stream = await open_stream(client)
    chunks = stream.__aiter__()
    assert (await chunks.__anext__()).choices[0].delta.role == "assistant"
    assert (await chunks.__anext__()).choices[0].delta.content == "a"
    # Not `wait_for`: its timeout cancels the read, and httpx then closes the connection,
    # which the fake may notice before the check below (a fresh clone saw 0 streams).
    reading = asyncio.ensure_future(chunks.__anext__())
    done, _ = await asyncio.wait({reading}, timeout=0.5)
    assert not done  # silent for half a second
    assert llm.active_streams == 1  # and the stream still open
    reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)
    await stream.close()
    await until(lambda: llm.active_streams == 0, 2.0, poll=0.02)


async def test_drop_cuts_the_connection(llm: FakeOpenAI, client: AsyncOpenAI) -> None:
    llm.enqueue(Script(chunks=["a", "b", "c"], drop_after=2))
    pieces: list[str] = []
    with pytest.raises(openai.APIConnectionError) as caught:
        await read_pieces(await open_stream(client), pieces)
    # The SDK wraps the transport error; the cause is httpx2's incomplete-body error.
    assert type(caught.value) is openai.APIConnectionError
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)
    assert pieces == ["a", "b"]
    await until(lambda: llm.active_streams == 0, 2.0, poll=0.02)


@pytest.mark.parametrize("key", ["sk-wrong", ""])
async def test_wrong_or_missing_key(llm: FakeOpenAI, key: str) -> None:
    sdk = AsyncOpenAI(base_url=llm.base_url, api_key=key or "unused", max_retries=0, timeout=5)
    headers = {} if key else {"Authorization": ""}
    try:
        with pytest.raises(openai.AuthenticationError) as caught:
            await sdk.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=headers)
    finally:
        await sdk.close()
    assert caught.value.code == "invalid_api_key"


async def test_unknown_field_is_rejected(llm: FakeOpenAI, client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_body={"bogus": 1}
        )
    assert caught.value.message.endswith("Unrecognized request argument supplied: bogus")
    assert llm.requests[-1]["status"] == 400


BAD_BODIES = [
    ("{not json", "We could not parse the JSON body"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "you must provide a model parameter"),
    ('{"model": "m"}', "Missing required parameter: 'messages'."),
    ('{"model": "m", "messages": []}', "Invalid 'messages': empty array."),
    ('{"model": "m", "messages": "hi"}', "Invalid type for 'messages'"),
    ('{"model": "m", "messages": [{"role": "bot", "content": "hi"}]}', "Invalid value: 'bot'."),
    ('{"model": "m", "messages": [{"role": "user", "content": 5}]}', "'messages[0].content'"),
    ('{"model": "m", "messages": [{"role": "user"}]}', "Missing required parameter"),
    (
        '{"model": "m", "messages": [{"role": "user", "content": "hi"}], '
        '"stream_options": {"include_usage": true}}',
        "only allowed when 'stream' is enabled",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD_BODIES)
async def test_invalid_requests_get_400(llm: FakeOpenAI, raw: str, message: str) -> None:
    headers = {"Authorization": "Bearer sk-test", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{llm.base_url}/chat/completions", data=raw, headers=headers) as response,
    ):
        body = await response.json()
    assert response.status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert message in body["error"]["message"]

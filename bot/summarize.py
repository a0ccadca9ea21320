"""Page summaries from an OpenAI-compatible model, streamed as they are written.

The `openai` package (~45 MB resident with its types) is imported at the first request,
not at start: a bot that has not summarised anything yet does not hold it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openai import AsyncOpenAI, AsyncStream
    from openai.types.chat import (
        ChatCompletionChunk,
        ChatCompletionMessageParam,
        ChatCompletionSystemMessageParam,
        ChatCompletionUserMessageParam,
    )

from bot.tls import tls_context
from storage.errors import LinksnapError

log = logging.getLogger(__name__)

MAX_PAGE_CHARS = 12_000  # well inside any current model's context, and cheap
TAG_PAGE_CHARS = 3_000  # enough to tell what a page is about


@dataclass
class PageText:
    title: str | None
    description: str | None
    text: str
    url: str


@dataclass
class Usage:
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class SummaryError(LinksnapError):
    """The stream ended early; `reason` is a stable code the user text is keyed by."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def build_messages(page: PageText, instruction: str) -> list[ChatCompletionMessageParam]:
    """System instruction plus the page as clearly delimited, untrusted material."""
    body = (page.text or "")[:MAX_PAGE_CHARS]
    quoted = (
        f"<page>\n<url>{page.url}</url>\n<title>{page.title or ''}</title>\n"
        f"<description>{page.description or ''}</description>\n<text>\n{body}\n</text>\n</page>"
    )
    system: ChatCompletionSystemMessageParam = {"role": "system", "content": instruction}
    user: ChatCompletionUserMessageParam = {"role": "user", "content": quoted}
    return [system, user]


class Summarizer:
    """One AsyncOpenAI client for the process."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        model: str = "gpt-4o-mini",
        first_token_timeout: float = 20,
        stall_timeout: float = 20,
    ) -> None:
        self.model = model
        self._first_timeout = first_token_timeout
        self._stall_timeout = stall_timeout
        self._api_key = api_key
        self._base_url = base_url
        self._made: AsyncOpenAI | None = None

    @property
    def _client(self) -> AsyncOpenAI:
        """The client, made (and `openai` imported) at the first request."""
        if self._made is None:
            import openai

            # Retries are the scheduler's job: a retry here would hold the reply back.
            self._made = openai.AsyncOpenAI(
                api_key=self._api_key,
                base_url=self._base_url,
                max_retries=0,
                timeout=openai.Timeout(120, connect=10),
                http_client=openai.DefaultAsyncHttpxClient(verify=tls_context()),
            )
        return self._made

    async def close(self) -> None:
        if self._made is not None:
            await self._made.close()

    def stream(self, page: PageText, instruction: str) -> SummaryStream:
        return SummaryStream(self, build_messages(page, instruction))

    async def propose_tags_counted(self, page: PageText, instruction: str) -> tuple[str, Usage]:
        """The tag answer and the tokens it cost (kept for /stats).

        Raises openai.APIError (or a timeout) like any request; callers treat tags as
        optional.
        """
        messages = build_messages(
            PageText(page.title, page.description, (page.text or "")[:TAG_PAGE_CHARS], page.url),
            instruction,
        )
        reply = await self._client.chat.completions.create(
            model=self.model, messages=messages, temperature=0.2, max_tokens=40
        )
        usage = Usage(reply.model or self.model)
        if reply.usage is not None:
            usage.prompt_tokens = reply.usage.prompt_tokens
            usage.completion_tokens = reply.usage.completion_tokens
        answer = (reply.choices[0].message.content or "") if reply.choices else ""
        return answer, usage

    async def _open(
        self, messages: list[ChatCompletionMessageParam]
    ) -> AsyncStream[ChatCompletionChunk]:
        return await self._client.chat.completions.create(
            model=self.model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            temperature=0.3,
        )


class SummaryStream:
    """Async iterator of text pieces; `usage` is set once the stream has ended."""

    def __init__(self, owner: Summarizer, messages: list[ChatCompletionMessageParam]) -> None:
        self._owner = owner
        self._messages = messages
        self.usage = Usage(model=owner.model)
        self.text = ""

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[str]:
        import openai

        owner = self._owner
        try:
            stream = await asyncio.wait_for(owner._open(self._messages), owner._first_timeout)
        except TimeoutError:
            raise SummaryError("no_first_token") from None
        except openai.APIError as exc:
            raise _classify(exc) from None
        try:
            async for piece in self._read(stream):
                self.text += piece
                yield piece
        finally:
            await stream.close()

    async def _read(self, stream: AsyncStream[ChatCompletionChunk]) -> AsyncIterator[str]:
        import openai

        chunks = stream.__aiter__()
        got_text = False
        while True:
            limit = self._owner._stall_timeout if got_text else self._owner._first_timeout
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), limit)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise SummaryError("stalled" if got_text else "no_first_token") from None
            except openai.RateLimitError as exc:
                raise _classify(exc) from None
            except Exception as exc:  # the SDK's transport errors are not all APIError
                if not got_text:
                    raise _classify(exc) from None
                raise SummaryError("stream_error", str(exc)[:200]) from None
            if chunk.usage is not None:
                self.usage.prompt_tokens = chunk.usage.prompt_tokens
                self.usage.completion_tokens = chunk.usage.completion_tokens
            if chunk.model:
                self.usage.model = chunk.model
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    got_text = True
                    yield choice.delta.content


def _classify(exc: Exception) -> SummaryError:
    import openai

    if isinstance(exc, openai.RateLimitError):
        return SummaryError("rate_limited", str(exc)[:200])
    if isinstance(exc, openai.APIConnectionError):
        return SummaryError("connection", str(exc)[:200])
    if isinstance(exc, openai.APIStatusError):
        return SummaryError("server_error", f"HTTP {exc.status_code}")
    return SummaryError("stream_error", str(exc)[:200])

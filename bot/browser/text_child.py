"""The process that reads pages' main text (trafilatura), started by bot/browser/text_reader.py.

Run as a script, on its own: it imports nothing of the bot, so it starts in a fraction
of a second and holds only trafilatura (~25 MiB). It lowers its own priority, so a burst's
pages render first and the text is read with the CPU they leave. Frames on stdin and
stdout: a 4-byte big-endian length, then JSON. In: {"html", "url"}; out: trafilatura's
text and metadata fields, or {"error"} when it failed on the page. It ends at the end of
its input (the bot closed it, or died).
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
from typing import Any, BinaryIO

NICE = 19  # below the browser and the bot's own loop, which relays the pages' traffic
# What an answer holds (bot/browser/text_reader.py's PageText), from trafilatura's names.
FIELDS = {
    "text": "text",
    "title": "title",
    "description": "description",
    "site_name": "sitename",
    "lang": "language",
}
LENGTH = struct.Struct(">I")  # a frame's length, before its JSON (the reader's too)


def extract(html: str, url: str | None) -> dict[str, Any]:
    import trafilatura
    from trafilatura.settings import set_date_params

    try:
        doc = trafilatura.bare_extraction(
            html,
            url=url,
            with_metadata=True,
            include_comments=False,
            favor_precision=True,
            # The bot keeps no date. Searched for extensively, a date written out in words
            # sends htmldate to dateparser, which loads every language it knows on the
            # child's first such page: 2-5 s of CPU and ~47 MiB, the burst's 30 real
            # pages' text otherwise the same (docs/BENCHMARKS.md).
            date_extraction_params=set_date_params(extensive=False),
        )
    except Exception as exc:  # hostile markup: the screenshot still stands
        return {"error": type(exc).__name__}
    if doc is None:
        return {}
    data = doc if isinstance(doc, dict) else doc.as_dict()
    return {ours: data.get(theirs) for ours, theirs in FIELDS.items()}


def read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(LENGTH.size)
    if len(head) < LENGTH.size:
        return None
    (length,) = LENGTH.unpack(head)
    body = stream.read(length)
    return body if len(body) == length else None


def frame(body: bytes) -> bytes:
    return LENGTH.pack(len(body)) + body


def write_frame(stream: BinaryIO, body: bytes) -> None:
    stream.write(frame(body))
    stream.flush()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the bot's to handle
    os.nice(NICE)
    # The answers get their own copy of stdout; anything printed goes to stderr.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    while (frame := read_frame(requests)) is not None:
        request = json.loads(frame)
        answer = extract(request["html"], request.get("url"))
        write_frame(answers, json.dumps(answer).encode())


if __name__ == "__main__":
    main()

"""Search terms for `/find` words: lower-case words, and bigrams for CJK runs.

MongoDB's text index does not segment Chinese and FerretDB has none, so terms are
computed here and matched with a plain multikey index on `terms`.
"""

from __future__ import annotations

import re

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+", re.UNICODE)
_IS_CJK = re.compile(rf"[{_CJK}]")
MAX_TERMS = 2000


def tokenize(text: str) -> list[str]:
    """Words case-folded; CJK runs as overlapping bigrams (a lone character stays)."""
    out: list[str] = []
    for run in _TOKEN.findall(text.casefold()):
        if _IS_CJK.match(run):
            out.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        elif len(run) > 1 or run.isdigit():
            out.append(run)
    return out


def terms_for(*texts: str | None) -> list[str]:
    """Distinct terms of all texts, in first-seen order, capped."""
    seen: dict[str, None] = {}
    for text in texts:
        for term in tokenize(text or ""):
            seen.setdefault(term, None)
            if len(seen) >= MAX_TERMS:
                return list(seen)
    return list(seen)

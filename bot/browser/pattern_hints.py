"""Text that every URL a consent rule's pattern matches contains: with none of it in a
document's URL, the pattern's regular expression need not be compiled there
(bot/browser/consent.py SELECT_JS: ~600 patterns took 5-10 ms a document).

The patterns are written for JavaScript (no flags); they are read here through Python's
own parse of them. Where the two read a pattern differently, Python either fails to
parse it, or sees a quantifier, class or anchor where JavaScript sees plain text — which
only shortens the text claimed — or reads an escape as one character where JavaScript
reads the letter itself: such patterns get no hints (_READ_OTHERWISE).
"""

from __future__ import annotations

import re
from typing import Any

MIN_HINT = 5  # characters beyond a scheme and `www.`: shorter text is in too many URLs
# What Python reads as a character that JavaScript (no `u` flag) reads as other text: an
# escaped letter other than the escapes both read alike (`\a`, `\N{...}`, `\U...` are
# the letter itself in JavaScript), or a character beyond U+FFFF (two code units there).
_READ_OTHERWISE = re.compile(r"\\[^dDwWsSbBfnrtvxu\W\d_]|[\U00010000-\U0010FFFF]")


def url_hints(pattern: str) -> list[str] | None:
    """Text that every string `pattern` matches contains, one of them at least (a URL
    with none of them cannot match: its regex need not run); None when that cannot be
    told. Read from Python's parse of the pattern: the rules' patterns are written for
    JavaScript, and one Python reads otherwise fails to parse or is given none (a case-
    folding flag, a group repeated)."""
    if _READ_OTHERWISE.search(pattern):
        return None
    try:
        parsed = re._parser.parse(pattern)  # type: ignore[attr-defined]
    except Exception:  # not Python's syntax (or not this Python's parser): no hints
        return None
    if parsed.state.flags & (re.IGNORECASE | re.VERBOSE):
        return None
    return _required(list(parsed))


def _required(nodes: list[Any]) -> list[str] | None:
    """`url_hints` of a sequence of parsed nodes: its longest run of literal characters,
    or, better when its shortest is longer, one hint of each branch of an alternation."""
    best: list[str] | None = None
    run = ""

    def consider(found: list[str] | None) -> None:
        nonlocal best
        worth = min(map(_worth, found)) if found else 0
        if worth >= MIN_HINT and (best is None or worth > min(map(_worth, best))):
            best = found

    for op, arg in _inline(nodes):
        if op is _LITERAL:
            run += chr(arg)
            continue
        consider([run])
        run = ""
        if op is _BRANCH:
            branches = [_required(list(branch)) for branch in arg[1]]
            if all(b is not None for b in branches):
                consider([h for b in branches if b is not None for h in b])
    consider([run])
    return best


def _worth(hint: str) -> int:
    """How much a hint tells: not its scheme or `www.`, which most URLs have."""
    for common in ("https://", "http://", "www."):
        hint = hint.replace(common, "")
    return len(hint)


def _inline(nodes: list[Any]) -> list[Any]:
    """A group that is neither repeated nor flagged matches in place: its nodes, inline."""
    out = []
    for op, arg in nodes:
        if op is _SUBPATTERN and not arg[1] and not arg[2]:
            out += _inline(list(arg[3]))
        else:
            out.append((op, arg))
    return out


_LITERAL = re._constants.LITERAL  # type: ignore[attr-defined]
_BRANCH = re._constants.BRANCH  # type: ignore[attr-defined]
_SUBPATTERN = re._constants.SUBPATTERN  # type: ignore[attr-defined]

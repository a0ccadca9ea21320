"""Consent and cookie banners: hidden from the first paint, then dismissed by opting out.

The rules are DuckDuckGo's autoconsent (npm `@duckduckgo/autoconsent`), the library
DuckDuckGo's browsers use: JSON rules per consent platform plus coded ones (OneTrust,
Cookiebot, ...), a bundle made for Playwright injection, and "prehide" selectors for
the known platforms' banners. Bundle and rules are read from the installed package at
start, so newer rules are `npm update` in tools/autoconsent (or CONSENT_RULES_DIR
pointing at another copy), not a code change.

Running the library in every page costs ~50-120 ms a capture (measured: its rules are
decoded and matched in every document), more than the link->photo target allows, and
most pages have no banner. So it runs in two steps:

1. Every document gets a tiny init script: one style element with the library's own
   prehide selectors (read from the library itself, once per process and rule set),
   so a known platform's banner is invisible from the first paint.
2. Before a shot, if an element matching those selectors is in the page, or a
   site-specific rule matches its URL, the library is injected into every frame with
   our configuration (opt out, no heuristics) and the shot waits, bounded by
   CONSENT_WAIT, while it finds the banner and opts out through the platform's own
   buttons or API. Lifecycle reports come back through one binding.

The library runs in the page's main world, so the page can see and call it; all it can
do with that is end or delay its own banner handling, which the capture bounds anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Frame, Page
from playwright.async_api import Error as PlaywrightError

from bot.browser.pattern_hints import url_hints
from storage.errors import LinksnapError

log = logging.getLogger(__name__)

DEFAULT_RULES_DIR = (
    Path(__file__).resolve().parents[2]
    / "tools"
    / "autoconsent"
    / "node_modules"
    / "@duckduckgo"
    / "autoconsent"
)
BUNDLE = Path("dist") / "autoconsent.playwright.js"
RULES = Path("rules") / "compact-rules.json"
BINDING = "__linksnapConsent"
STYLE_ID = "linksnap-prehide"  # also in _KNOWN_BANNER_JS
# Lifecycle states in which the library is acting on a banner it found.
BUSY = frozenset({"cmpDetected", "openPopupDetected", "runningOptOut", "runningOptIn"})
# States in which a frame's library has not found a banner yet (detection starts when
# the page is idle, then looks again every 500 ms).
LOOKING = frozenset({"loading", "initialized", "waitingForInitResponse", "started"})
# A page can call the binding itself; past this many messages it is ignored.
MAX_MESSAGES = 2_000
_EVAL_TIMEOUT = 3.0


class ConsentRulesMissing(LinksnapError, RuntimeError):
    """The autoconsent package is not where the settings say (see scripts/setup.sh)."""


# The library's own defaults, except: act at once (opt out), run eval snippets in place
# (it is injected into the main world), no heuristic clicking of unknown buttons, and
# no console output.
def _config(prehide_ms: int) -> dict[str, Any]:
    return {
        "enabled": True,
        "autoAction": "optOut",
        "disabledCmps": [],
        "enablePrehide": True,
        "prehideTimeout": prehide_ms,
        "enableCosmeticRules": True,
        "enableGeneratedRules": True,
        "enableHeuristicDetection": False,
        "heuristicMode": "off",
        "detectRetries": 20,
        "isMainWorld": True,
        "visualTest": False,
        "logs": {
            "lifecycle": False,
            "rulesteps": False,
            "detectionsteps": False,
            "evals": False,
            "errors": False,
            "messages": False,
            "waits": False,
        },
    }


# Runs before the bundle: the bundle's content script calls `autoconsentSendMessage`
# (captured at construction, so a page replacing it later changes nothing) and asks
# for its configuration with an `init` message, answered here without a round trip,
# with the rules SELECT_JS picks for the document.
_SHIM = """(() => {
  if (window.autoconsentReceiveMessage) return;
  const report = window.%(binding)s;
  const config = %(config)s;
  const all = JSON.parse(%(rules)s);
  const compact = (%(select)s)(all, JSON.parse(%(hints)s), location.href, window.top === window);
  let last = null;
  const forward = (message) => { try { report && report(message); } catch (e) {} };
  window.autoconsentSendMessage = (msg) => {
    if (msg.type === "init") {
      Promise.resolve().then(() => window.autoconsentReceiveMessage(
        { type: "initResp", config, rules: { autoconsent: [], compact } }));
    } else if (msg.type === "report") {
      if (msg.state && msg.state.lifecycle !== last) {
        last = msg.state.lifecycle;
        forward({ type: "report", lifecycle: last });
      }
    } else if (["cmpDetected", "popupFound", "optOutResult", "autoconsentDone",
                "autoconsentError"].includes(msg.type)) {
      forward({ type: msg.type, cmp: String(msg.cmp || ""), result: !!msg.result });
    }
    return Promise.resolve();
  };
})();
"""

# The rules a document gets, as the library's own `filterCompactRules` picks them
# (through the rule set's index): the main frame the generic rules and the site rules
# whose URL pattern matches, a frame only the rules made for frames. A pattern's hints
# (bot/browser/pattern_hints.py: text every URL it matches contains) spare compiling its
# regex for a URL with none of them: ~600 of them took 5-10 ms a document.
SELECT_JS = """(all, hints, url, mainFrame) => {
  const index = all.index;
  if (!(index && index.frameRuleRange && index.genericRuleRange && index.specificRuleRange)) {
    return all;
  }
  const matches = (rule) => {
    try {
      if (!rule[3]) return true;
      const hint = Object.hasOwn(hints, rule[3]) ? hints[rule[3]] : null;
      if (hint && !hint.some((h) => url.includes(h))) return false;
      return url.match(rule[3]) !== null;
    } catch (e) { return false; }
  };
  const rules = mainFrame
    ? all.r.slice(...index.genericRuleRange).concat(all.r.slice(...index.specificRuleRange).filter(matches))
    : all.r.slice(...index.frameRuleRange).filter(matches);
  return { v: all.v, s: all.s, r: rules };
}"""

# The init script of every document: the prehide style, added as soon as <html> exists.
_PREHIDE = """(() => {
  const css = %(css)s;
  const add = () => {
    if (document.getElementById("%(id)s")) return;
    const style = document.createElement("style");
    style.id = "%(id)s";
    style.textContent = css;
    (document.head || document.documentElement).appendChild(style);
  };
  if (document.documentElement) { add(); return; }
  new MutationObserver((_, observer) => {
    if (document.documentElement) { observer.disconnect(); add(); }
  }).observe(document, { childList: true });
})();
"""

# Whether an element matching the prehide selectors is in the document.
_KNOWN_BANNER_JS = """() => {
  const style = document.getElementById("linksnap-prehide");
  if (!style || !style.sheet) return false;
  for (const rule of style.sheet.cssRules) {
    try { if (rule.selectorText && document.querySelector(rule.selectorText)) return true; }
    catch (e) {}
  }
  return false;
}"""


@dataclass(frozen=True)
class ConsentRules:
    """One installed autoconsent package: the library and its rules."""

    version: str
    rule_count: int
    bundle: str
    rules_json: str
    site_patterns: tuple[tuple[re.Pattern[str], list[str] | None], ...]
    hints: dict[str, list[str]]  # pattern → url_hints, for the patterns that have them
    digest: str  # of bundle and rules: what the prehide selectors depend on
    directory: Path

    @classmethod
    def load(cls, directory: Path) -> ConsentRules:
        try:
            bundle = (directory / BUNDLE).read_text(encoding="utf-8")
            rules_json = (directory / RULES).read_text(encoding="utf-8")
            meta = json.loads((directory / "package.json").read_text(encoding="utf-8"))
            rules = json.loads(rules_json)
        except (OSError, ValueError) as exc:
            raise ConsentRulesMissing(f"{directory}: {exc}") from None
        if not isinstance(rules, dict) or not isinstance(rules.get("r"), list):
            raise ConsentRulesMissing(f"{directory / RULES}: not a compact rule set")
        version = str(meta.get("version", "?"))
        digest = hashlib.sha256(f"{len(bundle)}:{bundle}{rules_json}".encode()).hexdigest()
        hints = {p: h for p in _patterns(rules) if (h := url_hints(p)) is not None}
        patterns = _site_patterns(rules, hints)
        return cls(version, len(rules["r"]), bundle, rules_json, patterns, hints, digest, directory)

    def library(self, hide_seconds: float) -> str:
        """The script that runs the library in a document (with our config and rules)."""
        shim = _SHIM % {
            "binding": BINDING,
            "config": json.dumps(_config(int(hide_seconds * 1000))),
            # As a string for JSON.parse: V8 reads 257 KB of rules so in 3 ms a document
            # (each frame too), against 7 ms as an object literal (measured in Chromium).
            "rules": json.dumps(self.rules_json),
            "hints": json.dumps(json.dumps(self.hints)),
            "select": SELECT_JS,
        }
        return shim + "\n" + self.bundle

    def has_site_rule(self, url: str) -> bool:
        return any(
            (hint is None or any(h in url for h in hint)) and pattern.search(url)
            for pattern, hint in self.site_patterns
        )


def _patterns(rules: dict[str, Any]) -> set[str]:
    """Every rule's URL pattern (compact format: rule[3])."""
    return {r[3] for r in rules["r"] if len(r) > 3 and isinstance(r[3], str) and r[3]}


def _site_patterns(
    rules: dict[str, Any], hints: dict[str, list[str]]
) -> tuple[tuple[re.Pattern[str], list[str] | None], ...]:
    """The URL patterns of the site-specific rules, each with its hints."""
    index = rules.get("index") or {}
    start, end = index.get("specificRuleRange") or (0, len(rules["r"]))
    patterns = []
    for rule in rules["r"][start:end]:
        try:
            if isinstance(rule[3], str) and rule[3]:
                patterns.append((re.compile(rule[3]), hints.get(rule[3])))
        except (re.error, IndexError, TypeError):
            continue  # a JavaScript-only pattern: that site's banner waits for the generic check
    return tuple(patterns)


_FILES = (BUNDLE, RULES, Path("package.json"))
# The rule set last read from each directory, with when its files changed: a browser
# started again (after the idle close, a restart) reuses the compiled patterns.
_loaded: dict[Path, tuple[tuple[int, ...], ConsentRules]] = {}


def load_rules(directory: str | None) -> ConsentRules | None:
    """The configured rule set, or None (banners are then left as they are) with a warning."""
    where = Path(directory) if directory else DEFAULT_RULES_DIR
    try:
        stamp = tuple(_changed(where / name) for name in _FILES)
        known = _loaded.get(where)
        rules = known[1] if known and known[0] == stamp else ConsentRules.load(where)
    except ConsentRulesMissing as exc:
        log.warning("consent banners will not be dismissed: no autoconsent rules (%s)", exc)
        return None
    _loaded[where] = (stamp, rules)
    log.info("consent rules: autoconsent %s, %d rules", rules.version, rules.rule_count)
    return rules


def _changed(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError as exc:
        raise ConsentRulesMissing(f"{path}: {exc}") from None


# The prehide selectors by rule set (ConsentRules.digest). They depend on the rules
# alone, not on the configuration the library runs with, and reading them costs a
# Chromium page running the ~400 kB library: about 1.2 s of CPU (docs/BENCHMARKS.md).
# So a process reads them once per rule set, and keeps them beside the rules for the
# next start (that directory is trusted as the library's code is; a file made for
# other rules is ignored).
_prehide_css: dict[str, str] = {}
PREHIDE_FILE = ".linksnap-prehide.json"


def known_prehide(rules: ConsentRules) -> str | None:
    """The init script for these rules if their selectors were read before."""
    css = _prehide_css.get(rules.digest) or _kept_css(rules)
    if css is None:
        return None
    _prehide_css[rules.digest] = css
    return _prehide(css)


def _kept_css(rules: ConsentRules) -> str | None:
    try:
        kept = json.loads((rules.directory / PREHIDE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict) or kept.get("digest") != rules.digest:
        return None
    css = kept.get("css")
    return css if isinstance(css, str) and css else None


def _keep_css(rules: ConsentRules, css: str) -> None:
    target = rules.directory / PREHIDE_FILE
    temporary = target.with_name(f"{PREHIDE_FILE}.{os.getpid()}")
    try:
        temporary.write_text(json.dumps({"digest": rules.digest, "css": css}), encoding="utf-8")
        os.replace(temporary, target)  # whole or not at all, whoever writes last
    except OSError as exc:
        log.info("prehide selectors not kept (read again at the next start): %s", exc)
        with contextlib.suppress(OSError):
            temporary.unlink()


def _prehide(css: str) -> str:
    return _PREHIDE % {"css": json.dumps(css), "id": STYLE_ID}


async def prehide_script(
    browser: Browser, rules: ConsentRules, library: str, proxy: dict[str, str]
) -> str:
    """The init script with the library's own prehide selectors, read from the library.

    The library builds them from its coded and JSON rules when it starts; it is run
    once here, on an empty page (no network; `proxy` is a capture's session all the
    same, so this context is no way around the guard), and its style is kept.
    """
    context = await browser.new_context(proxy=proxy)  # type: ignore[arg-type]
    try:
        page = await context.new_page()
        await page.set_content("<!doctype html><html><head></head><body></body></html>")
        await page.evaluate(library)
        handle = await page.wait_for_function(
            "() => { const s = document.getElementById('autoconsent-prehide');"
            " return s && s.textContent; }",
            timeout=10_000,
        )
        css = str(await handle.json_value())
    finally:
        await context.close()
    _prehide_css[rules.digest] = css
    _keep_css(rules, css)
    return _prehide(css)


@dataclass(eq=False)
class ConsentWatch:
    """One capture's banner handling: what the library reports from each frame."""

    rules: ConsentRules
    library: str
    states: dict[Frame, str] = field(default_factory=dict)
    dismissed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    messages: int = 0
    injected: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _receive(self, source: dict[str, Any], message: object) -> None:
        self.messages += 1
        if self.messages > MAX_MESSAGES or not isinstance(message, dict):
            return
        frame = source.get("frame")
        kind = message.get("type")
        if kind == "report" and isinstance(frame, Frame):
            self.states[frame] = str(message.get("lifecycle"))[:40]
        elif kind == "optOutResult":
            cmp = str(message.get("cmp"))[:80]
            (self.dismissed if message.get("result") else self.failed).append(cmp)
        self._changed.set()

    def _detached(self, frame: Frame) -> None:
        if self.states.pop(frame, None) is not None:
            self._changed.set()

    @property
    def busy(self) -> bool:
        return any(state in BUSY for state in self.states.values())

    def _looking(self, page: Page) -> bool:
        """The main frame's library has not (yet) found anything to act on."""
        state = self.states.get(page.main_frame)
        return state is None or state in LOOKING

    async def settle(self, page: Page, within: float) -> None:
        """If the page has a banner the rules know, dismiss it, waiting up to `within` s.

        Known: an element matching the prehide selectors, or a site-specific rule for
        the page's URL. The wait lasts until the library has found the banner (it looks
        again every 500 ms: banners are often injected late) and finished with it.
        """
        if not self.injected:
            if not (self.rules.has_site_rule(page.url) or await _known_banner(page)):
                return
            await self._inject(page)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, within)
        await self._until(lambda: self.busy or not self._looking(page), within)
        await self._until(lambda: not self.busy, deadline - loop.time())
        if self.busy or self._looking(page):
            log.info("consent: not finished after %.1f s (%s)", within, self.summary())

    async def _inject(self, page: Page) -> None:
        self.injected = True
        page.on("framedetached", self._detached)
        await page.expose_binding(BINDING, self._receive)
        await asyncio.gather(
            *(_evaluate(frame, self.library) for frame in page.frames), return_exceptions=True
        )

    async def _until(self, done: Callable[[], bool], within: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, within)
        while not done() and loop.time() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.01, deadline - loop.time()))

    def summary(self) -> str:
        states = ",".join(sorted(set(self.states.values()))) or "-"
        return f"states={states} dismissed={self.dismissed} failed={self.failed}"


async def _known_banner(page: Page) -> bool:
    try:
        return bool(await asyncio.wait_for(page.evaluate(_KNOWN_BANNER_JS), _EVAL_TIMEOUT))
    except (PlaywrightError, TimeoutError):
        return False


async def _evaluate(frame: Frame, script: str) -> None:
    with contextlib.suppress(PlaywrightError, TimeoutError):
        await asyncio.wait_for(frame.evaluate(script), _EVAL_TIMEOUT)

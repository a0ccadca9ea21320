"""Consent and cookie banners: dismissed (opting out where possible) before a shot.

The rules are DuckDuckGo's autoconsent (npm `@duckduckgo/autoconsent`), the library
DuckDuckGo's browsers use: JSON rules per consent platform plus a few coded ones
(OneTrust, Cookiebot, ...), a bundle made for Playwright injection, and "prehide"
selectors that make known banners invisible from the first paint while they are being
dismissed. Both the bundle and the rules are read from the installed package at start,
so a newer rule set is `npm update` in tools/autoconsent (or CONSENT_RULES_DIR pointing
at another copy), not a code change.

How it runs: an init script (in every frame, before the page's own scripts) answers
the library's `init` message with our configuration and rules, and forwards lifecycle
changes to Python through one binding. The library lives in the page's main world, so
the page can see and call it; everything it can do with that is end or delay its own
banner handling, which the capture bounds anyway (CONSENT_WAIT, the capture budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Frame, Page
from playwright.async_api import Error as PlaywrightError

log = logging.getLogger(__name__)

DEFAULT_RULES_DIR = (
    Path(__file__).resolve().parent.parent
    / "tools"
    / "autoconsent"
    / "node_modules"
    / "@duckduckgo"
    / "autoconsent"
)
BUNDLE = Path("dist") / "autoconsent.playwright.js"
RULES = Path("rules") / "compact-rules.json"
BINDING = "__linksnapConsent"
# Lifecycle states in which the library is acting on a banner it found.
BUSY = frozenset({"cmpDetected", "openPopupDetected", "runningOptOut", "runningOptIn"})
# States in which a frame's library has not found a banner yet (detection starts when
# the page is idle, then looks again every 500 ms).
LOOKING = frozenset({"loading", "initialized", "waitingForInitResponse", "started"})
# A page can call the binding itself; past this many messages it is ignored.
MAX_MESSAGES = 2_000


class ConsentRulesMissing(RuntimeError):
    """The autoconsent package is not where the settings say (see scripts/setup.sh)."""


# The library's own defaults, except: act at once (opt out), keep known banners hidden
# for the whole capture rather than 2 s, run eval snippets in place (we are in the main
# world already), no heuristic clicking of unknown buttons, and no console output.
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
# for its configuration with an `init` message, answered here without a round trip.
# Like the library's own `filterCompactRules` (through the rule set's index): the main
# frame gets the generic rules and the site rules whose URL pattern matches, a frame
# only the rules made for frames; parsing all of them costs every page ~15 ms.
_SHIM = """(() => {
  if (window.autoconsentReceiveMessage) return;
  const report = window.%(binding)s;
  const config = %(config)s;
  const all = %(rules)s;
  const mainFrame = window.top === window;
  const index = all.index;
  let compact = all;
  if (index && index.frameRuleRange && index.genericRuleRange && index.specificRuleRange) {
    const url = location.href;
    const matches = (rule) => {
      try { return !rule[3] || url.match(rule[3]) !== null; } catch (e) { return false; }
    };
    const rules = mainFrame
      ? all.r.slice(...index.genericRuleRange).concat(all.r.slice(...index.specificRuleRange).filter(matches))
      : all.r.slice(...index.frameRuleRange).filter(matches);
    compact = { v: all.v, s: all.s, r: rules };
  }
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


@dataclass(frozen=True)
class ConsentRules:
    """The init script built from one installed autoconsent package."""

    version: str
    rule_count: int
    bundle: str
    rules_json: str

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
        return cls(str(meta.get("version", "?")), len(rules["r"]), bundle, rules_json)

    def script(self, prehide_seconds: float) -> str:
        shim = _SHIM % {
            "binding": BINDING,
            "config": json.dumps(_config(int(prehide_seconds * 1000))),
            "rules": self.rules_json,
        }
        return shim + "\n" + self.bundle


def load_rules(directory: str | None) -> ConsentRules | None:
    """The configured rule set, or None (banners are then left as they are) with a warning."""
    where = Path(directory) if directory else DEFAULT_RULES_DIR
    try:
        rules = ConsentRules.load(where)
    except ConsentRulesMissing as exc:
        log.warning("consent banners will not be dismissed: no autoconsent rules (%s)", exc)
        return None
    log.info("consent rules: autoconsent %s, %d rules", rules.version, rules.rule_count)
    return rules


# Whether an element matching the rules' prehide selectors (known platforms' banners,
# hidden while handled) is in the page: the library keeps them in one style element.
_KNOWN_BANNER_JS = """() => {
  const style = document.getElementById("autoconsent-prehide");
  if (!style || !style.sheet) return false;
  for (const rule of style.sheet.cssRules) {
    try { if (rule.selectorText && document.querySelector(rule.selectorText)) return true; }
    catch (e) {}
  }
  return false;
}"""


async def _known_banner(page: Page) -> bool:
    try:
        return bool(await asyncio.wait_for(page.evaluate(_KNOWN_BANNER_JS), 2))
    except (PlaywrightError, TimeoutError):
        return False


@dataclass(eq=False)
class ConsentWatch:
    """What autoconsent reports from each frame of one capture."""

    states: dict[Frame, str] = field(default_factory=dict)
    dismissed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    messages: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def attach(self, context: BrowserContext, script: str) -> None:
        """Before the first page of `context` opens."""
        await context.expose_binding(BINDING, self._receive)
        await context.add_init_script(script)

    def watch_page(self, page: Page) -> None:
        page.on("framedetached", self._detached)

    def _detached(self, frame: Frame) -> None:
        if self.states.pop(frame, None) is not None:
            self._changed.set()

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

    @property
    def busy(self) -> bool:
        return any(state in BUSY for state in self.states.values())

    def _looking(self, page: Page) -> bool:
        """The main frame's library has not (yet) found anything to act on."""
        state = self.states.get(page.main_frame)
        return state is None or state in LOOKING

    async def settle(self, page: Page, within: float) -> None:
        """Wait while a banner is being dismissed, up to `within` seconds.

        Only when one is there: a frame is already acting on one, or an element of a
        platform the rules know (their prehide selectors) is in the page. Then until
        the library has found it (it looks again every 500 ms while nothing is found:
        banners are often injected after the first look) and has finished with it.
        A page with no known banner is not held up; one that appears later is still
        hidden by the prehide selectors while the capture lasts.
        """
        if not self.busy and not await _known_banner(page):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, within)
        await self._until(lambda: self.busy or not self._looking(page), within)
        await self._until(lambda: not self.busy, deadline - loop.time())
        if self.busy or self._looking(page):
            log.info("consent: not finished after %.1f s (%s)", within, self.summary())

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

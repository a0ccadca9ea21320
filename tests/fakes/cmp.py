"""Pages with consent banners modelled on three platforms' markup and scripts.

Each page is an article in ARTICLE colour with the platform's banner in BANNER colour
covering it, injected by the platform's script after the page loads (as the real
loaders do). Each banner's own buttons and JS API behave like the platform's: a choice
hides the banner and is reported to the server (`/cmp/choice`), so a test can tell an
opt-out from an opt-in or a mere hiding.

- OneTrust (otBannerSdk): `#onetrust-consent-sdk` > dark filter + `#onetrust-banner-sdk`
  with Cookie Settings / Reject All / Accept All buttons; `window.OnetrustActiveGroups`.
- Cookiebot (uc.js): `#CybotCookiebotDialog` with Deny / Allow selection / Allow all;
  the `window.Cookiebot` API (`dialog.visible`, `hasResponse`, `declined`,
  `withdraw()`, `hide()`).
- Quantcast Choice, an IAB TCF v2 platform: `#qc-cmp2-container` > `#qc-cmp2-ui` with
  MORE OPTIONS / DISAGREE / AGREE (`mode` attributes) and the `__tcfapi` function.
"""

from __future__ import annotations

ARTICLE = (0, 128, 128)
BANNER = (230, 0, 230)
PLATFORMS = ("onetrust", "cookiebot", "tcf")

_BANNER_CSS = (
    "position:fixed;left:40px;top:40px;right:40px;bottom:40px;z-index:2147483647;"
    f"background:rgb{BANNER};color:#fff;font:20px sans-serif;padding:40px"
)


def page(platform: str) -> str:
    """The article page carrying `platform`'s loader."""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Consent test ({platform})</title>
<style>html,body{{margin:0}} article{{background:rgb{ARTICLE};color:#fff;min-height:2400px;
font:22px serif;padding:60px}}</style></head>
<body><article><h1>An article behind a {platform} banner</h1>
<p>Readers came for this text. The banner covers it until a choice is made.</p></article>
<script src="/cmp/{platform}/loader.js" async></script></body></html>"""


def _report(platform: str, choice: str) -> str:
    return f'fetch("/cmp/choice?cmp={platform}&choice={choice}").catch(() => 0);'


def loader(platform: str) -> str:
    """The platform's script: builds its banner and wires its buttons and API."""
    template = {"onetrust": _ONETRUST, "cookiebot": _COOKIEBOT, "tcf": _QUANTCAST}[platform]
    return template % {
        "css": _BANNER_CSS,
        "reject": _report(platform, "reject"),
        "accept": _report(platform, "accept"),
    }


_ONETRUST = """(() => {
  window.OnetrustActiveGroups = ",C0001,C0002,C0003,C0004,";
  const sdk = document.createElement("div");
  sdk.id = "onetrust-consent-sdk";
  sdk.innerHTML = `
    <div class="onetrust-pc-dark-filter ot-fade-in"
         style="position:fixed;inset:0;background:rgba(0,0,0,.5);z-index:2147483646"></div>
    <div id="onetrust-banner-sdk" class="otCenterRounded" role="region" aria-label="Cookie banner"
         style="%(css)s">
      <div id="onetrust-policy"><h2 id="onetrust-policy-title">We value your privacy</h2>
        <div id="onetrust-policy-text">We and our partners use cookies to personalise content.</div></div>
      <div id="onetrust-button-group-parent"><div id="onetrust-button-group">
        <button id="onetrust-pc-btn-handler">Cookie Settings</button>
        <button id="onetrust-reject-all-handler">Reject All</button>
        <button id="onetrust-accept-btn-handler">Accept All Cookies</button>
      </div></div>
    </div>`;
  const close = () => { sdk.querySelector("#onetrust-banner-sdk").style.display = "none";
                        sdk.querySelector(".onetrust-pc-dark-filter").style.display = "none"; };
  document.body.appendChild(sdk);
  sdk.querySelector("#onetrust-reject-all-handler").addEventListener("click", () => {
    window.OnetrustActiveGroups = ",C0001,"; close(); %(reject)s });
  sdk.querySelector("#onetrust-accept-btn-handler").addEventListener("click", () => {
    close(); %(accept)s });
})();
"""

_COOKIEBOT = """(() => {
  const dialog = document.createElement("div");
  dialog.id = "CybotCookiebotDialog";
  dialog.setAttribute("role", "dialog");
  dialog.setAttribute("data-template", "popup");
  dialog.style.cssText = "%(css)s";
  dialog.innerHTML = `
    <div id="CybotCookiebotDialogBody"><h2 id="CybotCookiebotDialogBodyContentTitle">This website uses cookies</h2>
      <div id="CybotCookiebotDialogBodyContentText">We use cookies to personalise content and ads.</div></div>
    <div id="CybotCookiebotDialogFooter">
      <button id="CybotCookiebotDialogBodyButtonDecline">Deny</button>
      <button id="CybotCookiebotDialogBodyLevelButtonLevelOptinAllowallSelection">Allow selection</button>
      <button id="CybotCookiebotDialogBodyLevelButtonLevelOptinAllowAll">Allow all</button>
    </div>`;
  const api = {
    consented: false, declined: false, hasResponse: false,
    consent: { necessary: true, preferences: false, statistics: false, marketing: false },
    dialog: { visible: true },
    hide() { dialog.style.display = "none"; this.dialog.visible = false; },
    show() { dialog.style.display = "block"; this.dialog.visible = true; },
    withdraw() { this.declined = true; this.consented = false; this.hasResponse = true; %(reject)s },
    submitCustomConsent() { this.consented = true; this.hasResponse = true; %(accept)s },
  };
  window.Cookiebot = window.CookieConsent = api;
  document.body.appendChild(dialog);
  dialog.querySelector("#CybotCookiebotDialogBodyButtonDecline").addEventListener("click", () => {
    api.withdraw(); api.hide(); });
  dialog.querySelector("#CybotCookiebotDialogBodyLevelButtonLevelOptinAllowAll").addEventListener(
    "click", () => { api.submitCustomConsent(); api.hide(); });
})();
"""

_QUANTCAST = """(() => {
  const listeners = [];
  let tcData = { tcString: "", eventStatus: "cmpuishown", gdprApplies: true, cmpId: 10 };
  window.__tcfapi = (command, version, callback) => {
    if (command === "addEventListener") { listeners.push(callback); callback(tcData, true); }
    else if (command === "ping") callback({ gdprApplies: true, cmpLoaded: true, cmpStatus: "loaded" }, true);
    else if (command === "getTCData") callback(tcData, true);
  };
  const container = document.createElement("div");
  container.id = "qc-cmp2-container";
  container.setAttribute("data-nosnippet", "");
  container.innerHTML = `
    <div class="qc-cmp2-main" id="qc-cmp2-main">
      <div id="qc-cmp2-ui" class="qc-cmp-cleanslate" role="dialog" aria-label="qc-cmp2-ui" style="%(css)s">
        <div class="qc-cmp2-summary-section"><h2>We value your privacy</h2>
          <div class="qc-cmp2-summary-info">We and our partners store and/or access information on a device.</div></div>
        <div class="qc-cmp2-footer"><div class="qc-cmp2-summary-buttons">
          <button mode="secondary" size="large">MORE OPTIONS</button>
          <button mode="secondary" size="large">DISAGREE</button>
          <button mode="primary" size="large">AGREE</button>
        </div></div>
      </div>
    </div>`;
  const decide = (consented) => {
    container.remove();
    tcData = { ...tcData, eventStatus: "useractioncomplete", tcString: consented ? "CPyes" : "CPno" };
    listeners.forEach((cb) => cb(tcData, true));
  };
  document.body.appendChild(container);
  const [more, disagree, agree] = container.querySelectorAll(".qc-cmp2-summary-buttons > button");
  disagree.addEventListener("click", () => { decide(false); %(reject)s });
  agree.addEventListener("click", () => { decide(true); %(accept)s });
  more.addEventListener("click", () => {});
})();
"""

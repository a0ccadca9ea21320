#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine (run as root, no prompts).
# Each step is skipped when its result is already there, so a second run is fast.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
STAMPS=.stamps
mkdir -p "$STAMPS"

need_apt=()
command -v chromium >/dev/null 2>&1 || [ -n "${CHROMIUM_PATH:-}" ] || need_apt+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] && ls /usr/share/fonts/opentype/noto/NotoSansCJK* >/dev/null 2>&1 \
  || need_apt+=(fonts-noto-cjk)
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need_apt+=(fonts-noto-color-emoji)
# The WebRTC test makes its own network namespace (tests/test_webrtc.py).
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
# Consent-banner rules come from npm (below); tests read produced PDFs with pdftotext.
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v pdftotext >/dev/null 2>&1 || need_apt+=(poppler-utils)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
else
  echo "setup: chromium and fonts present"
fi
# Chromium's headless shell draws a capture for about half the CPU of the full browser
# (bot/browser/binary.py). Its own step: where a mirror lacks it, the full browser serves.
if [ -z "${CHROMIUM_PATH:-}" ] && ! command -v chromium-headless-shell >/dev/null 2>&1; then
  echo "setup: installing chromium-headless-shell (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends chromium-headless-shell >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium-headless-shell >/dev/null; } \
    || echo "setup: chromium-headless-shell not available; the full chromium will be used" >&2
fi

deps_hash=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMPS/pip" 2>/dev/null)" != "$deps_hash" ]; then
  echo "setup: installing Python packages into $VENV"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[dev]"
  echo "$deps_hash" > "$STAMPS/pip"
else
  echo "setup: Python packages up to date"
fi

# Consent-banner rules (bot/browser/consent.py): DuckDuckGo's autoconsent, pinned by
# tools/autoconsent/package-lock.json; `npm update` there brings newer rules.
consent_hash=$(sha256sum tools/autoconsent/package-lock.json | cut -c1-16)
if [ ! -f tools/autoconsent/node_modules/@duckduckgo/autoconsent/dist/autoconsent.playwright.js ] \
  || [ "$(cat "$STAMPS/autoconsent" 2>/dev/null)" != "$consent_hash" ]; then
  echo "setup: installing consent-banner rules (npm ci in tools/autoconsent)"
  npm ci --prefix tools/autoconsent --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  echo "$consent_hash" > "$STAMPS/autoconsent"
else
  echo "setup: consent-banner rules present"
fi

# The Mini App client script (bot/web/): Telegram's telegram-web-app.js as @twa-dev/sdk
# ships it, pinned by tools/webapp/package-lock.json and served by the bot itself (no CDN).
# --legacy-peer-deps: the package's optional React bindings would pull React, unused here.
webapp_hash=$(sha256sum tools/webapp/package-lock.json | cut -c1-16)
if [ ! -f tools/webapp/node_modules/@twa-dev/sdk/dist/telegram-web-apps.js ] \
  || [ "$(cat "$STAMPS/webapp" 2>/dev/null)" != "$webapp_hash" ]; then
  echo "setup: installing the Mini App client script (npm ci in tools/webapp)"
  npm ci --prefix tools/webapp --omit=dev --legacy-peer-deps --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  echo "$webapp_hash" > "$STAMPS/webapp"
else
  echo "setup: Mini App client script present"
fi

if [ -z "${MONGODB_URI:-}" ] || [ "${SETUP_FERRETDB:-}" = 1 ]; then
  src_hash=$(cat tools/ferretdb/go.mod tools/ferretdb/go.sum tools/ferretdb/*.go | sha256sum | cut -c1-16)
  if [ ! -x tools/ferretdb/bin/ferretdb ] || [ "$(cat "$STAMPS/ferretdb" 2>/dev/null)" != "$src_hash" ]; then
    echo "setup: building FerretDB v1.24.2 (go install)"
    (cd tools/ferretdb && GOBIN="$PWD/bin" GOFLAGS="-mod=mod -buildvcs=false" go install -ldflags=-checklinkname=0 .)
    echo "$src_hash" > "$STAMPS/ferretdb"
  else
    echo "setup: FerretDB already built"
  fi
fi

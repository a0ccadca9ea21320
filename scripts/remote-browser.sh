#!/usr/bin/env bash
# Start Playwright's own browser server with linksnap's Chromium switches, for
# BROWSER_WS_ENDPOINT. Prints the endpoint (ws://HOST:PORT/<secret path>) on its first line.
#
#   scripts/remote-browser.sh [HOST] [PORT]     defaults: 127.0.0.1 3000
#
# Anyone who can reach HOST:PORT and knows the path drives this browser: bind it to
# loopback or a private interface only. The bot must be reachable from here at
# EGRESS_PROXY_URL (see README, "Remote browser").
set -euo pipefail
cd "$(dirname "$0")/.."
host=${1:-127.0.0.1}
port=${2:-3000}
config=$(mktemp)
trap 'rm -f "$config"' EXIT
.venv/bin/python -m bot.browser.server "$host" "$port" >"$config"
driver=$(.venv/bin/python -c 'from bot.browser.server import driver_command; print(" ".join(driver_command()))')
# shellcheck disable=SC2086  # two paths without spaces: node and cli.js
$driver launch-server --browser chromium --config "$config" &
server=$!
# Pass a stop on to the server (it closes its Chromium), then tidy up.
trap 'kill "$server" 2>/dev/null; wait "$server"; rm -f "$config"' EXIT INT TERM
wait "$server"

#!/usr/bin/env bash
# Start the bot; without MONGODB_URI, start the local FerretDB (data under ./data/) first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .env ] && set -a && . ./.env && set +a
if [ -z "${TELEGRAM_BOT_TOKEN:-}" ]; then
  echo "TELEGRAM_BOT_TOKEN is not set: get one from @BotFather, then: TELEGRAM_BOT_TOKEN=... make run" >&2
  exit 2
fi
if [ -z "${MONGODB_URI:-}" ]; then
  port=${FERRETDB_PORT:-27017}
  mkdir -p data/ferretdb
  # A soft ceiling for FerretDB's Go heap: the collector works harder near it and
  # hands freed memory back to the system, instead of keeping a burst's peak for good
  # (docs/BENCHMARKS.md, "memory of the whole set").
  GOMEMLIMIT=${FERRETDB_GOMEMLIMIT:-64MiB} tools/ferretdb/bin/ferretdb --listen-addr "127.0.0.1:$port" --sqlite-url "file:data/ferretdb/" \
    >>data/ferretdb.log 2>&1 &
  fdb_pid=$!
  trap 'kill $fdb_pid 2>/dev/null || true' EXIT
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 $fdb_pid 2>/dev/null || { echo "FerretDB failed to start, see data/ferretdb.log" >&2; exit 1; }
    sleep 0.1
  done
  export MONGODB_URI="mongodb://127.0.0.1:$port/linksnap"
fi
# Two malloc arenas, not eight per core: the threads that read pages' text would each
# keep one, and their free pages with it (docs/BENCHMARKS.md).
MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2} .venv/bin/python -m bot

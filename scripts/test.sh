#!/usr/bin/env bash
# Lint, type-check, then the test suite against real parts (FerretDB, Chromium, fakes).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy bot handlers storage tests benchmarks
# Tests side by side (pytest-xdist), each worker with its own FerretDB, Chromium and pages:
# most of a test's time is waiting (pacing, a killed worker's lease, a page's budget), so
# three workers on two cores finish in about half the time of one; more only share the
# cores more (warm runs: three 482 s, four 502 s, six 635 s; docs/BENCHMARKS.md).
# TEST_PIN=1 TEST_WORKERS=4 keeps each worker on one core (~15 % shorter on this machine,
# but two of seven fresh clones that way failed on a test page's 8 s limit).
# The tests' databases, files and browser profiles on tmpfs when there is one with room
# (4 GiB free): FerretDB's SQLite syncs every write to disk, a fifth of the 10 000-write
# test's time (docs/BENCHMARKS.md, "The test suite's time").
scratch=""
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt 4194304 ]; then
  scratch=$(mktemp -d /dev/shm/linksnap-test.XXXXXX)
  export TMPDIR=$scratch
  trap 'rm -rf "$scratch"' EXIT
fi
echo "== pytest"; .venv/bin/pytest -q -p no:cacheprovider --tb=native -n "${TEST_WORKERS:-3}" "$@"

#!/usr/bin/env bash
# Lint, type-check, then the test suite against real parts (FerretDB, Chromium, fakes).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy bot handlers storage tests benchmarks
# Tests side by side (pytest-xdist), each worker with its own FerretDB, Chromium and pages:
# much of a test's time is waiting (pacing, a killed worker's lease, a page's budget), so
# workers overlap it. Four, each kept to one core with everything it starts (TEST_PIN=1,
# tests/conftest.py): Chromium's processes hand work to each other all the time and pay
# for it across cores (a capture 0.50 CPU-s on one core, 0.65 over two). Warm runs on the
# project's 2 cores: four pinned 370 s, three unpinned 475 s (docs/BENCHMARKS.md).
# TEST_PIN=0 TEST_WORKERS=3 runs them as before; TEST_WORKERS=1 one by one.
export TEST_PIN="${TEST_PIN:-1}"
# The tests' databases, files and browser profiles on tmpfs when there is one with room
# (4 GiB free): FerretDB's SQLite syncs every write to disk, a fifth of the 10 000-write
# test's time (docs/BENCHMARKS.md, "The test suite's time").
scratch=""
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt 4194304 ]; then
  scratch=$(mktemp -d /dev/shm/linksnap-test.XXXXXX)
  export TMPDIR=$scratch
  trap 'rm -rf "$scratch"' EXIT
fi
echo "== pytest"; .venv/bin/pytest -q -p no:cacheprovider --tb=native -n "${TEST_WORKERS:-4}" "$@"

#!/usr/bin/env bash
# Lint, type-check, then the test suite against real parts (FerretDB, Chromium, fakes).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy bot handlers storage tests benchmarks
# Tests side by side (pytest-xdist), each worker with its own FerretDB, Chromium and pages:
# most of a test's time is waiting (pacing, a killed worker's lease, a page's budget), so
# four workers on two cores finish in about two thirds of the time of one (README).
echo "== pytest"; exec .venv/bin/pytest -q -p no:cacheprovider --tb=native -n "${TEST_WORKERS:-4}" "$@"

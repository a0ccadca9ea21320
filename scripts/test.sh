#!/usr/bin/env bash
# Lint, type-check, then the test suite against real parts (FerretDB, Chromium, fakes).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy bot handlers storage tests benchmarks
echo "== pytest"; exec .venv/bin/pytest -q -p no:cacheprovider --tb=native "$@"

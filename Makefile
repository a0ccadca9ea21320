.PHONY: setup run test bench lint fmt

setup:
	bash scripts/setup.sh

run: setup
	bash scripts/run.sh

test:
	SETUP_FERRETDB=1 bash scripts/setup.sh
	bash scripts/test.sh

bench:
	SETUP_FERRETDB=1 bash scripts/setup.sh
	.venv/bin/python -m benchmarks

fmt:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

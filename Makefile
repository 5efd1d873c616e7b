# Herald: every target installs what it needs into .venv from the pinned requirements-dev.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins older boto3/packaging than ours, so it has a venv of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
# One pytest worker per core, plus one: much of the suite waits on real time (the e2e runtime, moto's
# visibility timeouts, webhook deadlines), and a spare worker overlaps that waiting.
WORKERS ?= $(shell $(PYTHON) -c "import os; print((os.cpu_count() or 1) + 1)")

.PHONY: run test lint format unit integration e2e infrastructure bench clean

$(STAMP): requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# The `herald` command (cli/, as .venv/bin/herald): an editable install with the pinned setuptools, fetching nothing.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

## run: start Herald locally on 127.0.0.1 (embedded AWS, API, sender pollers)
run: $(STAMP)
	$(BIN)/python -m local

## test: lint, then every test suite on $(WORKERS) workers (the e2e tests share one local runtime on one worker)
test: lint
	$(BIN)/python -m pytest -p no:cacheprovider --numprocesses $(WORKERS) --dist loadgroup

## lint: ruff, ruff format --check, mypy, cfn-lint, checkov (offline: no update check, no guideline download)
lint: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation \
		--compact --quiet --skip-download

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

unit: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/unit
integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration
e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e
infrastructure: $(STAMP)
	$(BIN)/cfn-lint template.yaml
	$(BIN)/python -m pytest -p no:cacheprovider tests/infrastructure

## bench: run every benchmark and print its figures
bench: $(STAMP)
	$(BIN)/python -m benchmarks.startup
	$(BIN)/python -m benchmarks.breaker_odds
	$(BIN)/python -m benchmarks.breaker
	$(BIN)/python -m benchmarks.sender_concurrency
	$(BIN)/python -m benchmarks.batch_accept
	$(BIN)/python -m benchmarks.cold_start

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam

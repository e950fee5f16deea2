# Everything installs on first use into .venv/, from the versions pinned in uv.lock.
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
PYTHON ?= python3
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS := never
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install dev dev-s3 test lint format sample-data clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv sync --frozen --inexact
	touch $@

# The UI and the daemon on http://127.0.0.1:3000, with schedules, sensors and runs kept in .dagster_home/.
# `dg dev` is what Dagster now recommends; `dagster dev -w workspace.yaml` starts the same code location.
dev: install
	mkdir -p "$(DAGSTER_HOME)"
	$(BIN)/dg dev

# The same with SOURCE_DIR=s3://landing/incoming/ on moto's S3 server, in memory, on 127.0.0.1:$(S3_PORT),
# which starts holding the sample files and stops with dagster dev. Its tables go to data/staging/s3.duckdb
# and its Dagster state to .dagster_home_s3/. See src/dagster_and_etl/local_s3.py.
S3_PORT ?= 5055
dev-s3: install
	$(BIN)/python -m dagster_and_etl.local_s3 dev --port $(S3_PORT)

# Two test processes, which take tests from each other's queue so that neither idles at the end: the
# suite spends most of its time waiting on dagster dev, DuckDB and subprocesses, so two workers on two
# cores halve it.
TEST_WORKERS ?= 2
test: install
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

sample-data: install
	$(BIN)/python -m dagster_and_etl.sample_data data/source 2018-01-22 --days 5

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

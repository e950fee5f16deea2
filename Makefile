# Everything installs on first use into .venv/, from the versions pinned in uv.lock.
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
PYTHON ?= python3
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS := never
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install dev dev-s3 dev-postgres load-day test test-fast lint format sample-data clean

install: $(VENV)/.installed

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (it is on the machines this project is built
# on), Python never caches the bytecode it compiles, and every process Dagster starts (dg, the webserver,
# the daemon, the code server, each run's own process) would compile Dagster's modules again: about 3 s.
$(VENV)/.installed: pyproject.toml uv.lock Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv sync --frozen --inexact --compile-bytecode --extra s3 --extra postgres
	touch $@

# The UI and the daemon on http://127.0.0.1:$(PORT), with schedules, sensors and runs kept in .dagster_home/.
# `dg dev` is what Dagster now recommends; `dagster dev -w workspace.yaml` starts the same code location.
# Alerts link to the UI on that port unless DAGSTER_UI_URL says otherwise.
PORT ?= 3000
dev: install
	mkdir -p "$(DAGSTER_HOME)"
	DAGSTER_UI_URL="$${DAGSTER_UI_URL:-http://127.0.0.1:$(PORT)}" $(BIN)/dg dev --port $(PORT)

# The same UI on a Dagster instance in PostgreSQL, configured as in production (deploy/dagster.yaml): a
# server of Debian's postgresql package on 127.0.0.1:$(PG_PORT), its cluster and password kept in .postgres/,
# PgBouncer in front of it on 127.0.0.1:$(PG_POOLER_PORT) (deploy/pgbouncer.ini), the Dagster home in
# .dagster_home_postgres/. Ctrl-C stops dg dev, then PgBouncer and the server; the state is kept.
# See src/dagster_and_etl/local_postgres.py.
PG_PORT ?= 5433
PG_POOLER_PORT ?= 6433
PG_CLUSTER ?= .postgres
PG_DAGSTER_HOME ?= .dagster_home_postgres
dev-postgres: install
	DAGSTER_UI_URL="$${DAGSTER_UI_URL:-http://127.0.0.1:$(PORT)}" $(BIN)/python -m dagster_and_etl.local_postgres \
		dev --port $(PG_PORT) --pooler-port $(PG_POOLER_PORT) --cluster $(PG_CLUSTER) --dagster-home $(PG_DAGSTER_HOME) -- --port $(PORT)

# One day of the scheduled pipeline, now: `make load-day DAY=2018-01-22`. The run is recorded in the same
# Dagster home as `make dev`'s, so its UI shows it (`dg launch` alone, without DAGSTER_HOME, would run on a
# temporary instance that is thrown away).
load-day: install
	@test -n "$(DAY)" || { echo "usage: make load-day DAY=YYYY-MM-DD" >&2; exit 2; }
	mkdir -p "$(DAGSTER_HOME)"
	$(BIN)/dg launch --job import_partition_job --partition "$(DAY)"

# The same UI, with SOURCE_DIR=s3://landing/incoming/ on moto's S3 server, in memory, on
# 127.0.0.1:$(S3_PORT), which starts holding the sample files and stops with dagster dev. The bucket
# notifies the queue landing-events on the same server, which the sensor reads (S3_MODE=listing: it lists
# the prefix instead). Its tables go to data/staging/s3.duckdb
# and its Dagster state to .dagster_home_s3/. See src/dagster_and_etl/local_s3.py.
S3_PORT ?= 5055
S3_MODE ?= notifications
dev-s3: install
	DAGSTER_UI_URL="$${DAGSTER_UI_URL:-http://127.0.0.1:$(PORT)}" \
		$(BIN)/python -m dagster_and_etl.local_s3 dev --port $(S3_PORT) --mode $(S3_MODE) -- -p $(PORT)

# Four test processes on two cores: most tests spend much of their time waiting (on dg dev, a settle
# window, a subprocess), so two more workers keep the cores busy. The slow tests are handed out first, one
# to each worker, and the quick ones one at a time around them (see tests/conftest.py). Each run prints its 15
# slowest tests. The tests' temporary folders (their source files, DuckDB files and Dagster instances) go
# to a folder of their own in memory (/dev/shm) where there is one: SQLite and DuckDB flush every commit
# to disk, and on a slow disk that doubles the suite's time.
TEST_WORKERS ?= 4
PYTEST = tmp=$$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	TMPDIR=$$tmp $(BIN)/pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 1 --durations=15

# Everything: what CI runs.
test: install
	$(PYTEST)

# The inner loop, for use while working: every test that starts no dg or dagster process and no browser
# (those are marked `slow`: the CLI, dg dev, the walkthrough in Chromium). Run `make test` before pushing.
test-fast: install
	$(PYTEST) -m "not slow"

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

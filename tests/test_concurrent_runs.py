"""Runs that meet at their loads under a real `dg dev` on SQLite, as `make dev` runs: the second run's
load waits for the first's slot in the pool `duckdb_write`, none fails on DuckDB's file lock, and every
partition holds exactly its own file's rows. tests/pool.py makes the meeting and judges it; the same
meeting on PostgreSQL, in the production layout, is in tests/test_deployment.py.
"""

import datetime as dt
from pathlib import Path

import pytest

from tests.dagster_dev_process import (
    dagster_cli,
    dagster_dev_fixture,  # noqa: F401  (the fixture `dagster_dev`)
    dagster_home_fixture,  # noqa: F401  (the fixture `dagster_home`)
    start_sensor,
)
from tests.pool import (
    LoadLatch,
    assert_the_loads_took_turns,
    load_latch_fixture,  # noqa: F401  (the fixture `load_latch`)
    meet_then_release,
    write_files,
)
from tests.support import rows_per_partition

pytestmark = pytest.mark.slow

RUNS = 2
DAILY_KEYS = [(dt.date(2018, 1, 22) + dt.timedelta(days=day)).isoformat() for day in range(RUNS)]
DYNAMIC_KEYS = [f"vendor-{number}" for number in range(RUNS)]


def test_two_days_backfilled_together_take_turns_at_the_pool(
    dagster_dev, dagster_home: Path, source_dir: Path, duckdb_path: Path, load_latch: LoadLatch
) -> None:
    """A backfill of two days through the CLI queues two runs together: the second run's load waits for
    the first's slot, both succeed with no failed or retried step, and each day holds its file's rows."""
    file_rows = write_files(source_dir, DAILY_KEYS)
    dagster_dev()

    backfill = ["job", "backfill", "-j", "import_partition_job", "--partitions", ",".join(DAILY_KEYS)]
    assert "Launched backfill job" in dagster_cli(dagster_home, *backfill, "--noprompt")

    meeting, runs = meet_then_release(dagster_home, load_latch, RUNS)
    assert sorted(run.tags["dagster/partition"] for run in runs) == DAILY_KEYS
    assert rows_per_partition(duckdb_path, "raw_partition_data") == file_rows
    assert_the_loads_took_turns(dagster_home, meeting, runs)


def test_two_files_found_in_one_tick_take_turns_at_the_pool(
    dagster_dev,
    dagster_home: Path,
    source_dir: Path,
    duckdb_path: Path,
    load_latch: LoadLatch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two files found in one sensor tick start two runs together: the second run's load waits for the
    first's slot, both succeed, and each file's partition holds exactly its rows."""
    file_rows = write_files(source_dir, DYNAMIC_KEYS)
    monkeypatch.setenv("SENSOR_MAX_BATCH", "1")  # one run per file, not one run for both
    start_sensor(dagster_dev(), "dynamic_sensor")

    meeting, runs = meet_then_release(dagster_home, load_latch, RUNS)
    assert sorted(run.tags["dagster/partition"] for run in runs) == DYNAMIC_KEYS
    assert rows_per_partition(duckdb_path, "raw_dynamic_partition_data") == file_rows
    assert_the_loads_took_turns(dagster_home, meeting, runs)

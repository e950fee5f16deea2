"""Many runs at once under a real `dagster dev`: both table assets are in the pool `duckdb_write`, whose
limit of 1 in the project's dagster.yaml makes the DuckDB loads of runs started together wait for each
other, so none fails on DuckDB's file lock and every partition holds exactly its own file's rows, once."""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from dagster_and_etl.defs.assets import DUCKDB_WRITE_POOL
from dagster_and_etl.sample_data import write_large_sample_file
from tests.dagster_dev_process import (
    dagster_cli,
    dagster_dev_fixture,  # noqa: F401  (the fixture `dagster_dev`)
    dagster_home_fixture,  # noqa: F401  (the fixture `dagster_home`)
    wait_for,
)
from tests.support import rows_per_partition

pytestmark = pytest.mark.slow

RUNS = 8
# Big enough that a load takes a while, so loads started together would overlap without the pool.
ROWS = 300_000
DAILY_KEYS = [(dt.date(2018, 1, 22) + dt.timedelta(days=day)).isoformat() for day in range(RUNS)]
DYNAMIC_KEYS = [f"vendor-{number}" for number in range(RUNS)]
# The step of each job that writes to DuckDB.
LOAD_STEP = {
    "import_partition_job": "duckdb_partition_table",
    "import_dynamic_partition_job": "duckdb_dynamic_partition_table",
}
# Events that would show a load failing, even one that a retry later covered up.
TROUBLE = {
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.STEP_UP_FOR_RETRY,
    dg.DagsterEventType.STEP_RESTARTED,
    dg.DagsterEventType.RUN_FAILURE,
}


def write_big_files(source_dir: Path, keys: list[str]) -> dict[str, int]:
    """One big file per key, each with its own row count: a partition loaded from another file shows."""
    rows = {}
    for number, key in enumerate(keys):
        rows[key] = ROWS + number
        write_large_sample_file(source_dir / f"{key}.csv", rows=rows[key], seed=number)
    return rows


def runs_when_all_finished(dagster_home: Path) -> list[dg.DagsterRun] | None:
    """All runs once `RUNS` of them have finished; fails at once on a failed or retried step."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = list(instance.get_runs())
        for run in runs:
            trouble = instance.all_logs(run.run_id, of_type=TROUBLE)
            assert not trouble, "\n".join(
                f"{run.job_name} {run.tags.get('dagster/partition')}: {entry.message}" for entry in trouble
            )
    if len(runs) < RUNS or not all(run.is_finished for run in runs):
        return None
    return runs


def partitions_run(runs: list[dg.DagsterRun], job_name: str) -> list[str]:
    return sorted(run.tags["dagster/partition"] for run in runs if run.job_name == job_name)


@dataclass(frozen=True)
class LoadWindow:
    """When one run's DuckDB step ran, from its start to its success, as the run's event log has it."""

    run: str
    started: float
    finished: float


@dataclass(frozen=True)
class PoolEvidence:
    windows: list[LoadWindow]  # ordered by start
    waited: list[str]  # the runs whose DuckDB step was blocked by the pool before it could start
    slot_count: int  # the pool's slots, as the instance has them at the end
    still_held_or_awaited: list  # the pool's slots still claimed and steps still waiting, at the end


def pool_evidence(dagster_home: Path, runs: list[dg.DagsterRun]) -> PoolEvidence:
    windows = []
    waited = []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in runs:
            name = f"{run.job_name}[{run.tags['dagster/partition']}]"
            events = [e for e in instance.all_logs(run.run_id) if e.step_key == LOAD_STEP[run.job_name]]
            starts = [e.timestamp for e in events if e.dagster_event_type == dg.DagsterEventType.STEP_START]
            ends = [e.timestamp for e in events if e.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS]
            assert len(starts) == len(ends) == 1, f"{name}: {len(starts)} step starts, {len(ends)} successes"
            windows.append(LoadWindow(name, starts[0], ends[0]))
            if any(
                e.dagster_event_type == dg.DagsterEventType.ENGINE_EVENT
                and e.message.startswith(f"Step blocked by limit for pool {DUCKDB_WRITE_POOL}")
                for e in events
            ):
                waited.append(name)
        pool = instance.event_log_storage.get_concurrency_info(DUCKDB_WRITE_POOL)
    return PoolEvidence(
        windows=sorted(windows, key=lambda window: window.started),
        waited=waited,
        slot_count=pool.slot_count,
        still_held_or_awaited=[*pool.claimed_slots, *pool.pending_steps],
    )


def assert_the_pool_serialized_the_loads(evidence: PoolEvidence) -> None:
    # The runs really met at their loads: some had to wait while another run held the pool's slot ...
    assert evidence.waited, "no DuckDB step ever waited for the pool: the loads did not meet"
    # ... and the loads really ran one at a time: no two DuckDB steps were ever in progress together.
    for earlier, later in zip(evidence.windows, evidence.windows[1:], strict=False):
        assert later.started >= earlier.finished, (
            f"the DuckDB steps of {earlier.run} and {later.run} overlapped by "
            f"{earlier.finished - later.started:.2f} s"
        )
    # The pool has its one slot, and nothing holds it or waits for it any more.
    assert evidence.slot_count == 1
    assert evidence.still_held_or_awaited == []


def test_eight_days_backfilled_at_once_all_load_exactly_with_no_duckdb_lock_error(
    dagster_dev, dagster_home: Path, source_dir: Path, duckdb_path: Path
) -> None:
    """A backfill of 8 days through the CLI queues 8 runs together: every run succeeds with no failed or
    retried step, each day holds exactly its file's rows, and the loads took turns on the pool."""
    file_rows = write_big_files(source_dir, DAILY_KEYS)
    dagster_dev()

    backfill = ["job", "backfill", "-j", "import_partition_job", "--partitions", ",".join(DAILY_KEYS)]
    assert "Launched backfill job" in dagster_cli(dagster_home, *backfill, "--noprompt")

    runs = wait_for(lambda: runs_when_all_finished(dagster_home), 300, f"{RUNS} runs to finish")
    assert [run.tags["dagster/partition"] for run in runs if run.status != dg.DagsterRunStatus.SUCCESS] == []
    assert partitions_run(runs, "import_partition_job") == DAILY_KEYS
    assert rows_per_partition(duckdb_path, "raw_partition_data") == file_rows
    assert_the_pool_serialized_the_loads(pool_evidence(dagster_home, runs))


def test_eight_files_found_by_the_sensor_at_once_all_load_exactly_with_no_duckdb_lock_error(
    dagster_dev, dagster_home: Path, source_dir: Path, duckdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 files found in one sensor tick start 8 runs together: every run succeeds, each file's partition
    holds exactly its rows, and the loads took turns on the pool."""
    file_rows = write_big_files(source_dir, DYNAMIC_KEYS)
    monkeypatch.setenv("SENSOR_MAX_BATCH", "1")  # one run per file, not one run for all eight
    dagster_dev()

    assert "Started sensor dynamic_sensor" in dagster_cli(dagster_home, "sensor", "start", "dynamic_sensor")

    runs = wait_for(lambda: runs_when_all_finished(dagster_home), 300, f"{RUNS} runs to finish")
    assert [run.tags["dagster/partition"] for run in runs if run.status != dg.DagsterRunStatus.SUCCESS] == []
    assert partitions_run(runs, "import_dynamic_partition_job") == DYNAMIC_KEYS
    assert rows_per_partition(duckdb_path, "raw_dynamic_partition_data") == file_rows
    assert_the_pool_serialized_the_loads(pool_evidence(dagster_home, runs))

"""Runs that meet at their loads under a real `dg dev`: both table assets are in the pool `duckdb_write`,
whose limit of 1 in the project's dagster.yaml makes the DuckDB load of one run wait while another's
holds the slot, so none fails on DuckDB's file lock and every partition holds exactly its own file's rows.

The meeting is made, not hoped for: the `dg dev` of these tests holds every load at a named point inside
its step (tests/hooks/sitecustomize.py), so the first load keeps the slot until the test has seen the
second run's load blocked by the pool, waiting for it. Then the test lets the loads go on.
"""

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from dagster_and_etl.defs.assets import DUCKDB_WRITE_POOL
from dagster_and_etl.sample_data import write_large_sample_file
from tests.dagster_dev_process import (
    PROJECT_ROOT,
    dagster_cli,
    dagster_dev_fixture,  # noqa: F401  (the fixture `dagster_dev`)
    dagster_home_fixture,  # noqa: F401  (the fixture `dagster_home`)
    start_sensor,
    wait_for,
)
from tests.support import rows_per_partition

pytestmark = pytest.mark.slow

RUNS = 2
ROWS = 1_000
DAILY_KEYS = [(dt.date(2018, 1, 22) + dt.timedelta(days=day)).isoformat() for day in range(RUNS)]
DYNAMIC_KEYS = [f"vendor-{number}" for number in range(RUNS)]
# The step of each job that writes to DuckDB.
LOAD_STEP = {
    "import_partition_job": "duckdb_partition_table",
    "import_dynamic_partition_job": "duckdb_dynamic_partition_table",
}
BLOCKED = f"Step blocked by limit for pool {DUCKDB_WRITE_POOL}"
# Events that would show a load failing, even one that a retry later covered up.
TROUBLE = {
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.STEP_UP_FOR_RETRY,
    dg.DagsterEventType.STEP_RESTARTED,
    dg.DagsterEventType.RUN_FAILURE,
}


class LoadLatch:
    """The folder where the loads of the test's `dg dev` say they are held, and the test lets them go."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def held(self) -> list[Path]:
        return sorted(self.folder.glob("held-*"))

    def release(self) -> None:
        (self.folder / "release").touch()


@pytest.fixture
def load_latch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LoadLatch:
    """Every `dg dev` the test starts holds its loads at the latch (see tests/hooks/sitecustomize.py)."""
    folder = tmp_path / "load-latch"
    folder.mkdir()
    hooks = str(PROJECT_ROOT / "tests" / "hooks")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [hooks, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("TEST_LOAD_LATCH", str(folder))
    return LoadLatch(folder)


def write_files(source_dir: Path, keys: list[str]) -> dict[str, int]:
    """One file per key, each with its own row count: a partition loaded from another file shows."""
    rows = {}
    for number, key in enumerate(keys):
        rows[key] = ROWS + number
        write_large_sample_file(source_dir / f"{key}.csv", rows=rows[key], seed=number)
    return rows


@dataclass(frozen=True)
class Meeting:
    """Two runs at the pool: one whose load holds the slot, one whose load waits for it."""

    holder: str
    waiter: str


def name(run: dg.DagsterRun) -> str:
    return f"{run.job_name}[{run.tags['dagster/partition']}]"


def meeting_at_the_pool(dagster_home: Path) -> Meeting | None:
    """The meeting once the instance shows it: the pool's one slot claimed by one run's load step, the
    other run's load step waiting for the slot, and that run told so in its event log."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = {run.run_id: run for run in instance.get_runs()}
        pool = instance.event_log_storage.get_concurrency_info(DUCKDB_WRITE_POOL)
        waiting = [step for step in pool.pending_steps if step.assigned_timestamp is None]
        if len(runs) != RUNS or len(pool.claimed_slots) != 1 or len(waiting) != 1:
            return None
        (claim,), (wait,) = pool.claimed_slots, waiting
        holder, waiter = runs[claim.run_id], runs[wait.run_id]
        assert claim.step_key == LOAD_STEP[holder.job_name] and wait.step_key == LOAD_STEP[waiter.job_name]
        told = instance.all_logs(waiter.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        if not any(entry.message.startswith(BLOCKED) for entry in told):
            return None
    return Meeting(holder=name(holder), waiter=name(waiter))


def runs_when_all_finished(dagster_home: Path) -> list[dg.DagsterRun] | None:
    """All runs once every one has finished; fails at once on a failed or retried step."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = list(instance.get_runs())
        for run in runs:
            trouble = instance.all_logs(run.run_id, of_type=TROUBLE)
            assert not trouble, "\n".join(f"{name(run)}: {entry.message}" for entry in trouble)
    if len(runs) < RUNS or not all(run.is_finished for run in runs):
        return None
    return runs


@dataclass(frozen=True)
class LoadWindow:
    """When one run's DuckDB step ran, from its start to its success, as the run's event log has it."""

    run: str
    started: float
    finished: float


def load_windows(dagster_home: Path, runs: list[dg.DagsterRun]) -> list[LoadWindow]:
    """Each run's DuckDB step, ordered by start."""
    windows = []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in runs:
            events = [e for e in instance.all_logs(run.run_id) if e.step_key == LOAD_STEP[run.job_name]]
            starts = [e.timestamp for e in events if e.dagster_event_type == dg.DagsterEventType.STEP_START]
            ends = [e.timestamp for e in events if e.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS]
            assert len(starts) == len(ends) == 1, f"{name(run)}: {len(starts)} starts, {len(ends)} successes"
            windows.append(LoadWindow(name(run), starts[0], ends[0]))
    return sorted(windows, key=lambda window: window.started)


def pool_left(dagster_home: Path) -> tuple[int, list]:
    """The pool's slot count, and whatever still claims a slot or waits for one."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        pool = instance.event_log_storage.get_concurrency_info(DUCKDB_WRITE_POOL)
    return pool.slot_count, [*pool.claimed_slots, *pool.pending_steps]


def meet_then_release(dagster_home: Path, latch: LoadLatch) -> tuple[Meeting, list[dg.DagsterRun]]:
    """Waits for the two runs to meet at the pool, checks that one load alone got past it, lets the
    loads go on, and returns the meeting and the runs once both have finished."""

    def met() -> Meeting | None:
        # The holder's step claims the slot a moment before its load reaches the latch.
        held = latch.held()
        assert len(held) <= 1, f"{len(held)} loads got past the pool together"
        return meeting_at_the_pool(dagster_home) if held else None

    meeting = wait_for(met, 300, "one load at the latch, holding the slot, and another waiting for it")
    assert len(latch.held()) == 1, "the waiting load got past the pool before the slot was free"
    latch.release()
    runs = wait_for(lambda: runs_when_all_finished(dagster_home), 300, f"{RUNS} runs to finish")
    assert len(latch.held()) == RUNS  # the waiting load reached the database once the slot was free
    return meeting, runs


def assert_the_loads_took_turns(dagster_home: Path, meeting: Meeting, runs: list[dg.DagsterRun]) -> None:
    assert [name(run) for run in runs if run.status != dg.DagsterRunStatus.SUCCESS] == []
    first, second = load_windows(dagster_home, runs)
    assert (first.run, second.run) == (meeting.holder, meeting.waiter)
    assert second.started >= first.finished, f"the loads of {first.run} and {second.run} overlapped"
    assert pool_left(dagster_home) == (1, [])  # one slot, and nothing holds it or waits for it any more


def test_two_days_backfilled_together_take_turns_at_the_pool(
    dagster_dev, dagster_home: Path, source_dir: Path, duckdb_path: Path, load_latch: LoadLatch
) -> None:
    """A backfill of two days through the CLI queues two runs together: the second run's load waits for
    the first's slot, both succeed with no failed or retried step, and each day holds its file's rows."""
    file_rows = write_files(source_dir, DAILY_KEYS)
    dagster_dev()

    backfill = ["job", "backfill", "-j", "import_partition_job", "--partitions", ",".join(DAILY_KEYS)]
    assert "Launched backfill job" in dagster_cli(dagster_home, *backfill, "--noprompt")

    meeting, runs = meet_then_release(dagster_home, load_latch)
    assert sorted(run.tags["dagster/partition"] for run in runs) == DAILY_KEYS
    assert rows_per_partition(duckdb_path, "raw_partition_data") == file_rows
    assert_the_loads_took_turns(dagster_home, meeting, runs)


@pytest.mark.parametrize("storage", ["sqlite", "postgres"], indirect=True)
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

    meeting, runs = meet_then_release(dagster_home, load_latch)
    assert sorted(run.tags["dagster/partition"] for run in runs) == DYNAMIC_KEYS
    assert rows_per_partition(duckdb_path, "raw_dynamic_partition_data") == file_rows
    assert_the_loads_took_turns(dagster_home, meeting, runs)

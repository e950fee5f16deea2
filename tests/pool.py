"""Runs that meet at their loads, for the tests that start a real Dagster: both table assets are in the
pool `duckdb_write`, whose limit of 1 (the project's dagster.yaml, and deploy/dagster.yaml) makes the DuckDB
load of one run wait while another's holds the slot, so none fails on DuckDB's file lock.

The meeting is made, not hoped for: with the `load_latch` fixture, every Dagster process the test starts
holds each load at a named point inside its step (tests/hooks/sitecustomize.py), so the first load keeps
the slot until the test has seen every other run's load blocked by the pool, waiting for it. Then the test
lets the loads go on, and judges them by the instance's records: the pool's claims, the runs' step events.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from dagster_and_etl.defs.assets import DUCKDB_WRITE_POOL
from dagster_and_etl.sample_data import write_large_sample_file
from tests.dagster_dev_process import PROJECT_ROOT, wait_for

ROWS = 1_000
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
    """The folder where the loads of the test's Dagster say they are held, and the test lets them go."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def held(self) -> list[Path]:
        return sorted(self.folder.glob("held-*"))

    def release(self) -> None:
        (self.folder / "release").touch()


@pytest.fixture(name="load_latch")
def load_latch_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LoadLatch:
    """Every Dagster process the test starts holds its loads at the latch: tests/hooks/sitecustomize.py."""
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
    """Runs at the pool: one whose load holds the slot, the others' loads waiting for it."""

    holder: str
    waiters: frozenset[str]


def name(run: dg.DagsterRun) -> str:
    return f"{run.job_name}[{run.tags['dagster/partition']}]"


def meeting_at_the_pool(dagster_home: Path, runs: int) -> Meeting | None:
    """The meeting once the instance shows it: `runs` runs, the pool's one slot claimed by one run's load
    step, every other run's load step waiting for the slot, and each of those runs told so in its log."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        by_id = {run.run_id: run for run in instance.get_runs()}
        pool = instance.event_log_storage.get_concurrency_info(DUCKDB_WRITE_POOL)
        waiting = [step for step in pool.pending_steps if step.assigned_timestamp is None]
        if len(by_id) != runs or len(pool.claimed_slots) != 1 or len(waiting) != runs - 1:
            return None
        (claim,) = pool.claimed_slots
        holder = by_id[claim.run_id]
        assert claim.step_key == LOAD_STEP[holder.job_name]
        waiters = [by_id[step.run_id] for step in waiting]
        for waiter, step in zip(waiters, waiting, strict=True):
            assert step.step_key == LOAD_STEP[waiter.job_name]
            told = instance.all_logs(waiter.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if not any(entry.message.startswith(BLOCKED) for entry in told):
                return None
    return Meeting(holder=name(holder), waiters=frozenset(map(name, waiters)))


def runs_when_all_finished(dagster_home: Path, runs: int) -> list[dg.DagsterRun] | None:
    """All runs once `runs` have finished; fails at once on a failed or retried step."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        found = list(instance.get_runs())
        for run in found:
            trouble = instance.all_logs(run.run_id, of_type=TROUBLE)
            assert not trouble, "\n".join(f"{name(run)}: {entry.message}" for entry in trouble)
    if len(found) < runs or not all(run.is_finished for run in found):
        return None
    return found


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


def meet_then_release(dagster_home: Path, latch: LoadLatch, runs: int) -> tuple[Meeting, list[dg.DagsterRun]]:
    """Waits for `runs` runs to meet at the pool, checks that one load alone got past it, lets the loads
    go on, and returns the meeting and the runs once all have finished."""

    def met() -> Meeting | None:
        # The holder's step claims the slot a moment before its load reaches the latch.
        held = latch.held()
        assert len(held) <= 1, f"{len(held)} loads got past the pool together"
        return meeting_at_the_pool(dagster_home, runs) if held else None

    meeting = wait_for(met, 300, "one load at the latch, holding the slot, and the others waiting for it")
    assert len(latch.held()) == 1, "a waiting load got past the pool before the slot was free"
    latch.release()
    finished = wait_for(lambda: runs_when_all_finished(dagster_home, runs), 300, f"{runs} runs to finish")
    assert len(latch.held()) == runs  # each waiting load reached the database once the slot was free
    return meeting, finished


def assert_the_loads_took_turns(dagster_home: Path, meeting: Meeting, runs: list[dg.DagsterRun]) -> None:
    """Every run succeeded, the holder loaded first, and no two loads overlapped."""
    assert [name(run) for run in runs if run.status != dg.DagsterRunStatus.SUCCESS] == []
    first, *others = load_windows(dagster_home, runs)
    assert first.run == meeting.holder
    assert {window.run for window in others} == meeting.waiters
    for before, after in zip([first, *others], others, strict=False):
        assert after.started >= before.finished, f"the loads of {before.run} and {after.run} overlapped"
    assert pool_left(dagster_home) == (1, [])  # one slot, and nothing holds it or waits for it any more

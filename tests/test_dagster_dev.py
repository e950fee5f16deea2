"""The project under a real `dagster dev`: the daemon ticks the sensor and runs each file version once."""

import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorTick, InstigatorType, TickStatus

from dagster_and_etl.defs import assets
from tests.dagster_dev_process import (
    dagster_cli,
    dagster_dev_fixture,  # noqa: F401  (the fixture `dagster_dev`)
    dagster_home_fixture,  # noqa: F401  (the fixture `dagster_home`)
    start_sensor,
    wait_for,
)
from tests.support import rows_per_partition, with_bad_value, write_source_file
from tests.webhook import Webhook

pytestmark = pytest.mark.slow

SENSOR = "dynamic_sensor"
TABLE = assets.duckdb_dynamic_partition_table.key
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
COMPLETED_TICK = [TickStatus.SKIPPED, TickStatus.SUCCESS, TickStatus.FAILURE]


def finished_runs(dagster_home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
    assert not [run for run in runs if run.status == dg.DagsterRunStatus.FAILURE]
    return [run for run in runs if run.status == dg.DagsterRunStatus.SUCCESS]


def all_runs(dagster_home: Path) -> list[dg.DagsterRun]:
    """Every run of the instance, oldest first, whatever its status."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return list(reversed(instance.get_runs()))


def all_finished(dagster_home: Path, count: int) -> list[dg.DagsterRun] | None:
    """The instance's runs once there are at least `count` and every one has finished, else None."""
    runs = all_runs(dagster_home)
    return runs if len(runs) >= count and all(run.is_finished for run in runs) else None


def sensor_ticks_since(dagster_home: Path, since: float) -> list[InstigatorTick]:
    """The sensor's ticks that started after `since` and have completed, oldest first."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        states = [
            state
            for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
            if state.instigator_name == SENSOR
        ]
        assert states, f"{SENSOR} has no state in the instance: was it started?"
        ticks = {
            tick.tick_id: tick
            for state in states
            for tick in instance.get_ticks(
                state.instigator_origin_id, state.selector_id, after=since, statuses=COMPLETED_TICK
            )
        }
    return sorted((tick for tick in ticks.values() if tick.timestamp > since), key=lambda t: t.timestamp)


def wait_for_quiet_ticks(dagster_home: Path, since: float, count: int = 2) -> list[InstigatorTick]:
    """Waits for `count` sensor ticks started after `since` to complete; none of them may request a run."""

    def enough() -> list[InstigatorTick] | None:
        ticks = sensor_ticks_since(dagster_home, since)
        return ticks if len(ticks) >= count else None

    ticks = wait_for(enough, 120, f"{count} sensor ticks after the runs finished")
    assert [(tick.status, list(tick.run_ids)) for tick in ticks] == [(TickStatus.SKIPPED, [])] * len(ticks)
    return ticks


def loaded_partitions(dagster_home: Path) -> list[str]:
    """The partition of each materialization of the event-driven table, sorted: one per version loaded."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.fetch_materializations(TABLE, limit=1000).records
    return sorted(record.partition_key or "" for record in records)


def test_sensor_under_dagster_dev_runs_each_file_version_once_across_restarts(
    dagster_dev, dagster_home: Path, source_dir: Path, duckdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")  # the project's default batch size: one run for each tick's files
    for seed, key in enumerate(("2018-01-22", "2018-01-23", "vendor-a")):
        write_source_file(source_dir, f"{key}.csv", seed=seed)
    start_sensor(dagster_dev(), SENSOR)

    wait_for(lambda: len(finished_runs(dagster_home)) >= 1, 180, "the first run")
    assert loaded_partitions(dagster_home) == ["2018-01-22", "2018-01-23", "vendor-a"]
    assert rows_per_partition(duckdb_path) == {"2018-01-22": 10, "2018-01-23": 10, "vendor-a": 10}

    # A restart keeps the sensor on and its cursor; a reset cursor asks again only for known versions.
    dagster_dev.stop_last()
    dagster_cli(dagster_home, "sensor", "cursor", "dynamic_sensor", "--delete")
    # A new version of the last file registered, and a new file: next to each other, one run loads both.
    write_source_file(source_dir, "vendor-a.csv", seed=7, text=None)
    write_source_file(source_dir, "2018-01-24.csv", seed=8)
    dagster_dev()

    wait_for(lambda: len(finished_runs(dagster_home)) >= 2, 180, "a second successful run")
    # Two more sensor ticks, started once every run had finished, request nothing; nothing else started.
    wait_for_quiet_ticks(dagster_home, since=time.time())
    runs = all_runs(dagster_home)
    assert len(runs) == len(finished_runs(dagster_home)) == 2
    assert len({run.tags["dagster/run_key"] for run in runs}) == 2
    # Each version loaded once: vendor-a twice (two versions), every other file once.
    assert loaded_partitions(dagster_home) == [
        "2018-01-22",
        "2018-01-23",
        "2018-01-24",
        "vendor-a",
        "vendor-a",
    ]
    assert rows_per_partition(duckdb_path) == {
        "2018-01-22": 10,
        "2018-01-23": 10,
        "2018-01-24": 10,
        "vendor-a": 10,
    }


def partition_status(dagster_home: Path, keys: list[str]) -> dict[str, str | None]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        status = instance.get_status_by_partition(TABLE, keys, assets.dynamic_partitions_def)
        assert status is not None
        materialized = instance.get_materialized_partitions(TABLE)
    done = dg.AssetPartitionStatus.MATERIALIZED
    assert materialized == {key for key, value in status.items() if value == done}
    return {key: None if value is None else value.value for key, value in status.items()}


def step_failure(dagster_home: Path, run_id: str) -> tuple[str, dict]:
    """The failed step's description and metadata in a run."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        (record,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    event = record.dagster_event
    assert event is not None and event.step_key == "duckdb_dynamic_partition_table"
    failure = event.step_failure_data.user_failure_data
    assert failure is not None, event.step_failure_data.error
    return failure.description or "", {key: value.value for key, value in failure.metadata.items()}


def alert_sensor_ticks(dagster_home: Path) -> list[InstigatorTick] | None:
    """The alert sensor's completed ticks, once there is one."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            if state.instigator_name == "alert_sensor":
                ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id)
                return [tick for tick in ticks if tick.status in COMPLETED_TICK] or None
    return None


def test_backlog_with_two_bad_files_under_dagster_dev_fails_only_their_partitions_and_alerts_once(
    dagster_dev,
    dagster_home: Path,
    source_dir: Path,
    duckdb_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    webhook: Webhook,
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")  # the project's default batch size, not the tests' 1
    monkeypatch.setenv("ALERT_WEBHOOK_URL", webhook.url)
    keys = [f"feed-{index:02d}" for index in range(8)]
    bad_date, non_numeric = "feed-03", "feed-06"
    bad_text = {
        bad_date: with_bad_value(3, line=7, column=0, value="2018/02/30"),
        non_numeric: with_bad_value(6, line=4, column=3, value="twelve"),
    }
    expected_problem = {
        bad_date: '1 bad line(s): line 7, column date: Error when converting column "date".'
        ' Could not convert string "2018/02/30"',
        non_numeric: '1 bad line(s): line 4, column spend: Error when converting column "spend".'
        ' Could not convert string "twelve"',
    }
    first_mtime = time.time() - 100  # registered, and so batched, oldest file first: in key order
    for index, key in enumerate(keys):
        write_source_file(source_dir, f"{key}.csv", bad_text.get(key), seed=index, mtime=first_mtime + index)
    good = [key for key in keys if key not in bad_text]
    port = dagster_dev()
    # The alert sensor first, so that its first tick (which reads failures from then on) comes before.
    start_sensor(port, "alert_sensor")
    wait_for(lambda: alert_sensor_ticks(dagster_home), 120, "the alert sensor's first tick")
    start_sensor(port, SENSOR)

    (batch,) = wait_for(lambda: all_finished(dagster_home, 1), 180, "the batch run to finish")
    assert batch.status == dg.DagsterRunStatus.FAILURE
    assert (batch.tags[RANGE_START], batch.tags[RANGE_END]) == (keys[0], keys[-1])
    assert partition_status(dagster_home, keys) == {
        key: "FAILED" if key in bad_text else "MATERIALIZED" for key in keys
    }
    description, metadata = step_failure(dagster_home, batch.run_id)
    assert description.startswith("2 of 8 file(s) could not be loaded; the others were. First: ")
    first = [key for key in bad_text if f"{source_dir / key}.csv cannot be loaded: " in description]
    assert len(first) == 1 and expected_problem[first[0]] in description
    failed = {entry["partition"]: entry for entry in metadata["failed_partitions"]}
    assert sorted(failed) == sorted(bad_text)
    for key, entry in failed.items():
        assert entry["path"] == f"{source_dir / key}.csv"
        assert entry["problem"].startswith(expected_problem[key])
    assert rows_per_partition(duckdb_path) == {key: 10 for key in good}

    # One alert for the run, naming both bad files and what is wrong with them, without their values.
    (text,) = wait_for(lambda: webhook.texts, 120, "the alert to reach the webhook")
    assert text.startswith("import_dynamic_partition_job failed: 2 file(s) could not be loaded")
    for key, line, column in ((bad_date, 7, "date"), (non_numeric, 4, "spend")):
        assert f"Partition: {key} · File: {source_dir / key}.csv\n" in text
        assert f"Error: 1 bad line(s): line {line}, column {column} (CAST)\n" in text
    assert "2018/02/30" not in text and "twelve" not in text
    # The link leads to this UI: `make dev PORT=...` points DAGSTER_UI_URL at its own port.
    assert text.endswith(f"Run: http://127.0.0.1:{port}/runs/{batch.run_id}")
    # Its ticks also evaluate the event-driven table's freshness, stored with no run: nothing is late.
    check = dg.AssetCheckKey(TABLE, "files_loaded_in_time")
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        summary = instance.event_log_storage.get_asset_check_summary_records([check])[check]
    record = summary.last_completed_check_execution_record
    assert record is not None and record.run_id == "" and record.event is not None
    assert record.event.asset_check_evaluation.passed

    # The bad date is mended: the rewritten file is loaded by itself; the other bad file stays failed.
    write_source_file(source_dir, f"{bad_date}.csv", seed=3)
    batch, fix = wait_for(lambda: all_finished(dagster_home, 2), 180, "the mended file's run to finish")
    assert fix.status == dg.DagsterRunStatus.SUCCESS
    assert fix.tags["dagster/partition"] == bad_date
    wait_for_quiet_ticks(dagster_home, since=time.time())
    runs = all_runs(dagster_home)
    assert [run.run_id for run in runs] == [batch.run_id, fix.run_id]
    run_keys = [run.tags["dagster/run_key"] for run in runs]
    assert len(set(run_keys)) == len(run_keys) == 2
    status = partition_status(dagster_home, keys)
    assert [key for key, value in status.items() if value == "MATERIALIZED"] == sorted([*good, bad_date])
    assert [key for key, value in status.items() if value != "MATERIALIZED"] == [non_numeric]
    assert status[non_numeric] == "FAILED"
    assert rows_per_partition(duckdb_path) == {key: 10 for key in sorted([*good, bad_date])}
    # The alert sensor ticked again since the mended file's run; it said nothing more.
    since = time.time()
    wait_for(
        lambda: [t for t in alert_sensor_ticks(dagster_home) or [] if t.timestamp > since],
        120,
        "an alert sensor tick",
    )
    assert len(webhook.received) == 1

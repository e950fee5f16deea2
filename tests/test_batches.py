"""Many partitions per run: the sensor turns a backlog into few runs, and one run loads many partitions."""

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from dagster_and_etl.defs import assets
from dagster_and_etl.ingest.sensor_cursor import SensorCursor
from dagster_and_etl.ingest.sensor_plan import TickRules, plan_tick
from dagster_and_etl.ingest.source_folder import list_source_files
from dagster_and_etl.sample_data import HEADER, sample_csv
from dagster_and_etl.testing import SensorDaemon
from tests.landing import BucketLanding, FolderLanding
from tests.support import SensorTicks, rows_per_partition, wait_until_settled, write_source_file
from tests.test_exactly_once import GOOD_ROW, loads_per_version

SECOND = 1_000_000_000
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def write_backlog(folder: Path, count: int) -> list[str]:
    """`count` small files whose mtimes run from oldest to newest in the order of the returned keys."""
    keys = [f"file-{index:05d}" for index in range(count)]
    for index, key in enumerate(reversed(keys)):  # written newest first, so name order != write order
        path = folder / f"{key}.csv"
        path.write_text(HEADER + "\n" + '"2018/09/28","1.0000","2.0000","3.0000","4.0000","5.0000"')
        mtime = 1_500_000_000 + count - index
        os.utime(path, (mtime, mtime))
    return keys


def settled_plan(folder: Path, registered: list[str], cursor: SensorCursor | None = None, **limits):
    listing = list_source_files(folder)
    now_ns = max(f.changed_ns for f in listing.files) + 10 * SECOND
    return plan_tick(
        listing, cursor or SensorCursor(), TickRules(**limits), registered_keys=registered, now_ns=now_ns
    )


def test_backlog_becomes_full_batches_oldest_first(source_dir: Path) -> None:
    keys = write_backlog(source_dir, 1_200)
    plan = settled_plan(source_dir, [], max_batch=500)
    assert [len(batch.files) for batch in plan.batches] == [500, 500, 200]
    assert plan.new_partition_keys == keys  # registered oldest first
    assert [key for batch in plan.batches for key in batch.partition_keys] == keys
    assert [(b.first_key, b.last_key) for b in plan.batches] == [
        ("file-00000", "file-00499"),
        ("file-00500", "file-00999"),
        ("file-01000", "file-01199"),
    ]


def test_runs_per_tick_limit_leaves_the_rest_for_the_next_tick(
    source_dir: Path, sensor: SensorTicks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSOR_MAX_BATCH", "100")
    monkeypatch.setenv("SENSOR_MAX_RUNS_PER_TICK", "3")
    keys = write_backlog(source_dir, 450)
    wait_until_settled(source_dir)

    seen: list[str] = []
    runs = []
    for _ in range(3):
        result = sensor.tick()
        runs.append(len(result.run_requests or []))
        seen += sensor.keys_of(result)
    assert runs == [3, 2, 0]
    assert seen == keys  # every file once, oldest first
    assert sensor.registered_keys == keys


def test_batch_run_keys_are_stable_for_the_same_file_versions(
    source_dir: Path, sensor: SensorTicks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSOR_MAX_BATCH", "100")
    write_backlog(source_dir, 250)
    wait_until_settled(source_dir)
    first = [request.run_key for request in sensor.tick().run_requests]
    assert len(first) == len(set(first)) == 3

    sensor.cursor = None  # lost: every file looks changed, batched the same way
    again = sensor.tick()
    assert [request.run_key for request in again.run_requests] == first
    assert not again.dynamic_partitions_requests


def test_changed_files_are_batched_over_ranges_of_changed_keys_only(source_dir: Path) -> None:
    keys = write_backlog(source_dir, 10)
    listing = list_source_files(source_dir)
    horizon = max(f.changed_ns for f in listing.files)
    for key in ("file-00002", "file-00003", "file-00004", "file-00008"):
        (source_dir / f"{key}.csv").write_text(sample_csv(seed=1))

    plan = settled_plan(source_dir, keys, cursor=SensorCursor(horizon), max_batch=100)

    # An unchanged file between two changed ones is not loaded again: it breaks the range.
    assert [batch.partition_keys for batch in plan.batches] == [
        ["file-00002", "file-00003", "file-00004"],
        ["file-00008"],
    ]
    assert plan.new_partition_keys == []


def range_tags(first: str, last: str) -> dict[str, str]:
    return {RANGE_START: first, RANGE_END: last}


def test_one_run_loads_a_range_of_dynamic_partitions_in_one_transaction(
    defs, instance, source_dir: Path, duckdb_path: Path
) -> None:
    keys = ["a", "b", "c", "d"]
    instance.add_dynamic_partitions("dynamic_partition", keys)
    for seed, key in enumerate(keys):
        write_source_file(source_dir, f"{key}.csv", sample_csv(seed=seed, rows=seed + 1))
    job = defs.resolve_job_def("import_dynamic_partition_job")

    result = job.execute_in_process(instance=instance, tags=range_tags("a", "c"))

    assert result.success
    assert rows_per_partition(duckdb_path, "raw_dynamic_partition_data") == {"a": 1, "b": 2, "c": 3}
    materialized = instance.get_materialized_partitions(assets.duckdb_dynamic_partition_table.key)
    assert materialized == {"a", "b", "c"}


def test_a_bad_file_in_a_batch_fails_only_its_own_partition(
    defs, instance, source_dir: Path, duckdb_path: Path
) -> None:
    keys = ["a", "b", "c"]
    instance.add_dynamic_partitions("dynamic_partition", keys)
    for seed, key in enumerate(keys):
        write_source_file(source_dir, f"{key}.csv", sample_csv(seed=seed))
    job = defs.resolve_job_def("import_dynamic_partition_job")
    assert job.execute_in_process(instance=instance, tags=range_tags("a", "c")).success
    before = rows_per_partition(duckdb_path, "raw_dynamic_partition_data")

    write_source_file(source_dir, "a.csv", sample_csv(seed=7, rows=3))
    bad = write_source_file(source_dir, "b.csv", HEADER + '\n"2018/13/01","1.0","1.0","1.0","1.0","1.0"')
    result = job.execute_in_process(instance=instance, tags=range_tags("a", "c"), raise_on_error=False)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert f"{bad} cannot be loaded: 1 bad line(s): line 2, column date" in (
        failure.step_failure_data.user_failure_data.description
    )
    # a's new version is loaded, b keeps its old rows, c was unchanged and is left as it was.
    assert rows_per_partition(duckdb_path, "raw_dynamic_partition_data") == {**before, "a": 3}
    table = assets.duckdb_dynamic_partition_table.key
    status = instance.get_status_by_partition(table, keys, assets.dynamic_partitions_def)
    assert {key: status[key].value for key in keys} == {
        "a": "MATERIALIZED",
        "b": "FAILED",
        "c": "MATERIALIZED",
    }


def test_a_year_of_daily_partitions_is_one_run(defs, instance, source_dir: Path, duckdb_path: Path) -> None:
    days = [f"2018-{month:02d}-{day:02d}" for month in (2, 3) for day in range(1, 29)]
    for seed, day in enumerate(days):
        write_source_file(source_dir, f"{day}.csv", sample_csv(seed=seed, rows=2))
    job = defs.resolve_job_def("import_partition_job")

    result = job.execute_in_process(instance=instance, tags=range_tags(days[0], days[-1]))

    assert result.success
    assert rows_per_partition(duckdb_path, "raw_partition_data") == {day: 2 for day in days}
    assert len(instance.get_runs()) == 1


def test_a_backfill_runs_days_in_one_run_and_files_in_batches_of_the_sensors_size(defs) -> None:
    for asset in (assets.import_partition_file, assets.duckdb_partition_table):
        assert asset.backfill_policy == dg.BackfillPolicy.single_run()
    for asset in (assets.import_dynamic_partition_file, assets.duckdb_dynamic_partition_table):
        # SENSOR_MAX_BATCH as it was when the code location loaded: its default, 500, in `make test`.
        assert asset.backfill_policy == dg.BackfillPolicy.multi_run(max_partitions_per_run=500)


def test_a_batch_is_cut_by_bytes_and_a_file_larger_than_the_limit_runs_alone(source_dir: Path) -> None:
    keys = write_backlog(source_dir, 6)
    big = source_dir / f"{keys[2]}.csv"
    big.write_text(big.read_text() + "\n" + "\n".join([big.read_text().splitlines()[1]] * 50))
    os.utime(big, (1_500_000_003, 1_500_000_003))  # still third oldest
    small = (source_dir / f"{keys[0]}.csv").stat().st_size

    plan = settled_plan(source_dir, [], max_batch=500, max_batch_bytes=2 * small + 1)

    assert big.stat().st_size > 2 * small + 1
    assert [batch.partition_keys for batch in plan.batches] == [keys[0:2], keys[2:3], keys[3:5], keys[5:6]]
    assert all(
        sum(f.size for f in batch.files) <= 2 * small + 1 for batch in plan.batches if len(batch.files) > 1
    )


@pytest.mark.parametrize(
    ("limit", "runs"),
    [(None, [["a", "b", "c", "d", "e"]]), ("small", [["a", "b"], ["c"], ["d", "e"]])],
    ids=["default_limit", "small_limit"],
)
def test_runs_cut_by_bytes_load_every_file_once(
    landing: FolderLanding | BucketLanding,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    duckdb_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    limit: str | None,
    runs: list[list[str]],
) -> None:
    """Five files, the third four times the size of the others: with the project's 1 GiB they load in one
    run; with room for two small files a run, in three, the large file alone."""
    monkeypatch.delenv("SENSOR_MAX_BATCH")
    rows = {"a": 10, "b": 10, "c": 40, "d": 10, "e": 10}
    texts = {key: "\n".join([HEADER, *[GOOD_ROW] * count]) for key, count in rows.items()}
    if limit is not None:
        monkeypatch.setenv("SENSOR_MAX_BATCH_BYTES", str(2 * len(texts["a"]) + 1))
    for key, text in texts.items():
        landing.write(f"{key}.csv", text)
        time.sleep(0.01)  # oldest first: a to e (a bucket's whole seconds order them by name)
    landing.wait_until_settled()
    daemon = SensorDaemon(instance, defs)

    (tick,) = [tick for tick in daemon.run_until_idle() if tick.launched]

    assert [daemon.keys_of(request) for request in tick.launched] == runs
    assert all(run.success for run in tick.runs)
    assert rows_per_partition(duckdb_path) == rows
    assert set(loads_per_version(duckdb_path).values()) == {1}

"""Each file version loaded exactly once, with the sensor driven tick by tick as the daemon drives it.

Every test ticks `dynamic_sensor` through `SensorDaemon`: the partitions a tick asks for are added, a run
key already launched is never launched again, and every launched run is executed. What is asserted is
what a user of `dagster dev` would see: which runs started, what each partition holds in DuckDB, what the
load history says and which partitions Dagster shows materialized or failed.

Each case that means the same for both sources runs twice, through the `landing` fixture: files in a
local folder, and objects under an S3 bucket prefix. A few stay folder-only because they rely on what
a bucket has no equivalent of: a file's mtime set by hand, a replacement told apart only by its inode,
a file that changes while it is read, permissions that make one file unreadable.
"""

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from dagster_and_etl.defs import assets
from dagster_and_etl.defs.partitions import dynamic_partitions_def
from dagster_and_etl.defs.resources import SourceFiles
from dagster_and_etl.ingest.source_file_scan import count_data_rows
from dagster_and_etl.sample_data import HEADER, sample_csv
from dagster_and_etl.testing import SensorDaemon, launched_partition_keys
from tests.landing import BucketLanding, FolderLanding
from tests.support import holding_database, rows_per_partition, wait_until_settled, write_source_file

Landing = FolderLanding | BucketLanding

GOOD_ROW = '"2018/09/28","264.7700","33597290.0000","270.2600","278.0000","260.5550"'
TABLE = dg.AssetKey("duckdb_dynamic_partition_table")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Batching as the project ships it, and small enough that limits bite with a dozen files.
DEFAULT_LIMITS = {"SENSOR_MAX_BATCH": None, "SENSOR_MAX_RUNS_PER_TICK": None}
SMALL_LIMITS = {"SENSOR_MAX_BATCH": "2", "SENSOR_MAX_RUNS_PER_TICK": "2"}


def history(database: Path, key: str) -> list[tuple]:
    """The partition's load history, oldest first: (source, version, data_rows, run_id)."""
    with duckdb.connect(str(database), read_only=True) as conn:
        return conn.execute(
            "SELECT source, version, data_rows, run_id FROM load_history"
            " WHERE table_name = 'raw_dynamic_partition_data' AND partition_key = ? ORDER BY load_id",
            [key],
        ).fetchall()


def loads_per_version(database: Path) -> dict[tuple[str, str], int]:
    with duckdb.connect(str(database), read_only=True) as conn:
        found = conn.execute(
            "SELECT partition_key, version, count(*) FROM load_history"
            " WHERE table_name = 'raw_dynamic_partition_data' GROUP BY ALL"
        ).fetchall()
    return {(key, version): count for key, version, count in found}


def current_versions() -> dict[str, str]:
    """The version of every file in SOURCE_DIR (a folder or a bucket prefix), as its source reports it."""
    return {f.partition_key: f.version for f in SourceFiles().source.list().files}


def status(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, str]:
    found = instance.get_status_by_partition(TABLE, keys, dynamic_partitions_def)
    return {key: (found[key].value if found[key] else "MISSING") for key in keys}


def set_limits(monkeypatch: pytest.MonkeyPatch, limits: dict[str, str | None]) -> None:
    for name, value in limits.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


@pytest.fixture
def daemon(instance: dg.DagsterInstance, defs: dg.Definitions) -> SensorDaemon:
    return SensorDaemon(instance, defs)


def bad_file_text(bad_line: int, rows: int = 10) -> str:
    """A file whose data line at file line `bad_line` has a date that is not YYYY/MM/DD."""
    lines = [HEADER, *[GOOD_ROW] * rows]
    lines[bad_line - 1] = GOOD_ROW.replace('"2018/09/28"', '"28-09-2018"')
    return "\n".join(lines)


def test_runs_per_tick_limit_never_stalls_the_sensor(
    landing: Landing, duckdb_path: Path, daemon: SensorDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_limits(monkeypatch, DEFAULT_LIMITS)
    keys = [f"k{index:02d}" for index in range(12)]
    for seed, key in enumerate(keys):
        landing.write(f"{key}.csv", seed=seed)
    landing.wait_until_settled()
    daemon.run_until_idle()  # loaded in one run, with the project's default limits
    assert sorted(rows_per_partition(duckdb_path)) == keys
    set_limits(monkeypatch, SMALL_LIMITS)

    # Six files changed last key first, no two adjacent, and one new file. (Objects in a bucket are
    # stamped in whole seconds, so there the six may share one change time.)
    changed = ["k11", "k09", "k07", "k05", "k03", "k01"]
    for seed, key in enumerate(changed, start=100):
        landing.write(f"{key}.csv", sample_csv(seed=seed, rows=3))
        time.sleep(0.01)  # each a little later than the one before
    landing.write("k12.csv", sample_csv(seed=200, rows=4))
    landing.wait_until_settled()

    ticks = daemon.run_until_idle(max_ticks=10)

    assert sorted(launched_partition_keys(ticks)) == sorted([*changed, "k12"])
    # Six runs: no two changed keys are adjacent, but k11 and the new k12 are. Two a tick: three ticks,
    # then an idle one.
    assert [len(tick.launched) for tick in ticks] == [2, 2, 2, 0]
    assert all(run.success for tick in ticks for run in tick.runs)
    expected = {key: 10 for key in keys} | {key: 3 for key in changed} | {"k12": 4}
    assert rows_per_partition(duckdb_path) == expected
    assert set(loads_per_version(duckdb_path).values()) == {1}
    versions = current_versions()
    assert sorted(versions) == sorted([*keys, "k12"])
    assert all(history(duckdb_path, key)[-1][1] == version for key, version in versions.items())


def test_a_daemon_restarted_mid_backlog_loads_every_file_once(
    landing: Landing,
    duckdb_path: Path,
    daemon: SensorDaemon,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_limits(monkeypatch, SMALL_LIMITS)
    keys = [f"b{index:02d}" for index in range(10)]
    for seed, key in enumerate(keys):
        landing.write(f"{key}.csv", seed=seed)
    landing.wait_until_settled()
    first = daemon.tick(execute=False)  # two runs of two files launched; the daemon stops before they run
    assert len(first.launched) == 2 and first.runs == []

    # Restarted: the cursor stored with the last tick, and the runs already in the instance.
    restarted = SensorDaemon(instance, defs, cursor=daemon.cursor)
    for request in first.launched:  # the runs launched before the stop are run as the daemon resumes
        assert restarted.run(request).success
    ticks = restarted.run_until_idle()

    assert sorted(first.partition_keys + launched_partition_keys(ticks)) == keys  # each once
    assert rows_per_partition(duckdb_path) == dict.fromkeys(keys, 10)
    assert set(loads_per_version(duckdb_path).values()) == {1}
    assert status(instance, keys) == dict.fromkeys(keys, "MATERIALIZED")


@pytest.mark.parametrize("limits", [DEFAULT_LIMITS, SMALL_LIMITS], ids=["default_batching", "small_batches"])
def test_a_bad_file_holds_back_only_itself_and_loads_once_fixed(
    landing: Landing,
    duckdb_path: Path,
    daemon: SensorDaemon,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    limits: dict[str, str | None],
) -> None:
    set_limits(monkeypatch, limits)
    keys = [f"file-{index:02d}" for index in range(6)]  # in runs of two: file-03 with file-02
    for seed, key in enumerate(keys):  # oldest first in key order: written one after another
        text = bad_file_text(bad_line=7) if key == "file-03" else sample_csv(seed=seed)
        landing.write(f"{key}.csv", text)
    landing.wait_until_settled()

    ticks = daemon.run_until_idle()

    good = [key for key in keys if key != "file-03"]
    assert sorted(launched_partition_keys(ticks)) == keys  # each once
    assert rows_per_partition(duckdb_path) == {key: 10 for key in good}
    assert status(instance, keys) == {key: "MATERIALIZED" for key in good} | {"file-03": "FAILED"}
    (failed_run,) = [run for tick in ticks for run in tick.runs if not run.success]
    (failure,) = failed_run.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert f"{landing.location('file-03.csv')} cannot be loaded" in description
    assert "line 7, column date" in description
    assert [e for e in failed_run.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY] == []

    landing.write("file-03.csv", sample_csv(seed=99, rows=6))  # the file fixed
    landing.wait_until_settled()
    fixed = daemon.run_until_idle()

    assert launched_partition_keys(fixed) == ["file-03"]
    assert rows_per_partition(duckdb_path) == {key: 10 for key in good} | {"file-03": 6}
    assert status(instance, keys) == {key: "MATERIALIZED" for key in keys}
    assert set(loads_per_version(duckdb_path).values()) == {1}


def test_two_bad_files_and_a_batch_of_only_bad_files(
    landing: Landing,
    duckdb_path: Path,
    daemon: SensorDaemon,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SENSOR_MAX_BATCH", "3")
    keys = [f"f{index}" for index in range(9)]
    bad = {"f1": 3, "f4": 2, "f6": 2, "f7": 5, "f8": 4}  # f6..f8: one whole batch of bad files
    for seed, key in enumerate(keys):  # oldest first in key order: written one after another
        text = bad_file_text(bad[key]) if key in bad else sample_csv(seed=seed)
        landing.write(f"{key}.csv", text)
    landing.wait_until_settled()

    ticks = daemon.run_until_idle()

    good = [key for key in keys if key not in bad]
    assert rows_per_partition(duckdb_path) == {key: 10 for key in good}
    assert status(instance, keys) == {key: "MATERIALIZED" for key in good} | {key: "FAILED" for key in bad}
    failures = [
        event.step_failure_data.user_failure_data
        for tick in ticks
        for run in tick.runs
        for event in run.get_step_failure_events()
    ]
    named = {
        entry["partition"]: entry["problem"]
        for f in failures
        for entry in f.metadata["failed_partitions"].value
    }
    assert sorted(named) == sorted(bad)
    for key, line in bad.items():
        assert f"line {line}, column date" in named[key]
    assert daemon.tick().launched == []  # bad files are not tried again until they change


def test_a_file_name_with_glob_characters_loads_exactly_its_own_file(
    landing: Landing,
    duckdb_path: Path,
    daemon: SensorDaemon,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")
    names = {"report[1]": 2, "report1": 3, "a*b": 4, "ab": 5, "q?": 6, "qq": 7, "x{1,2}": 8}
    for key, rows in names.items():
        landing.write(f"{key}.csv", sample_csv(seed=rows, rows=rows))
    landing.wait_until_settled()

    ticks = daemon.run_until_idle()

    assert all(run.success for tick in ticks for run in tick.runs)
    assert rows_per_partition(duckdb_path) == names
    # Each partition holds its own file's rows, not those of a file its name matches as a pattern: the
    # prices DuckDB reads from a copy of the text written, under a plain name, are the prices loaded.
    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        prices = dict(
            conn.execute(
                "SELECT partition_key, list(share_price ORDER BY date)"
                " FROM raw_dynamic_partition_data GROUP BY 1"
            ).fetchall()
        )
        expected = {}
        for index, (key, rows) in enumerate(names.items()):
            written = tmp_path / f"written-{index}.csv"
            written.write_text(sample_csv(seed=rows, rows=rows))
            expected[key] = conn.execute(
                "SELECT list(share_price ORDER BY date) FROM read_csv(?, header = true,"
                " dateformat = '%Y/%m/%d', columns = {'date': 'DATE', 'share_price': 'DECIMAL(18, 4)',"
                " 'amount': 'VARCHAR', 'spend': 'VARCHAR', 'shift': 'VARCHAR', 'spread': 'VARCHAR'})",
                [str(written)],
            ).fetchone()[0]
    assert prices == expected
    assert len({tuple(values) for values in expected.values()}) == len(names)  # no two files alike


def test_a_reset_cursor_requests_nothing_already_loaded(
    landing: Landing, duckdb_path: Path, daemon: SensorDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSOR_MAX_BATCH", "3")
    for wave in range(4):  # batches that grew over several ticks
        for index in range(2):
            landing.write(f"w{wave}-{index}.csv", seed=wave * 10 + index)
        landing.wait_until_settled()
        assert len(daemon.tick().partition_keys) == 2
    loaded = loads_per_version(duckdb_path)
    assert len(loaded) == 8

    daemon.cursor = None  # the cursor deleted: `dagster sensor cursor dynamic_sensor --delete`
    rebuilt = daemon.tick()

    assert rebuilt.launched == [] and rebuilt.duplicates == []
    assert "No new or modified files" in rebuilt.skip_reason
    landing.write("w1-0.csv", sample_csv(seed=77, rows=2))  # one file changes after
    landing.wait_until_settled()
    assert daemon.tick().partition_keys == ["w1-0"]
    assert daemon.tick().launched == []
    assert sum(loads_per_version(duckdb_path).values()) == 9


def test_a_reset_cursor_while_a_load_holds_the_database_waits_instead_of_guessing(
    landing: Landing, duckdb_path: Path, daemon: SensorDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")
    for seed in range(3):
        landing.write(f"f{seed}.csv", seed=seed)
    landing.wait_until_settled()
    daemon.run_until_idle()
    daemon.cursor = None

    with holding_database(duckdb_path):
        busy = daemon.tick()
        assert busy.launched == [] and busy.result.dynamic_partitions_requests == []
        assert "Waiting to read the load history" in busy.skip_reason
        assert str(duckdb_path) in busy.skip_reason
        assert daemon.cursor is None  # still no cursor: the next tick tries again

    after = daemon.tick()
    assert after.launched == [] and "No new or modified files" in after.skip_reason
    assert sum(loads_per_version(duckdb_path).values()) == 3


def test_a_replacement_with_the_same_size_and_mtime_is_loaded(
    source_dir: Path, duckdb_path: Path, daemon: SensorDaemon
) -> None:
    """Folder only: a bucket has no mtime to set and no inode; there a replacement is a new ETag."""
    first = write_source_file(source_dir, "f.csv", HEADER + "\n" + GOOD_ROW, mtime=1_516_000_000)
    wait_until_settled(source_dir)
    (run_key,) = [request.run_key for request in daemon.tick().launched]

    replacement = source_dir / ".f.csv.tmp"
    replacement.write_text(HEADER + "\n" + GOOD_ROW.replace("264.7700", "111.1100"))
    os.utime(replacement, (1_516_000_000, 1_516_000_000))
    assert replacement.stat().st_size == first.stat().st_size
    replacement.replace(first)  # `cp -p` or `rsync -t` of a file with the same size and mtime
    wait_until_settled(source_dir)

    again = daemon.tick()
    assert again.partition_keys == ["f"] and again.launched[0].run_key != run_key
    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        assert conn.execute("SELECT share_price::VARCHAR FROM raw_dynamic_partition_data").fetchall() == [
            ("111.1100",)
        ]


def test_a_rewrite_is_loaded_once_per_version_and_the_same_bytes_again_only_in_a_folder(
    landing: Landing, duckdb_path: Path, daemon: SensorDaemon
) -> None:
    landing.write("f.csv", HEADER + "\n" + GOOD_ROW)
    landing.wait_until_settled()
    (first,) = daemon.tick().launched
    first_version = current_versions()["f"]

    same_size = HEADER + "\n" + GOOD_ROW.replace("264.7700", "111.1100")
    assert len(same_size) == len(HEADER + "\n" + GOOD_ROW)
    landing.write("f.csv", same_size)  # other bytes, the same size
    landing.wait_until_settled()
    changed = daemon.tick()

    assert changed.partition_keys == ["f"] and changed.launched[0].run_key != first.run_key
    assert all(run.success for run in changed.runs)
    second_version = current_versions()["f"]
    assert second_version != first_version
    assert [row[1] for row in history(duckdb_path, "f")] == [first_version, second_version]

    # The same bytes written again: a new version of a file (its stat changed), but the same version
    # of an object (its ETag is the digest of its bytes), which is not loaded twice.
    landing.write("f.csv", same_size)
    landing.wait_until_settled()
    again = daemon.tick()

    third_version = current_versions()["f"]
    if landing.kind == "bucket":
        assert third_version == second_version
        assert again.launched == [] and again.duplicates == []
        assert "No new or modified files" in again.skip_reason
    else:
        assert third_version != second_version
        assert again.partition_keys == ["f"] and all(run.success for run in again.runs)
    assert [row[1] for row in history(duckdb_path, "f")] == list(
        dict.fromkeys([first_version, second_version, third_version])
    )
    assert set(loads_per_version(duckdb_path).values()) == {1}
    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        assert conn.execute("SELECT share_price::VARCHAR FROM raw_dynamic_partition_data").fetchall() == [
            ("111.1100",)
        ]
    assert daemon.tick().launched == []


def test_existing_files_are_registered_but_not_loaded_when_include_existing_is_false(
    landing: Landing,
    duckdb_path: Path,
    daemon: SensorDaemon,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SENSOR_INCLUDE_EXISTING_FILES", "false")
    for seed, key in enumerate(["old-a", "old-b", "old-c"]):
        landing.write(f"{key}.csv", seed=seed)
    landing.wait_until_settled()

    first = daemon.tick()

    assert first.launched == []
    assert sorted(daemon.instance.get_dynamic_partitions("dynamic_partition")) == ["old-a", "old-b", "old-c"]
    assert f"registered the 3 file(s) already in {landing.uri} as partitions" in first.skip_reason
    assert not duckdb_path.exists()

    landing.write("new.csv", seed=9)
    landing.write("old-b.csv", sample_csv(seed=8, rows=4))  # an existing file changes
    landing.wait_until_settled()
    later = daemon.run_until_idle()

    assert sorted(launched_partition_keys(later)) == ["new", "old-b"]
    assert rows_per_partition(duckdb_path) == {"new": 10, "old-b": 4}
    assert status(instance, ["old-a", "old-c"]) == {"old-a": "MISSING", "old-c": "MISSING"}
    assert daemon.tick().launched == []  # the untouched files stay unloaded, ready for a backfill


def test_a_deleted_file_keeps_its_rows_and_fails_no_run(
    landing: Landing, duckdb_path: Path, daemon: SensorDaemon, defs: dg.Definitions, monkeypatch
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")
    for seed, key in enumerate(["a", "b", "c"]):
        landing.write(f"{key}.csv", seed=seed)
    landing.wait_until_settled()
    (first,) = daemon.tick().launched
    landing.delete("b.csv")  # processed files archived elsewhere

    assert daemon.tick().launched == []
    # Running the whole range again, as a re-execution would, loads nothing and fails nothing.
    again = daemon.run(first)
    assert again.success
    assert rows_per_partition(duckdb_path) == {"a": 10, "b": 10, "c": 10}
    assert sum(loads_per_version(duckdb_path).values()) == 3


def test_transient_failures_are_retried_by_the_dynamic_job_and_bad_files_never(defs: dg.Definitions) -> None:
    job = defs.resolve_job_def("import_dynamic_partition_job")
    policy = job.op_retry_policy
    assert policy is not None and policy.max_retries == 3 and policy.delay == 30
    assert policy.backoff == dg.Backoff.EXPONENTIAL


def test_a_bad_file_removed_lets_its_failed_run_be_re_executed(
    landing: Landing, duckdb_path: Path, daemon: SensorDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")
    for seed, key in enumerate(["a", "b", "c"]):  # oldest first in key order: written one after another
        text = bad_file_text(bad_line=2) if key == "b" else sample_csv(seed=seed)
        landing.write(f"{key}.csv", text)
    landing.wait_until_settled()
    (failed,) = daemon.tick().runs
    assert not failed.success
    landing.delete("b.csv")  # the bad file taken away instead of fixed

    (request,) = daemon.ticks[-1].launched
    again = daemon.run(request, re_executing=failed.run_id)  # "Re-execute" on the failed run

    assert again.success
    assert rows_per_partition(duckdb_path) == {"a": 10, "c": 10}
    assert sum(loads_per_version(duckdb_path).values()) == 2  # a and c were not loaded twice
    assert daemon.tick().launched == []


def test_a_reset_retries_the_files_of_a_run_that_ended_without_loading_them(
    landing: Landing, duckdb_path: Path, daemon: SensorDaemon, instance: dg.DagsterInstance, monkeypatch
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")
    landing.write("a.csv", seed=1)
    landing.write("b.csv", seed=2)
    landing.wait_until_settled()
    (request,) = daemon.tick(execute=False).launched
    # The daemon created the run, and it was cancelled before it started (or failed for good).
    job = daemon.defs.resolve_job_def("import_dynamic_partition_job")
    run = instance.create_run_for_job(
        job,
        status=dg.DagsterRunStatus.NOT_STARTED,
        tags={**request.tags, "dagster/run_key": request.run_key, "dagster/sensor_name": "dynamic_sensor"},
    )
    instance.report_run_canceled(run)
    assert daemon.tick().launched == []  # the sensor counts them as requested

    daemon.cursor = None  # reset: what is not loaded is requested again, under a run key not yet used
    retried = daemon.tick()

    (again,) = retried.launched
    assert again.run_key == f"{request.run_key}~2"
    assert rows_per_partition(duckdb_path) == {"a": 10, "b": 10}
    assert daemon.tick().launched == []


def test_a_file_whose_mtime_is_in_the_future_is_loaded(
    source_dir: Path, duckdb_path: Path, daemon: SensorDaemon, defs: dg.Definitions, instance
) -> None:
    """Folder only: an object's LastModified is set by the storage, never by whoever uploads it."""
    tomorrow = time.time() + 86_400  # `cp -p` from a host whose clock is ahead, or `touch -d tomorrow`
    write_source_file(source_dir, "ahead.csv", seed=1, mtime=tomorrow)
    write_source_file(source_dir, "2018-01-22.csv", seed=2, mtime=tomorrow)
    wait_until_settled(source_dir)

    assert daemon.tick().partition_keys == ["2018-01-22", "ahead"]
    daily = defs.resolve_job_def("import_partition_job").execute_in_process(
        partition_key="2018-01-22", instance=instance, raise_on_error=False
    )
    assert daily.success
    assert rows_per_partition(duckdb_path) == {"2018-01-22": 10, "ahead": 10}


def test_a_file_that_changes_through_every_attempt_holds_back_only_itself(
    source_dir: Path, duckdb_path: Path, defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    """Folder only: a load reads one whole version of an object, fetched in one GET, never a changing one."""
    keys = ["a", "busy", "c"]
    instance.add_dynamic_partitions("dynamic_partition", keys)
    for seed, key in enumerate(keys):
        write_source_file(source_dir, f"{key}.csv", seed=seed)
    # The dynamic job with its retry policy made quick: one retry, at once.
    job = dg.Definitions(
        assets=[assets.import_dynamic_partition_file, assets.duckdb_dynamic_partition_table],
        jobs=[
            dg.define_asset_job(
                "quick_retry_job",
                selection=[assets.import_dynamic_partition_file, assets.duckdb_dynamic_partition_table],
                op_retry_policy=dg.RetryPolicy(max_retries=1, delay=0),
            )
        ],
        resources=defs.resources,
    ).resolve_job_def("quick_retry_job")
    stop = threading.Event()

    def keep_writing() -> None:
        with (source_dir / "busy.csv").open("a") as busy:
            while not stop.is_set():
                busy.write("\n" + GOOD_ROW)
                busy.flush()
                time.sleep(0.001)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        result = job.execute_in_process(
            instance=instance,
            tags={"dagster/asset_partition_range_start": "a", "dagster/asset_partition_range_end": "c"},
            raise_on_error=False,
        )
    finally:
        stop.set()
        writer.join()

    loaded = rows_per_partition(duckdb_path)
    assert loaded["a"] == 10 and loaded["c"] == 10  # the others are loaded whatever busy.csv does
    assert set(loads_per_version(duckdb_path).values()) == {1}
    if "busy" in loaded:  # a quiet moment let one attempt read it whole
        assert result.success
    else:  # it changed on every attempt: the step failed, retryably, and was retried
        assert not result.success
        retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
        assert len(retries) == 1
        (failure,) = result.get_step_failure_events()
        assert "busy.csv changed on every attempt" in failure.step_failure_data.user_failure_data.description
    rerun = job.execute_in_process(
        instance=instance, partition_key="busy", raise_on_error=False
    )  # once it is finished
    assert rerun.success
    assert rows_per_partition(duckdb_path)["busy"] == count_data_rows(source_dir / "busy.csv")


UNREADABLE_LOAD = """
import sys
from pathlib import Path
import duckdb
from dagster_and_etl.ingest.duckdb_tables import RawTable
from dagster_and_etl.ingest.duckdb_load import load_partitions
folder = Path(sys.argv[1])
with duckdb.connect(str(folder / "data.duckdb")) as conn:
    report = load_partitions(conn, RawTable.DYNAMIC, {k: folder / f"{k}.csv" for k in ("a", "locked", "c")})
print(sorted(report.loaded), {k: e.problem for k, e in report.failed.items()})
"""


def test_a_file_that_cannot_be_read_holds_back_only_itself(tmp_path: Path) -> None:
    """Folder only: file permissions, which the S3 server on loopback has no equivalent of."""
    folder = tmp_path / "landing"
    folder.mkdir()
    for seed, key in enumerate(["a", "locked", "c"]):
        write_source_file(folder, f"{key}.csv", seed=seed)
    (folder / "locked.csv").chmod(0)
    command = [sys.executable, "-c", UNREADABLE_LOAD, str(folder)]
    if os.geteuid() == 0:
        # Root reads any file through its capabilities to override permissions: load as root without
        # them, so that the checkout and its environment stay reachable wherever they are.
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to drop root's capabilities")
        caps = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *command]
    output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=PROJECT_ROOT).stdout
    assert output.strip() == "['a', 'c'] {'locked': 'it cannot be read: Permission denied'}"

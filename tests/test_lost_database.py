"""A database lost, replaced, emptied or restored from an older backup, then the sensor's cursor reset:
every file whose current version the database does not hold is loaded again, once.

The sensor is driven through `SensorDaemon` with the project's default batching, so the reset forms the
same batch, and so the same run key, as the first load: the case in which the daemon's run-key
deduplication would otherwise swallow the request.
"""

import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from dagster_and_etl.testing import SensorDaemon
from tests.support import rows_per_partition, run_daily, wait_until_settled, write_source_file

FILES = ["a", "b", "c"]


def loads_per_version(database: Path) -> list[int]:
    with duckdb.connect(str(database), read_only=True) as conn:
        return [
            count
            for (count,) in conn.execute(
                "SELECT count(*) FROM load_history WHERE table_name = 'raw_dynamic_partition_data'"
                " GROUP BY partition_key, version"
            ).fetchall()
        ]


def delete_database(database: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    database.unlink()
    return database


def point_at_a_new_database(database: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    new = tmp_path / "elsewhere" / "new.duckdb"
    monkeypatch.setenv("DUCKDB_DATABASE", str(new))
    return new


def drop_the_tables(database: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    with duckdb.connect(str(database)) as conn:
        conn.execute("DROP TABLE raw_dynamic_partition_data")
        conn.execute("DROP TABLE load_history")
    return database


LOSSES: dict[str, Callable[[Path, pytest.MonkeyPatch, Path], Path]] = {
    "database_file_deleted": delete_database,
    "duckdb_database_pointed_at_a_new_file": point_at_a_new_database,
    "tables_dropped": drop_the_tables,
}


@pytest.fixture
def daemon(instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> SensorDaemon:
    monkeypatch.delenv("SENSOR_MAX_BATCH")  # the project's batching: three files, one run
    return SensorDaemon(instance)


def load_the_folder(source_dir: Path, daemon: SensorDaemon) -> str:
    """The first enable: the three files loaded by one run; its run key."""
    for seed, name in enumerate(FILES):
        write_source_file(source_dir, f"{name}.csv", seed=seed)
    wait_until_settled(source_dir)
    first = daemon.tick()
    (request,) = first.launched
    assert all(run.success for run in first.runs)
    return request.run_key


@pytest.mark.parametrize("lose", LOSSES.values(), ids=LOSSES.keys())
def test_after_the_database_is_lost_a_reset_loads_every_file_again_once(
    source_dir: Path,
    duckdb_path: Path,
    daemon: SensorDaemon,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    lose: Callable[[Path, pytest.MonkeyPatch, Path], Path],
) -> None:
    first_key = load_the_folder(source_dir, daemon)
    database = lose(duckdb_path, monkeypatch, tmp_path)

    daemon.cursor = None  # the remedy docs/how-it-works.md gives: reset the sensor's cursor
    ticks = daemon.run_until_idle()

    (request,) = ticks[0].launched  # the same batch as the first load, under a key not yet used
    assert request.run_key == f"{first_key}~2"
    assert all(run.success for tick in ticks for run in tick.runs)
    assert rows_per_partition(database) == {name: 10 for name in FILES}
    assert loads_per_version(database) == [1, 1, 1]


def test_after_an_older_backup_is_restored_a_reset_loads_what_it_lacks_once(
    source_dir: Path, duckdb_path: Path, daemon: SensorDaemon, tmp_path: Path
) -> None:
    load_the_folder(source_dir, daemon)
    backup = tmp_path / "backup.duckdb"
    shutil.copy(duckdb_path, backup)
    write_source_file(source_dir, "d.csv", seed=9)
    wait_until_settled(source_dir)
    (later,) = daemon.tick().launched
    shutil.copy(backup, duckdb_path)  # the backup, taken before d was loaded, restored

    daemon.cursor = None
    ticks = daemon.run_until_idle()

    (request,) = ticks[0].launched
    assert request.run_key == f"{later.run_key}~2"
    assert rows_per_partition(duckdb_path) == {name: 10 for name in [*FILES, "d"]}
    assert loads_per_version(duckdb_path) == [1, 1, 1, 1]


@pytest.mark.parametrize("lose", LOSSES.values(), ids=LOSSES.keys())
def test_without_a_reset_the_tick_says_the_database_lacks_what_was_loaded_until_the_cursor_is_reset(
    source_dir: Path,
    duckdb_path: Path,
    daemon: SensorDaemon,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    lose: Callable[[Path, pytest.MonkeyPatch, Path], Path],
) -> None:
    load_the_folder(source_dir, daemon)
    assert "No new or modified files" in daemon.tick().skip_reason  # the database holds its loads
    database = lose(duckdb_path, monkeypatch, tmp_path)

    told = daemon.tick()
    assert told.launched == []
    assert told.skip_reason.startswith(f"The DuckDB database {database} does not hold partition 'c'")
    assert "reset this sensor's cursor" in told.skip_reason
    write_source_file(source_dir, "e.csv", seed=5)  # a new file still loads meanwhile
    wait_until_settled(source_dir)
    assert daemon.tick().partition_keys == ["e"]
    assert "does not hold partition 'c'" in daemon.tick().skip_reason  # still said, though e loaded

    daemon.cursor = None
    daemon.run_until_idle()
    assert rows_per_partition(database) == {name: 10 for name in [*FILES, "e"]}
    assert "No new or modified files" in daemon.tick().skip_reason


def test_an_older_backup_restored_without_a_reset_is_told(
    source_dir: Path, duckdb_path: Path, daemon: SensorDaemon, tmp_path: Path
) -> None:
    load_the_folder(source_dir, daemon)
    backup = tmp_path / "backup.duckdb"
    shutil.copy(duckdb_path, backup)
    write_source_file(source_dir, "d.csv", seed=9)
    wait_until_settled(source_dir)
    assert daemon.tick().partition_keys == ["d"]
    assert "No new or modified files" in daemon.tick().skip_reason
    shutil.copy(backup, duckdb_path)

    assert "does not hold partition 'd'" in daemon.tick().skip_reason


@pytest.mark.parametrize("value", ["inf", "1e400", "-inf", "nan"])
def test_settle_seconds_that_is_not_a_finite_number_fails_naming_the_setting(
    source_dir: Path,
    daemon: SensorDaemon,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
) -> None:
    write_source_file(source_dir, "2018-01-22.csv", seed=1)
    monkeypatch.setenv("SENSOR_SETTLE_SECONDS", value)

    with pytest.raises(Exception, match=f"SENSOR_SETTLE_SECONDS must be a finite number.*{value!r}"):
        daemon.tick()

    daily = run_daily(daemon.defs, instance, "2018-01-22")
    assert not daily.success
    (failure,) = daily.get_step_failure_events()  # at once: no retry mends a setting
    assert "SENSOR_SETTLE_SECONDS must be a finite number" in str(failure.step_failure_data)


def test_a_reset_before_the_first_run_has_started_does_not_launch_it_twice(
    source_dir: Path, daemon: SensorDaemon, instance: dg.DagsterInstance
) -> None:
    for seed, name in enumerate(FILES):
        write_source_file(source_dir, f"{name}.csv", seed=seed)
    wait_until_settled(source_dir)
    (request,) = daemon.tick(execute=False).launched
    job = daemon.defs.resolve_job_def("import_dynamic_partition_job")
    instance.create_run_for_job(  # the daemon created the run; it has not started yet
        job,
        status=dg.DagsterRunStatus.NOT_STARTED,
        tags={**request.tags, "dagster/run_key": request.run_key, "dagster/sensor_name": "dynamic_sensor"},
    )

    daemon.cursor = None
    again = daemon.tick(execute=False)

    assert again.launched == []  # that run will load the files: its key is kept, and deduplicated
    assert [duplicate.run_key for duplicate in again.duplicates] == [request.run_key]

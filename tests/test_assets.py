"""The two pipelines run end to end: real CSV files in, real DuckDB tables out, one Dagster run each."""

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from dagster_and_etl.defs.resources import SourceFiles, StagingDatabase
from dagster_and_etl.sample_data import sample_csv
from dagster_and_etl.settings import PROJECT_ROOT
from tests.support import REFERENCE_DATA, run_daily, write_source_file

REFERENCE_FILES = sorted(REFERENCE_DATA.glob("*.csv"))

DAILY = "raw_partition_data"
DYNAMIC = "raw_dynamic_partition_data"
DAY_A, DAY_B = "2018-01-22", "2018-01-23"


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    return " ".join(event.step_failure_data.error.message for event in result.get_step_failure_events())


def table_rows(database: Path, table: str, key: str | None = None) -> list[tuple]:
    """Every row of `table` (or of one partition), in a stable order; [] when the table does not exist."""
    with duckdb.connect(str(database), read_only=True) as conn:
        tables = {name for (name,) in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if table not in tables:
            return []
        where, params = ("WHERE partition_key = ?", [key]) if key is not None else ("", [])
        return conn.execute(f"SELECT * FROM {table} {where} ORDER BY ALL", params).fetchall()


def expected_rows(text: str, key: str) -> list[tuple]:
    """The rows a file's text should load as, parsed independently with the csv module."""
    records = list(csv.reader(text.splitlines()))[1:]
    rows = [
        (dt.datetime.strptime(date, "%Y/%m/%d").date(), *map(Decimal, numbers), key)
        for date, *numbers in records
    ]
    return sorted(rows)


def test_daily_partition_loads_exactly_its_files_rows_with_typed_columns(
    defs, instance, source_dir, duckdb_path
):
    text = sample_csv(seed=1, rows=10)
    write_source_file(source_dir, f"{DAY_A}.csv", text)

    assert run_daily(defs, instance, DAY_A).success

    rows = table_rows(duckdb_path, DAILY)
    assert rows == expected_rows(text, DAY_A)
    assert len(rows) == 10
    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        types = {name: kind for name, kind, *_ in conn.execute(f"DESCRIBE {DAILY}").fetchall()}
    assert types == {
        "date": "DATE",
        **{name: "DECIMAL(18,4)" for name in ("share_price", "amount", "spend", "shift", "spread")},
        "partition_key": "VARCHAR",
    }


def test_rerunning_a_partition_three_times_leaves_one_copy_of_its_rows(
    defs, instance, source_dir, duckdb_path
):
    text = sample_csv(seed=2, rows=7)
    write_source_file(source_dir, f"{DAY_A}.csv", text)

    for _ in range(3):
        assert run_daily(defs, instance, DAY_A).success

    assert table_rows(duckdb_path, DAILY) == expected_rows(text, DAY_A)


def test_rerun_after_the_file_changed_replaces_its_rows_even_with_fewer_rows(
    defs, instance, source_dir, duckdb_path
):
    write_source_file(source_dir, f"{DAY_A}.csv", sample_csv(seed=3, rows=10))
    assert run_daily(defs, instance, DAY_A).success
    assert len(table_rows(duckdb_path, DAILY, DAY_A)) == 10

    shorter = sample_csv(seed=4, rows=4)
    write_source_file(source_dir, f"{DAY_A}.csv", shorter)
    assert run_daily(defs, instance, DAY_A).success

    assert table_rows(duckdb_path, DAILY) == expected_rows(shorter, DAY_A)


def test_rerunning_one_partition_leaves_its_neighbour_identical(defs, instance, source_dir, duckdb_path):
    write_source_file(source_dir, f"{DAY_A}.csv", sample_csv(seed=5))
    write_source_file(source_dir, f"{DAY_B}.csv", sample_csv(seed=6))
    assert run_daily(defs, instance, DAY_A).success
    assert run_daily(defs, instance, DAY_B).success
    neighbour_before = table_rows(duckdb_path, DAILY, DAY_B)

    changed = sample_csv(seed=7, rows=3)
    write_source_file(source_dir, f"{DAY_A}.csv", changed)
    assert run_daily(defs, instance, DAY_A).success

    assert table_rows(duckdb_path, DAILY, DAY_B) == neighbour_before
    assert table_rows(duckdb_path, DAILY, DAY_A) == expected_rows(changed, DAY_A)


def test_partitions_whose_files_hold_the_same_dates_keep_their_own_rows(
    defs, instance, source_dir, duckdb_path
):
    # The rows' dates say nothing about the partition: replacing by `date` would wipe the other day.
    text = sample_csv(seed=8, rows=6)
    write_source_file(source_dir, f"{DAY_A}.csv", text)
    write_source_file(source_dir, f"{DAY_B}.csv", text)
    assert run_daily(defs, instance, DAY_A).success
    assert run_daily(defs, instance, DAY_B).success

    assert run_daily(defs, instance, DAY_A).success

    assert table_rows(duckdb_path, DAILY, DAY_A) == expected_rows(text, DAY_A)
    assert table_rows(duckdb_path, DAILY, DAY_B) == expected_rows(text, DAY_B)
    assert len(table_rows(duckdb_path, DAILY)) == 12


@pytest.mark.parametrize("key", ["2018-01-22", "vendor-a_batch 7"])
def test_dynamic_partition_loads_its_file_into_the_dynamic_table(
    defs, instance, source_dir, duckdb_path, key
):
    text = sample_csv(seed=9, rows=5)
    write_source_file(source_dir, f"{key}.csv", text)
    instance.add_dynamic_partitions("dynamic_partition", [key])

    job = defs.resolve_job_def("import_dynamic_partition_job")
    assert job.execute_in_process(partition_key=key, instance=instance).success

    assert table_rows(duckdb_path, DYNAMIC) == expected_rows(text, key)
    assert table_rows(duckdb_path, DAILY) == []


def test_a_file_gone_before_its_run_fails_its_partition_and_a_re_execution_skips_it(
    defs, instance, source_dir, duckdb_path
):
    instance.add_dynamic_partitions("dynamic_partition", ["here", "gone"])
    write_source_file(source_dir, "here.csv", sample_csv(seed=10))
    job = defs.resolve_job_def("import_dynamic_partition_job")
    assert job.execute_in_process(partition_key="here", instance=instance).success
    loaded = table_rows(duckdb_path, DYNAMIC)

    result = job.execute_in_process(partition_key="gone", instance=instance, raise_on_error=False)

    assert not result.success  # listed, then deleted before the run read it: the partition fails, saying so
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.message
    assert f"{source_dir / 'gone.csv'} cannot be loaded: it is not in the source" in message
    assert table_rows(duckdb_path, DYNAMIC) == loaded

    # Re-executed after the file was taken away on purpose: nothing to load, and nothing fails.
    again = job.execute_in_process(
        partition_key="gone",
        instance=instance,
        tags={"dagster/parent_run_id": result.run_id, "dagster/root_run_id": result.run_id},
        raise_on_error=False,
    )
    assert again.success
    assert again.asset_materializations_for_node("duckdb_dynamic_partition_table") == []
    logs = instance.all_logs(again.run_id)
    assert any(f"{source_dir / 'gone.csv'} is not there" in (entry.user_message or "") for entry in logs)
    assert table_rows(duckdb_path, DYNAMIC, "gone") == []
    assert table_rows(duckdb_path, DYNAMIC) == loaded


def test_duckdb_settings_apply_to_every_connection(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("DUCKDB_MEMORY_LIMIT", "123MB")
    monkeypatch.setenv("DUCKDB_THREADS", "1")
    monkeypatch.setenv("DUCKDB_TEMP_DIRECTORY", str(tmp_path / "spill"))
    with dg.build_resources({"database": StagingDatabase()}) as started:  # as a run starts it
        database = started.database
    with database.get_connection() as conn:
        found = dict(
            conn.execute(
                "SELECT name, value FROM duckdb_settings()"
                " WHERE name IN ('memory_limit', 'threads', 'temp_directory', 'enable_progress_bar')"
            ).fetchall()
        )
    assert found["enable_progress_bar"] == "false"  # no bars in a long load's run output
    assert found["threads"] == "1"
    assert found["temp_directory"] == str(tmp_path / "spill")
    assert found["memory_limit"] in ("117.3 MiB", "123.0 MB")  # DuckDB shows it in its own units
    with database.read_now() as conn:
        assert conn.execute("SELECT current_setting('threads')").fetchone() == (1,)


def test_the_database_is_dagster_duckdbs_resource_and_keeps_its_connection_config(duckdb_path) -> None:
    resource = StagingDatabase(connection_config={"threads": 2, "default_order": "desc"})
    assert isinstance(resource, DuckDBResource)
    with dg.build_resources({"database": resource}) as started, started.database.get_connection() as conn:
        found = dict(conn.execute("SELECT name, value FROM duckdb_settings()").fetchall())

    assert started.database.database == str(duckdb_path)  # the file came from $DUCKDB_DATABASE
    assert found["threads"] == "2"
    assert found["default_order"] == "DESC"


def test_a_database_no_run_or_tick_started_names_no_file_and_says_so() -> None:
    unstarted = StagingDatabase().get_connection()
    with pytest.raises(dg.DagsterInvariantViolationError, match=r"dg\.build_resources"), unstarted:
        pass


def test_renamed_column_fails_the_run_and_keeps_the_partitions_rows(defs, instance, source_dir, duckdb_path):
    good = sample_csv(seed=11)
    write_source_file(source_dir, f"{DAY_A}.csv", good)
    assert run_daily(defs, instance, DAY_A).success

    write_source_file(source_dir, f"{DAY_A}.csv", sample_csv(seed=12).replace('"spend"', '"spent"', 1))
    result = run_daily(defs, instance, DAY_A)

    assert result.success is False
    message = failure_message(result)
    assert f"{DAY_A}.csv" in message
    assert "missing spend" in message
    assert "unexpected spent" in message
    assert table_rows(duckdb_path, DAILY) == expected_rows(good, DAY_A)


def test_unparseable_value_fails_the_load_and_keeps_the_partitions_rows(
    defs, instance, source_dir, duckdb_path
):
    # The header is fine, so the file asset passes; the load itself fails and must roll back.
    good = sample_csv(seed=13)
    write_source_file(source_dir, f"{DAY_A}.csv", good)
    assert run_daily(defs, instance, DAY_A).success

    bad_row = '"2018/09/03","n/a","1.0000","1.0000","1.0000","1.0000"'
    write_source_file(source_dir, f"{DAY_A}.csv", sample_csv(seed=14) + "\n" + bad_row)
    result = run_daily(defs, instance, DAY_A)

    assert result.success is False
    assert result.get_failed_step_keys() == {"duckdb_partition_table"}
    assert f"{DAY_A}.csv" in failure_message(result)
    assert table_rows(duckdb_path, DAILY) == expected_rows(good, DAY_A)


def test_settings_are_read_when_each_run_starts(defs, instance, tmp_path, monkeypatch):
    runs = {}
    for name, seed in (("first", 15), ("second", 16)):
        folder, database = tmp_path / name / "source", tmp_path / name / "out.duckdb"
        folder.mkdir(parents=True)
        runs[name] = (database, sample_csv(seed=seed, rows=3))
        write_source_file(folder, f"{DAY_A}.csv", runs[name][1])
        monkeypatch.setenv("SOURCE_DIR", str(folder))
        monkeypatch.setenv("DUCKDB_DATABASE", str(database))
        assert run_daily(defs, instance, DAY_A).success

    for database, text in runs.values():
        assert table_rows(database, DAILY) == expected_rows(text, DAY_A)


def started_source(override: str) -> str:
    return SourceFiles(source_dir=override).uri


def started_database(override: str) -> str:
    with dg.build_resources({"database": StagingDatabase(database=override)}) as started:
        return started.database.database


@pytest.mark.parametrize(
    ("name", "place"), [("SOURCE_DIR", started_source), ("DUCKDB_DATABASE", started_database)]
)
def test_relative_path_settings_resolve_against_the_project_root_not_the_cwd(
    monkeypatch, tmp_path, name, place
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, "relative/place")

    assert Path(__file__).resolve().parents[1] == PROJECT_ROOT
    assert place("") == str(PROJECT_ROOT / "relative" / "place")
    assert place("other/place") == str(PROJECT_ROOT / "other" / "place")


def test_table_materialization_reports_the_rows_loaded(defs, instance, source_dir):
    table_key = dg.AssetKey("duckdb_partition_table")

    def latest_metadata() -> dict:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=table_key, asset_partitions=[DAY_A]), limit=1
        ).records
        return records[0].asset_materialization.metadata

    write_source_file(source_dir, f"{DAY_A}.csv", sample_csv(seed=17, rows=10))
    assert run_daily(defs, instance, DAY_A).success
    assert latest_metadata()["dagster/row_count"] == dg.IntMetadataValue(10)
    assert latest_metadata()["dagster/table_name"] == dg.TextMetadataValue("data.main.raw_partition_data")

    write_source_file(source_dir, f"{DAY_A}.csv", sample_csv(seed=18, rows=4))
    assert run_daily(defs, instance, DAY_A).success
    assert latest_metadata()["dagster/row_count"] == dg.IntMetadataValue(4)


@pytest.mark.skipif(not REFERENCE_FILES, reason=f"no reference files in {REFERENCE_DATA}")
def test_each_reference_file_loads_one_row_per_data_line(defs, instance, monkeypatch, duckdb_path):
    monkeypatch.setenv("SOURCE_DIR", str(REFERENCE_DATA))
    for path in REFERENCE_FILES:
        key = path.stem
        assert run_daily(defs, instance, key).success
        text = path.read_text()
        assert len(table_rows(duckdb_path, DAILY, key)) == len(text.splitlines()) - 1
        assert table_rows(duckdb_path, DAILY, key) == expected_rows(text, key)

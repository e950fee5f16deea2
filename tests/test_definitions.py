"""The code location loads with exactly its assets, jobs, schedules, sensors and resources, and the sample
files it ships in `data/source` load and follow the reference format."""

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb

from dagster_and_etl.defs.partitions import dynamic_partitions_def

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "source"
HEADER = '"date","share_price","amount","spend","shift","spread"'
DATA_LINE = re.compile(r'"\d{4}/\d{2}/\d{2}"(,"-?\d+\.\d{4}"){5}')
DAILY_ASSETS = {"import_partition_file", "duckdb_partition_table"}
DYNAMIC_ASSETS = {"import_dynamic_partition_file", "duckdb_dynamic_partition_table"}


def names(keys) -> set[str]:
    return {key.to_user_string() for key in keys}


def test_definitions_are_loadable(defs):
    dg.Definitions.validate_loadable(defs)


def test_definitions_hold_exactly_the_four_assets_with_file_to_table_deps(defs):
    graph = defs.resolve_asset_graph()

    assert names(graph.get_all_asset_keys()) == DAILY_ASSETS | DYNAMIC_ASSETS
    assert names(graph.get(dg.AssetKey("duckdb_partition_table")).parent_keys) == {"import_partition_file"}
    assert names(graph.get(dg.AssetKey("duckdb_dynamic_partition_table")).parent_keys) == {
        "import_dynamic_partition_file"
    }
    assert not graph.get(dg.AssetKey("import_partition_file")).parent_keys
    assert not graph.get(dg.AssetKey("import_dynamic_partition_file")).parent_keys


def test_definitions_hold_exactly_the_two_pipeline_jobs_and_the_archive_job(defs):
    jobs = {job.name: job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}

    assert set(jobs) == {"import_partition_job", "import_dynamic_partition_job", "archive_job"}
    assert [node.name for node in jobs["archive_job"].nodes] == ["archive_loaded_files"]
    assert names(jobs["import_partition_job"].asset_layer.selected_asset_keys) == DAILY_ASSETS
    assert names(jobs["import_dynamic_partition_job"].asset_layer.selected_asset_keys) == DYNAMIC_ASSETS
    # A run's two steps run in its own process, not one process each.
    assert {job.executor_def.name for job in jobs.values()} == {dg.in_process_executor.name}


def test_each_job_runs_its_tables_load_checks_and_no_freshness_check(defs):
    def checks_of(job_name: str) -> set[str]:
        keys = defs.resolve_job_def(job_name).asset_layer.asset_graph.asset_check_keys
        return {f"{key.asset_key.to_user_string()}:{key.name}" for key in keys}

    loads = {"share_price_is_positive", "row_count_matches_file"}
    # The freshness checks are evaluated by sensors: freshness_checks_sensor and alert_sensor.
    assert checks_of("import_partition_job") == {f"duckdb_partition_table:{name}" for name in loads}
    assert checks_of("import_dynamic_partition_job") == {
        f"duckdb_dynamic_partition_table:{name}" for name in loads
    }


def test_definitions_hold_the_schedule_the_sensors_and_the_resources(defs):
    repository = defs.get_repository_def()

    schedules = {schedule.name: schedule for schedule in repository.schedule_defs}
    assert sorted(schedules) == ["archive_schedule", "asset_partitioned_schedule"]
    assert schedules["archive_schedule"].job_name == "archive_job"
    for schedule in schedules.values():  # quiet until someone turns it on
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED, schedule.name
    assert sorted(sensor.name for sensor in repository.sensor_defs) == [
        "alert_sensor",
        "dynamic_sensor",
        "freshness_checks_sensor",
    ]
    assert defs.resolve_sensor_def("dynamic_sensor").job_name == "import_dynamic_partition_job"
    for sensor in repository.sensor_defs:  # quiet until someone turns it on
        assert sensor.default_status == dg.DefaultSensorStatus.STOPPED, sensor.name
    assert set(defs.resources) == {"source_files", "database", "sensor_tuning", "freshness", "alerts"}


def test_dynamic_assets_use_the_dynamic_partitions_definition_named_dynamic_partition(defs):
    graph = defs.resolve_asset_graph()

    assert dynamic_partitions_def.name == "dynamic_partition"
    for name in DYNAMIC_ASSETS:
        assert graph.get(dg.AssetKey(name)).partitions_def == dynamic_partitions_def


def test_shipped_sample_files_are_consecutive_days_in_the_reference_format():
    paths = sorted(SAMPLE_DIR.glob("*.csv"))
    days = [dt.date.fromisoformat(path.stem) for path in paths]

    assert [path.name for path in paths] == [f"{day.isoformat()}.csv" for day in days]
    assert len(days) >= 3
    assert days == [days[0] + dt.timedelta(days=offset) for offset in range(len(days))]
    for path in paths:
        text = path.read_text()
        header, *data_lines = text.split("\n")
        assert header == HEADER, path.name
        assert data_lines, path.name
        assert all(DATA_LINE.fullmatch(line) for line in data_lines), path.name
        assert not text.endswith("\n"), path.name


def test_shipped_sample_files_all_load_with_the_daily_job(defs, instance, monkeypatch, duckdb_path):
    monkeypatch.setenv("SOURCE_DIR", str(SAMPLE_DIR))
    job = defs.resolve_job_def("import_partition_job")

    for path in sorted(SAMPLE_DIR.glob("*.csv")):
        assert job.execute_in_process(partition_key=path.stem, instance=instance).success
        with duckdb.connect(str(duckdb_path), read_only=True) as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM raw_partition_data WHERE partition_key = ?", [path.stem]
            ).fetchone()
        assert count == len(path.read_text().split("\n")) - 1


# The sensors' intervals are part of their definitions, read when the code location loads: a process of
# its own loads it with the settings given.
INTERVALS = """
from dagster_and_etl.definitions import defs
d = defs()
print(d.resolve_sensor_def("dynamic_sensor").minimum_interval_seconds,
      d.resolve_sensor_def("alert_sensor").minimum_interval_seconds)
"""


def sensor_intervals(**settings: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("SENSOR_INTERVAL_SECONDS", "ALERT_INTERVAL_SECONDS")
    }
    return subprocess.run(
        [sys.executable, "-c", INTERVALS],
        env={**env, **settings},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_sensors_tick_every_10_and_30_seconds_unless_set_otherwise(defs) -> None:
    assert defs.resolve_sensor_def("dynamic_sensor").minimum_interval_seconds == 10
    assert defs.resolve_sensor_def("alert_sensor").minimum_interval_seconds == 30
    set_otherwise = sensor_intervals(SENSOR_INTERVAL_SECONDS="2", ALERT_INTERVAL_SECONDS="3")
    assert set_otherwise.stdout.split() == ["2", "3"], set_otherwise.stderr


def test_an_interval_that_is_not_a_whole_number_of_seconds_fails_loading_naming_the_setting() -> None:
    result = sensor_intervals(SENSOR_INTERVAL_SECONDS="0.5")
    assert result.returncode != 0
    assert "SENSOR_INTERVAL_SECONDS must be a whole number, got '0.5'" in result.stderr


def test_each_definition_takes_only_the_resources_it_uses(defs) -> None:
    graph = defs.resolve_asset_graph()
    assets = {
        key.to_user_string(): graph.get(key).assets_def.required_resource_keys - {"io_manager"}
        for key in graph.get_all_asset_keys()
    }
    assert assets == {
        "import_partition_file": {"source_files"},
        "import_dynamic_partition_file": {"source_files"},
        "duckdb_partition_table": {"source_files", "database"},
        "duckdb_dynamic_partition_table": {"source_files", "database"},
    }
    sensors = {
        name: defs.resolve_sensor_def(name).required_resource_keys
        for name in ("dynamic_sensor", "alert_sensor")
    }
    assert sensors == {
        "dynamic_sensor": {"source_files", "database", "sensor_tuning"},
        "alert_sensor": {"alerts", "source_files", "database", "freshness"},
    }
    checks = {
        key.name: d.required_resource_keys - {"io_manager"}
        for d in defs.asset_checks or []
        for key in d.check_keys
    }
    assert checks["files_loaded_in_time"] == {"source_files", "database", "freshness"}

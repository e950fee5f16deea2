"""The project under a real `dagster dev`: the daemon ticks the sensor and runs each file version once."""

import time
from pathlib import Path

import dagster as dg
import pytest

from tests.dagster_dev_process import (
    dagster_cli,
    dagster_dev_fixture,  # noqa: F401  (the fixture `dagster_dev`)
    dagster_home_fixture,  # noqa: F401  (the fixture `dagster_home`)
    wait_for,
)
from tests.support import rows_per_partition, write_source_file

pytestmark = pytest.mark.slow


def finished_runs(dagster_home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
    assert not [run for run in runs if run.status == dg.DagsterRunStatus.FAILURE]
    return [run for run in runs if run.status == dg.DagsterRunStatus.SUCCESS]


def test_sensor_under_dagster_dev_runs_each_file_version_once_across_restarts(
    dagster_dev, dagster_home: Path, source_dir: Path, duckdb_path: Path
) -> None:
    for seed, key in enumerate(("2018-01-22", "2018-01-23", "vendor-a")):
        write_source_file(source_dir, f"{key}.csv", seed=seed)
    dagster_dev()
    assert "Started sensor dynamic_sensor" in dagster_cli(dagster_home, "sensor", "start", "dynamic_sensor")

    wait_for(lambda: len(finished_runs(dagster_home)) >= 3, 180, "three successful runs")
    assert rows_per_partition(duckdb_path) == {"2018-01-22": 10, "2018-01-23": 10, "vendor-a": 10}

    # A restart keeps the sensor on and its cursor; a reset cursor asks again only for known versions.
    dagster_dev.stop_last()
    dagster_cli(dagster_home, "sensor", "cursor", "dynamic_sensor", "--delete")
    write_source_file(source_dir, "2018-01-22.csv", seed=7, text=None)  # a new version of one file
    write_source_file(source_dir, "2018-01-24.csv", seed=8)  # and a new file
    dagster_dev()

    wait_for(lambda: len(finished_runs(dagster_home)) >= 5, 180, "two more successful runs")
    time.sleep(25)  # two more sensor ticks: nothing else may start
    runs = finished_runs(dagster_home)
    assert sorted(run.tags["dagster/partition"] for run in runs) == [
        "2018-01-22",
        "2018-01-22",
        "2018-01-23",
        "2018-01-24",
        "vendor-a",
    ]
    assert len({run.tags["dagster/run_key"] for run in runs}) == 5
    assert rows_per_partition(duckdb_path) == {
        "2018-01-22": 10,
        "2018-01-23": 10,
        "2018-01-24": 10,
        "vendor-a": 10,
    }

"""The project under a real `dagster dev`: the daemon ticks the sensor and runs each file version once."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tests.support import write_source_file

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def location_loaded(port: int) -> bool:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
    except OSError:
        return False
    return any(e["name"] == "dagster_and_etl" and e["loadStatus"] == "LOADED" for e in entries)


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / ".dagster_home" / "dagster.yaml").read_text())
    return home


@pytest.fixture
def dagster_dev(dagster_home: Path, tmp_path: Path) -> Iterator[Callable[[], int]]:
    """Starts `dagster dev` as `make dev` does, on a free port; every start is stopped at the end."""
    processes: list[subprocess.Popen] = []
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "SENSOR_SETTLE_SECONDS": "0"}

    def start() -> int:
        port = free_port()
        log = (tmp_path / f"dagster-dev-{len(processes)}.log").open("w")
        process = subprocess.Popen(
            [BIN / "dagster", "dev", "-w", "workspace.yaml", "-p", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(process)
        wait_for(lambda: location_loaded(port), 120, "the code location to load in dagster dev")
        return port

    def stop(process: subprocess.Popen) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group
        process.wait()

    start.stop_last = lambda: stop(processes[-1])  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for process in processes:
            stop(process)


def dagster_cli(dagster_home: Path, *args: str) -> str:
    result = subprocess.run(
        [BIN / "dagster", *args, "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def finished_runs(dagster_home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
    assert not [run for run in runs if run.status == dg.DagsterRunStatus.FAILURE]
    return [run for run in runs if run.status == dg.DagsterRunStatus.SUCCESS]


def loaded_rows(database: Path) -> dict[str, int]:
    with duckdb.connect(str(database), read_only=True) as conn:
        return dict(
            conn.execute(
                "SELECT partition_key, count(*) FROM raw_dynamic_partition_data GROUP BY ALL"
            ).fetchall()
        )


def test_sensor_under_dagster_dev_runs_each_file_version_once_across_restarts(
    dagster_dev, dagster_home: Path, source_dir: Path, duckdb_path: Path
) -> None:
    for seed, key in enumerate(("2018-01-22", "2018-01-23", "vendor-a")):
        write_source_file(source_dir, f"{key}.csv", seed=seed)
    dagster_dev()
    assert "Started sensor dynamic_sensor" in dagster_cli(dagster_home, "sensor", "start", "dynamic_sensor")

    wait_for(lambda: len(finished_runs(dagster_home)) >= 3, 180, "three successful runs")
    assert loaded_rows(duckdb_path) == {"2018-01-22": 10, "2018-01-23": 10, "vendor-a": 10}

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
    assert loaded_rows(duckdb_path) == {"2018-01-22": 10, "2018-01-23": 10, "2018-01-24": 10, "vendor-a": 10}

"""The production layout of docs/deploying.md for real: the code location as a gRPC server, one daemon and
the webserver, as three processes on one Dagster instance in PostgreSQL (deploy/dagster.yaml and
deploy/workspace.yaml), load the files the sensor finds: two runs started together meet at the pool
`duckdb_write` on PostgreSQL, and take turns (tests/pool.py makes the meeting and judges it)."""

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.dagster_dev_process import (
    BIN,
    PROJECT_ROOT,
    SENSOR_INTERVALS,
    dagster_home_fixture,  # noqa: F401  (the fixture `dagster_home`)
    free_port,
    location_loaded,
    start_sensor,
    stop_group,
    wait_for,
)
from tests.pool import (
    LoadLatch,
    assert_the_loads_took_turns,
    load_latch_fixture,  # noqa: F401  (the fixture `load_latch`)
    meet_then_release,
    write_files,
)
from tests.support import rows_per_partition

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("storage", ["postgres"], indirect=True)]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Starts a process from the project root with the test's environment; all are stopped at the end."""
    processes: list[subprocess.Popen] = []

    def started(*command: str, env: dict[str, str]) -> subprocess.Popen:
        log = (tmp_path / f"{Path(command[0]).name}-{len(processes)}.log").open("w")
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        processes.append(process)
        return process

    yield started
    # In reverse: the webserver and the daemon, which call the code server, before it.
    for process in reversed(processes):
        stop_group(process)


def serving(port: int) -> bool:
    """Whether a server takes connections on the port, on 127.0.0.1."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_code_server_a_daemon_and_a_webserver_on_postgres_load_what_the_sensor_finds_in_turns(
    start, dagster_home: Path, source_dir: Path, duckdb_path: Path, load_latch: LoadLatch
) -> None:
    code_port, ui_port = free_port(), free_port()
    env = {
        **SENSOR_INTERVALS,
        **os.environ,  # SENSOR_MAX_BATCH=1 (tests/conftest.py): one run per file, started together
        "DAGSTER_HOME": str(dagster_home),  # deploy/dagster.yaml, on the test's PostgreSQL database
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
        "DAGSTER_CODE_SERVER_PORT": str(code_port),
    }
    workspace = str(PROJECT_ROOT / "deploy" / "workspace.yaml")
    start(str(BIN / "dagster"), "code-server", "start", "-m", "dagster_and_etl.definitions",
          "--host", "127.0.0.1", "--port", str(code_port), env=env)  # fmt: skip
    wait_for(lambda: serving(code_port), 180, "the code server to serve the definitions")
    start(str(BIN / "dagster-daemon"), "run", "-w", workspace, env=env)
    start(
        str(BIN / "dagster-webserver"),
        "-w",
        workspace,
        "--host",
        "127.0.0.1",
        "--port",
        str(ui_port),
        env=env,
    )
    wait_for(lambda: location_loaded(ui_port), 180, "the webserver to load the code location over gRPC")

    file_rows = write_files(source_dir, ["vendor-a", "vendor-b"])
    start_sensor(ui_port, "dynamic_sensor")

    meeting, runs = meet_then_release(dagster_home, load_latch, runs=2)
    assert sorted(run.tags["dagster/partition"] for run in runs) == ["vendor-a", "vendor-b"]
    assert rows_per_partition(duckdb_path) == file_rows
    assert_the_loads_took_turns(dagster_home, meeting, runs)

"""A real `dagster dev`, started by `make dev PORT=...` as a user starts it, for the tests that need the
webserver and daemon.

A test module imports `dagster_home_fixture` and `dagster_dev_fixture` to have the fixtures `dagster_home`
and `dagster_dev`. Every `dagster dev` a test starts runs in its own process group and is stopped, with
everything it started, when the test ends, whether it passed or not.

Each test starts its own rather than sharing one: every test here either judges the whole instance (a
restart, exactly one webhook POST, the pool's claims and waiting steps, the UI's views) or needs settings
that `dg dev` reads when it starts (an S3 source, the load latch of tests/hooks). A start costs a few
seconds; the sensors tick every second, so the tests wait for ticks rather than for time.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SENSOR_INTERVALS = {"SENSOR_INTERVAL_SECONDS": "1", "ALERT_INTERVAL_SECONDS": "1"}


def group_members(group: int) -> list[str]:
    """The processes of a process group, each as its pid and the start of its command line."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The fields after the command name, which may hold spaces and parentheses.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group:  # the process group, the fifth field of the whole line
                command = (stat.parent / "cmdline").read_bytes().split(b"\0")[:4]
                members.append(f"{stat.parent.name} {b' '.join(command).decode(errors='replace')[:120]}")
        except (OSError, IndexError, ValueError):
            continue
    return members


def stop_group(process: subprocess.Popen) -> None:
    """Stops a process started in a session of its own, and everything in its process group: SIGTERM,
    up to 30 s to end, then SIGKILL for whatever is left of the group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # Named in the suite's warnings summary: a process that ignores SIGTERM costs its test 30 s.
            left = "; ".join(group_members(process.pid))
            command = " ".join(map(str, process.args[:3]))
            warnings.warn(
                f"{command} did not end within 30 s of SIGTERM; still running: {left}", stacklevel=2
            )
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def make(*args: str) -> list[str]:
    """A command of the project's Makefile, run on `.venv/` as it is installed: a Makefile newer than the
    install does not make a test install the packages again."""
    return ["make", "--no-print-directory", "-o", ".venv/.installed", *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 1.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    """What the webserver's GraphQL API, which the UI itself calls, answers to a query."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]


def location_loaded(port: int, location: str = "dagster_and_etl") -> bool:
    """Whether the webserver on the port has loaded the code location (the project's unless named), its
    definitions and all."""
    query = """{ workspaceOrError { ... on Workspace { locationEntries {
        name loadStatus locationOrLoadError { __typename } } } } }"""
    try:
        entries = graphql(port, query)["workspaceOrError"]["locationEntries"]
    except OSError:
        return False
    return any(
        e["name"] == location
        and e["loadStatus"] == "LOADED"
        and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        for e in entries
    )


START_SENSOR = """
mutation($sensor: SensorSelector!) {
  startSensor(sensorSelector: $sensor) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
  }
}
"""


def start_sensor(port: int, name: str, location: str = "dagster_and_etl") -> None:
    """Turns a sensor of the code location (the project's unless named) on as its switch in the UI does,
    through the running webserver: no CLI process has to load the code location again."""
    selector = {"repositoryLocationName": location, "repositoryName": "__repository__"}
    answer = graphql(port, START_SENSOR, {"sensor": {**selector, "sensorName": name}})["startSensor"]
    assert answer.get("sensorState", {}).get("status") == "RUNNING", answer


@pytest.fixture(name="dagster_home")
def dagster_home_fixture(tmp_path: Path, storage: str, request: pytest.FixtureRequest) -> Path:
    """A DAGSTER_HOME of its own with the project's instance configuration: `.dagster_home/dagster.yaml`
    (SQLite, pools included), or with `storage="postgres"` the production `deploy/dagster.yaml` on a
    database of its own on the tests' PostgreSQL server."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = PROJECT_ROOT / ".dagster_home" / "dagster.yaml"
    if storage == "postgres":
        request.getfixturevalue("postgres")  # the DAGSTER_POSTGRES_* settings, for dg dev and the test
        config = PROJECT_ROOT / "deploy" / "dagster.yaml"
    (home / "dagster.yaml").write_text(config.read_text())
    return home


@pytest.fixture(name="dagster_dev")
def dagster_dev_fixture(dagster_home: Path, tmp_path: Path) -> Iterator[Callable[[], int]]:
    """Starts `make dev` on a free port; every start is stopped at the end.

    Each start takes the environment as it is then, so a test may change a setting before starting. The
    sensors tick every second unless the test sets their intervals: a test waits for ticks, not for time."""
    processes: list[subprocess.Popen] = []

    def start() -> int:
        env = {
            **SENSOR_INTERVALS,
            **os.environ,
            "DAGSTER_HOME": str(dagster_home),
            "SENSOR_SETTLE_SECONDS": "0",
        }
        port = free_port()
        log = (tmp_path / f"dagster-dev-{len(processes)}.log").open("w")
        process = subprocess.Popen(
            make("dev", f"PORT={port}"),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(process)

        def loaded() -> bool:
            # A port taken by someone else between free_port() and the bind ends this dagster dev:
            # never mistake another server on that port for ours.
            assert process.poll() is None, f"dagster dev exited: {Path(log.name).read_text()[-3000:]}"
            return location_loaded(port)

        wait_for(loaded, 120, "the code location to load in dagster dev")
        return port

    start.stop_last = lambda: stop_group(processes[-1])  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for process in processes:
            stop_group(process)


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

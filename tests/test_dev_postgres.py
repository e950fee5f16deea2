"""`make dev-postgres` for real: a PostgreSQL server of its own, `dg dev` on it, the sensor's state kept
across a stop by Ctrl-C and a start, and the server stopped with it."""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from dagster_and_etl.local_postgres import DATABASE, LocalPostgres
from tests.dagster_dev_process import (
    PROJECT_ROOT,
    SENSOR_INTERVALS,
    free_port,
    location_loaded,
    make,
    start_sensor,
    wait_for,
)
from tests.postgres import install_postgres
from tests.support import rows_per_partition, write_source_file

pytestmark = pytest.mark.slow


class DevPostgres:
    """`make dev-postgres` with its cluster and Dagster home in a folder of the test's, on free ports."""

    def __init__(self, folder: Path, log: Path) -> None:
        self.cluster, self.home, self.log = folder / "cluster", folder / "home", log
        self.pg_port, self.pooler_port, self.ui_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = make(
            "dev-postgres",
            f"PORT={self.ui_port}",
            f"PG_PORT={self.pg_port}",
            f"PG_POOLER_PORT={self.pooler_port}",
            f"PG_CLUSTER={self.cluster}",
            f"PG_DAGSTER_HOME={self.home}",
        )
        env = {**SENSOR_INTERVALS, **os.environ, "SENSOR_SETTLE_SECONDS": "0"}
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def loaded() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()[-3000:]
            return location_loaded(self.ui_port)

        wait_for(loaded, 180, "dg dev on PostgreSQL to load the code location")

    def interrupt(self) -> None:
        """Ctrl-C, as a terminal sends it to the foreground process group; waits until make has ended (as
        make ends on an interrupt), dg dev no longer answers and the server has stopped."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGINT)
        assert self.process.wait(timeout=120) in (0, -signal.SIGINT)
        wait_for(
            lambda: not self.server_running and not location_loaded(self.ui_port), 120, "everything to stop"
        )

    @property
    def server_running(self) -> bool:
        return (self.cluster / "data" / "postmaster.pid").exists()

    def settings(self) -> dict[str, str]:
        """The DAGSTER_POSTGRES_* settings that reach `dg dev`'s instance, with the password the cluster
        keeps (made on its first start)."""
        password = (self.cluster / "password").read_text().strip()
        return LocalPostgres(self.cluster, self.pg_port, password, self.pooler_port).environment(DATABASE)

    def successful_runs(self) -> list[dg.DagsterRun]:
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            return list(instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS])))

    def stop(self) -> None:
        """Ctrl-C if it still runs, which stops dg dev (a process group of its own) and the server; only
        then anything left is killed."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.interrupt()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def dev_postgres(tmp_path: Path) -> Iterator[DevPostgres]:
    install_postgres()
    folder = Path(
        tempfile.mkdtemp(prefix="dev-postgres-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
    )
    folder.chmod(0o755)  # the server runs as the `postgres` user, who must reach its cluster
    dev = DevPostgres(folder, tmp_path / "make-dev-postgres.log")
    try:
        yield dev
    finally:
        dev.stop()
        if dev.server_running:
            LocalPostgres(dev.cluster, dev.pg_port, "").stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_make_dev_postgres_keeps_the_sensors_state_across_ctrl_c_and_a_new_start(
    dev_postgres: DevPostgres, source_dir: Path, duckdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_source_file(source_dir, "vendor-a.csv", seed=1)
    dev_postgres.start()
    for name, value in dev_postgres.settings().items():  # for this test to read the instance
        monkeypatch.setenv(name, value)
    start_sensor(dev_postgres.ui_port, "dynamic_sensor")
    wait_for(lambda: len(dev_postgres.successful_runs()) == 1, 180, "the first file's run")

    dev_postgres.interrupt()  # Ctrl-C stops dg dev, then PostgreSQL

    write_source_file(source_dir, "vendor-b.csv", seed=2)  # lands while Dagster is down
    dev_postgres.start()  # the sensor is still on, with its cursor: only the new file is loaded
    wait_for(lambda: len(dev_postgres.successful_runs()) == 2, 180, "the new file's run")
    runs = dev_postgres.successful_runs()
    assert sorted(run.tags["dagster/partition"] for run in runs) == ["vendor-a", "vendor-b"]
    assert rows_per_partition(duckdb_path) == {"vendor-a": 10, "vendor-b": 10}
    dev_postgres.interrupt()

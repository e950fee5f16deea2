"""Helpers the tests share: writing source files and ticking the sensor as the daemon would."""

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from dagster_and_etl import testing
from dagster_and_etl.defs import assets
from dagster_and_etl.defs.checks import WAITING_FILES_CHECK
from dagster_and_etl.defs.partitions import dynamic_partitions_def
from dagster_and_etl.sample_data import sample_csv
from dagster_and_etl.testing import SensorDaemon

REFERENCE_DATA = Path(__file__).resolve().parents[2] / "shared" / "reference-data"
WAITING_CHECK = dg.AssetCheckKey(assets.duckdb_dynamic_partition_table.key, WAITING_FILES_CHECK)


def write_source_file(
    folder: Path, name: str, text: str | None = None, *, seed: int = 0, mtime: float | None = None
) -> Path:
    """Writes a source file (sample rows unless `text` is given), optionally back-dating its mtime."""
    path = folder / name
    path.write_text(sample_csv(seed=seed) if text is None else text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


_HOLD_DATABASE = """
import sys, duckdb
conn = duckdb.connect(sys.argv[1])
print("HOLDING", flush=True)
sys.stdin.read()
"""


@contextmanager
def holding_database(database: Path) -> Iterator[None]:
    """Another process holds the DuckDB file open for writing, as a load does, until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_DATABASE, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "HOLDING"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


@contextmanager
def arriving_after_the_first_failure(
    instance: dg.DagsterInstance, folder: Path, name: str, text: str
) -> Iterator[None]:
    """Writes a source file once the run in the block has failed for want of it (a step is up for retry),
    so the first attempt never finds it and a retry does, however long the run takes to start."""
    ended = threading.Event()

    def up_for_retry() -> bool:
        return any(
            instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
            for run_id in instance.get_run_ids()
        )

    def arrive() -> None:
        while not ended.is_set():
            if up_for_retry():
                write_source_file(folder, name, text)
                return
            ended.wait(0.05)

    writer = threading.Thread(target=arrive)
    writer.start()
    try:
        yield
    finally:
        ended.set()
        writer.join()


def with_bad_value(seed: int, line: int, column: int, value: str) -> str:
    """Sample rows with the value in `column` (0 = date) of `line` (1 = the header) replaced."""
    lines = sample_csv(seed=seed).split("\n")
    cells = lines[line - 1].split(",")
    cells[column] = f'"{value}"'
    lines[line - 1] = ",".join(cells)
    return "\n".join(lines)


def wait_until_settled(folder: Path, settle_ns: int = 0) -> None:
    """Waits until every file in `folder` has aged past the settle window and the timestamp slack."""
    testing.wait_until_settled(folder, settle_ns / 1e9)


def run_daily(defs: dg.Definitions, instance: dg.DagsterInstance, key: str) -> dg.ExecuteInProcessResult:
    """One run of `import_partition_job` for the day `key`; a failed run is returned, not raised."""
    job = defs.resolve_job_def("import_partition_job")
    return job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)


def rows_per_partition(database: Path, table: str = "raw_dynamic_partition_data") -> dict[str, int]:
    """How many rows each partition holds in one of the tables, read from the DuckDB file itself."""
    with duckdb.connect(str(database), read_only=True) as conn:
        return dict(conn.execute(f"SELECT partition_key, count(*) FROM {table} GROUP BY ALL").fetchall())


class SensorTicks:
    """Evaluates `dynamic_sensor` tick after tick as the daemon would, without running what it requests:
    for tests about single ticks' requests. `SensorDaemon` carries the cursor and registers partitions."""

    def __init__(self, instance: dg.DagsterInstance, defs: dg.Definitions) -> None:
        self.instance = instance
        self.daemon = SensorDaemon(instance, defs)

    @property
    def cursor(self) -> str | None:
        return self.daemon.cursor

    @cursor.setter
    def cursor(self, cursor: str | None) -> None:
        self.daemon.cursor = cursor

    def tick(self) -> dg.SensorResult:
        result = self.daemon.tick(execute=False).result
        for request in result.dynamic_partitions_requests or []:
            assert request.partitions_def_name == dynamic_partitions_def.name
        return result

    def keys_of(self, result: dg.SensorResult) -> list[str]:
        """Every partition key the result's runs cover, expanding key ranges in registration order."""
        return [key for request in result.run_requests or [] for key in self.daemon.keys_of(request)]

    @property
    def results(self) -> list[dg.SensorResult]:
        return [tick.result for tick in self.daemon.ticks]

    @property
    def registered_keys(self) -> list[str]:
        return list(self.instance.get_dynamic_partitions(dynamic_partitions_def.name))


def requested_keys(result: dg.SensorResult) -> list[str]:
    return [request.partition_key for request in result.run_requests or []]


def run_keys(result: dg.SensorResult) -> list[str]:
    return [request.run_key for request in result.run_requests or []]


def reported_backlog(instance: dg.DagsterInstance) -> list[tuple[int, int, int]]:
    """The backlog figures `alert_sensor` reported so far, oldest first: (files, bytes, oldest file's
    wait in seconds)."""
    history = instance.event_log_storage.get_asset_check_execution_history(WAITING_CHECK, limit=100)
    figures = []
    for record in reversed(history):  # newest first
        evaluation = record.event.asset_check_evaluation if record.event else None
        assert evaluation is not None
        metadata = evaluation.metadata
        figures.append(
            (
                metadata["backlog_files"].value,
                metadata["backlog_bytes"].value,
                metadata["backlog_oldest_seconds"].value,
            )
        )
    return figures

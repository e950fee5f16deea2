"""Benchmark 1: new files dropped into SOURCE_DIR, loaded by the sensor under the project's `dagster dev`.

Measured: from turning `dynamic_sensor` on until every partition of `duckdb_dynamic_partition_table` is
materialized, with the project's settings and `.dagster_home/dagster.yaml` in a DAGSTER_HOME of its own.
Baseline, in the same run: the same files loaded in-process in one transaction, with no Dagster at all.
Run: `.venv/bin/python -m benchmarks.ingest [--files 1000] [--runs 3]`
"""

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb

from benchmarks._stats import summary
from dagster_and_etl.ingest.duckdb_load import RawTable, replace_partitions
from dagster_and_etl.sample_data import write_sample_files
from tests.dagster_dev_process import BIN, PROJECT_ROOT, free_port, location_loaded, wait_for

START_SENSOR = """
mutation {
  startSensor(sensorSelector: {repositoryLocationName: "dagster_and_etl",
      repositoryName: "__repository__", sensorName: "dynamic_sensor"}) {
    __typename
  }
}
"""


@contextlib.contextmanager
def dagster_dev(home: Path, env: dict[str, str], log: Path) -> Iterator[int]:
    port = free_port()
    with log.open("w") as output:
        process = subprocess.Popen(
            [BIN / "dagster", "dev", "-w", "workspace.yaml", "-p", str(port)],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env, "DAGSTER_HOME": str(home)},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(lambda: location_loaded(port), 180, "dagster dev to load the code location")
            yield port
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_sensor(port: int) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": START_SENSOR}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)["data"]["startSensor"]["__typename"]
    assert answer == "Sensor", answer


def materialized(instance: dg.DagsterInstance) -> int:
    return len(instance.get_materialized_partitions(dg.AssetKey("duckdb_dynamic_partition_table")))


def one_ingest(files: int, scratch: Path) -> float:
    home, source = scratch / "dagster_home", scratch / "source"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / ".dagster_home" / "dagster.yaml").read_text())
    write_sample_files(source, dt.date(2000, 1, 1), files)
    env = {"SOURCE_DIR": str(source), "DUCKDB_DATABASE": str(scratch / "data.duckdb")}
    with dagster_dev(home, env, scratch / "dagster-dev.log") as port:
        time.sleep(6)  # the files are older than the settle window
        started = time.perf_counter()
        start_sensor(port)
        # One instance for all the polls: opening one per poll would load the machine being measured.
        with dg.DagsterInstance.from_config(str(home)) as instance:
            wait_for(lambda: materialized(instance) >= files, 1800, f"{files} materialized partitions", 1)
        elapsed = time.perf_counter() - started
    with duckdb.connect(str(scratch / "data.duckdb"), read_only=True) as conn:
        (partitions, rows) = conn.execute(
            "SELECT count(DISTINCT partition_key), count(*) FROM raw_dynamic_partition_data"
        ).fetchone()
    assert (partitions, rows) == (files, files * 10), (partitions, rows)
    return elapsed


def one_bare_load(files: int, scratch: Path) -> float:
    source = scratch / "source"
    paths = write_sample_files(source, dt.date(2000, 1, 1), files)
    with duckdb.connect(str(scratch / "bare.duckdb")) as conn:
        started = time.perf_counter()
        replace_partitions(conn, RawTable.DYNAMIC, {path.stem: path for path in paths})
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ingest: list[float] = []
    bare: list[float] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as scratch:
            bare.append(one_bare_load(args.files, Path(scratch)))
        with tempfile.TemporaryDirectory() as scratch:
            ingest.append(one_ingest(args.files, Path(scratch)))
        print(f"run {run + 1}: sensor on to all materialized {ingest[-1]:.1f} s; bare load {bare[-1]:.2f} s")
    print(summary(f"{args.files} files, bare in-process load", bare))
    print(summary(f"{args.files} files, sensor under dagster dev", ingest))
    ratio = statistics.median(ingest) / statistics.median(bare)
    print(f"dagster dev ingest / bare load: median ratio {ratio:.0f}x")
    target = "meets" if max(ingest) <= 60 else "MISSES"
    print(f"slowest ingest {max(ingest):.1f} s (target at most 60 s for 1,000 files) -> {target} the target")


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark 9: the memory of a run that loads a batch of large files under `DUCKDB_MEMORY_LIMIT`.

Each measurement is one process that ticks `dynamic_sensor` once over a folder, as the daemon would, and
executes the run it requests in process (`SensorDaemon`): the files' checks, the load in one DuckDB
transaction, the load history, Dagster's events. Its peak resident memory is read from the kernel when it
ends (`wait4`). Measured in turns, each round:
- the batch: `--files` files of `--rows` rows each, in one run (`SENSOR_MAX_BATCH_BYTES` above their
  total), with `DUCKDB_MEMORY_LIMIT=--limit`;
- the same batch with DuckDB's own limit (80% of the machine's memory), to show what the setting bounds;
- the baseline: the same run over one 10-row file, the process's own floor (Python, Dagster, DuckDB).

Run: `.venv/bin/python -m benchmarks.batch_memory [--files 4] [--rows 2000000] [--limit 256MB] [--runs 3]`
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from dagster_and_etl.sample_data import write_large_sample_file

ONE_RUN = """
import dagster as dg
from dagster_and_etl.testing import SensorDaemon
with dg.instance_for_test() as instance:
    tick = SensorDaemon(instance).tick()
    assert len(tick.runs) == 1 and tick.runs[0].success, tick.skip_reason
    print(len(tick.partition_keys))
"""


def peak_mb(folder: Path, scratch: Path, limit: str | None, expected_keys: int) -> float:
    """The peak resident memory, in MB, of one process that ticks the sensor over `folder` and runs the
    one run it requests into a new DuckDB file."""
    database = scratch / f"{os.urandom(4).hex()}.duckdb"
    env = {
        **os.environ,
        "SOURCE_DIR": str(folder),
        "DUCKDB_DATABASE": str(database),
        "SENSOR_SETTLE_SECONDS": "0",
        "SENSOR_MAX_BATCH_BYTES": "100GiB",
        "DUCKDB_TEMP_DIRECTORY": str(scratch / "spill"),
    }
    env.pop("DUCKDB_MEMORY_LIMIT", None)
    if limit:
        env["DUCKDB_MEMORY_LIMIT"] = limit
    process = subprocess.Popen([sys.executable, "-c", ONE_RUN], env=env, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    assert status == 0 and output.split()[-1:] == [str(expected_keys)], (status, output[-500:])
    database.unlink()
    return usage.ru_maxrss / 1024  # kilobytes on Linux


def line(name: str, values: list[float]) -> str:
    return (
        f"{name:<44} min {min(values):7.0f} MB   median {statistics.median(values):7.0f} MB"
        f"   max {max(values):7.0f} MB   ({len(values)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--limit", default="256MB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        batch, small = scratch / "batch", scratch / "small"
        for index in range(args.files):
            write_large_sample_file(batch / f"large-{index}.csv", rows=args.rows, seed=index)
        write_large_sample_file(small / "small.csv", rows=10)
        total = sum(path.stat().st_size for path in batch.iterdir()) / 1e6
        print(f"{args.files} files of {args.rows:,} rows, {total:.0f} MB in all; limit {args.limit}")
        peaks: dict[str, list[float]] = {"limited": [], "unlimited": [], "floor": []}
        for _ in range(args.runs):
            peaks["limited"].append(peak_mb(batch, scratch, args.limit, args.files))
            peaks["unlimited"].append(peak_mb(batch, scratch, None, args.files))
            peaks["floor"].append(peak_mb(small, scratch, args.limit, 1))
            print({name: round(values[-1]) for name, values in peaks.items()}, flush=True)

    floor = statistics.median(peaks["floor"])
    print(line(f"batch, DUCKDB_MEMORY_LIMIT={args.limit}", peaks["limited"]))
    print(line("batch, DuckDB's own limit", peaks["unlimited"]))
    print(line("one 10-row file (the process's floor)", peaks["floor"]))
    above = statistics.median(peaks["limited"]) - floor
    print(
        f"batch under the limit, above the floor: {above:.0f} MB (limit {args.limit}, files {total:.0f} MB)"
    )


if __name__ == "__main__":
    main()

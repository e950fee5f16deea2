"""Benchmark 3: one `dynamic_sensor` tick over a folder of 100,000 files with nothing new.

Baseline: a bare `os.scandir` of the folder with a `stat` of each entry, the least any tick must do.
Run: `.venv/bin/python benchmarks/sensor_tick.py [--files 100000] [--runs 5]`
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from benchmarks._stats import ratio_line, summary, timed
from dagster_and_etl.definitions import defs as load_defs
from dagster_and_etl.defs.sensors import dynamic_sensor
from dagster_and_etl.sample_data import HEADER


def bare_scan(folder: Path) -> int:
    count = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            entry.stat(follow_symlinks=False)
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch, dg.instance_for_test() as instance:
        folder = Path(scratch) / "source"
        folder.mkdir()
        for index in range(args.files):
            (folder / f"file-{index:06d}.csv").write_text(HEADER)
        os.environ.update(
            SOURCE_DIR=str(folder),
            DUCKDB_DATABASE=str(Path(scratch) / "data.duckdb"),
            SENSOR_SETTLE_SECONDS="0",
            SENSOR_MAX_BATCH="1000",
            SENSOR_MAX_RUNS_PER_TICK=str(args.files),
        )
        defs = load_defs()
        time.sleep(1.2)  # past the settle window and the timestamp slack

        def tick(cursor: str | None) -> dg.SensorResult:
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, resources=defs.resources, definitions=defs
            )
            return dynamic_sensor(context)

        first = tick(None)  # registers every file, as the daemon would
        for request in first.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        cursor = first.cursor
        print(f"{args.files} files, {len(first.run_requests)} runs requested by the first tick")

        idle = tick(cursor)
        assert not idle.run_requests, "a tick with nothing new requested runs"
        bare = timed(lambda: bare_scan(folder), args.runs)
        ticks = timed(lambda: tick(cursor), args.runs)

    print(summary("bare scandir + stat", bare))
    print(summary("sensor tick, nothing new", ticks))
    print(ratio_line("tick / bare scan", ticks, bare, 2.0))
    size = len(cursor.encode())
    print(f"cursor: {size} bytes (target at most 4096) -> {'meets' if size <= 4096 else 'MISSES'} the target")
    print(f"skip reason: {idle.skip_reason.skip_message}")


if __name__ == "__main__":
    sys.exit(main())

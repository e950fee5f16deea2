"""Benchmark 8: the tick that finds 100 new objects in notification mode, against the listing tick that
finds them, over a prefix of 100,000 objects at rest; and the notification tick again at 10,000.

For each size, a bucket on moto's standalone server (`benchmarks._s3`, a process of its own) holds the
objects, backdated 2 hours. Two sensors, each on a Dagster instance of its own, take their first tick
with `SENSOR_INCLUDE_EXISTING_FILES=false` (every object registered, none requested): one in listing
mode, one in notification mode. Only then is the bucket's notification to a queue set up, so the objects
at rest announce nothing. Each round puts 100 new objects, waits until they have settled, and times one
tick of each sensor (`SensorDaemon.tick(execute=False)`, the daemon's work without running the loads),
in turns, each finding the 100 and requesting them. A notification tick also meets the messages of
earlier rounds coming back after their visibility timeout, and deletes them, as it would in production.

Run: `.venv/bin/python -m benchmarks.s3_notified_tick [--objects 100000 10000] [--runs 3] [--new 100]`
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from benchmarks import _s3
from benchmarks._stats import summary
from dagster_and_etl.definitions import defs as load_defs
from dagster_and_etl.local_s3 import create_queue
from dagster_and_etl.sample_data import HEADER
from dagster_and_etl.testing import SensorDaemon

PREFIX = "landing/"
AT_REST_SECONDS = 7200


def tick_seconds(daemon: SensorDaemon, queue_url: str | None, new: list[str]) -> float:
    """One tick of the daemon, in listing mode or notification mode; fails unless it requests the new keys."""
    if queue_url:
        os.environ["SOURCE_QUEUE_URL"] = queue_url
    else:
        os.environ.pop("SOURCE_QUEUE_URL", None)
    started = time.perf_counter()
    tick = daemon.tick(execute=False)
    seconds = time.perf_counter() - started
    found = sorted(key for request in tick.launched for key in daemon.keys_of(request))
    assert found == sorted(name.removesuffix(".csv") for name in new), (len(found), tick.skip_reason)
    return seconds


def measure_size(endpoint_url: str, objects: int, runs: int, new_per_round: int) -> dict[str, list[float]]:
    """The listing and notification ticks of each round over a bucket of `objects` objects at rest."""
    bucket = f"bench-{objects}"
    names = [f"file-{index:06d}.csv" for index in range(objects)]
    seconds = _s3.upload(endpoint_url, bucket, PREFIX, names, lambda _: HEADER.encode())
    print(f"{objects:,} objects put in {seconds:.0f} s", flush=True)
    os.environ.update(SOURCE_DIR=f"s3://{bucket}/{PREFIX}", SENSOR_INCLUDE_EXISTING_FILES="false")
    os.environ.pop("SOURCE_QUEUE_URL", None)
    times: dict[str, list[float]] = {"listing": [], "notification": []}
    with dg.instance_for_test() as listed, dg.instance_for_test() as notified:
        defs = load_defs()
        daemons = {"listing": SensorDaemon(listed, defs), "notification": SensorDaemon(notified, defs)}
        for daemon in daemons.values():  # first ticks: every object registered, none requested
            first = daemon.tick(execute=False)
            assert not first.launched, first.skip_reason
        queue_url = create_queue(endpoint_url, f"s3://{bucket}/{PREFIX}", f"events-{objects}")
        os.environ["SENSOR_INCLUDE_EXISTING_FILES"] = "true"
        for run in range(runs):
            new = [f"new-{run}-{index:03d}.csv" for index in range(new_per_round)]
            _s3.upload(endpoint_url, bucket, PREFIX, new, lambda _: HEADER.encode())
            time.sleep(2.5)  # past the whole-second slack of the storage's timestamps
            order = ["listing", "notification"] if run % 2 == 0 else ["notification", "listing"]
            for mode in order:
                queue = queue_url if mode == "notification" else None
                times[mode].append(tick_seconds(daemons[mode], queue, new))
            print(
                f"{objects:,} objects, round {run + 1}: listing tick {times['listing'][-1]:.2f} s,"
                f" notification tick {times['notification'][-1]:.3f} s",
                flush=True,
            )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[100_000, 10_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--new", type=int, default=100, help="objects put before each round's ticks")
    args = parser.parse_args()

    results: dict[int, dict[str, list[float]]] = {}
    with (
        tempfile.TemporaryDirectory() as scratch,
        _s3.moto_server_process(Path(scratch) / "moto.log", age_seconds=AT_REST_SECONDS) as endpoint_url,
    ):
        os.environ.update(
            _s3.aws_settings(endpoint_url),
            DUCKDB_DATABASE=str(Path(scratch) / "data.duckdb"),
            SENSOR_SETTLE_SECONDS="0",
            SENSOR_MAX_BATCH="500",
            SENSOR_MAX_RUNS_PER_TICK="20",
            SOURCE_RECONCILE_MINUTES="0",
        )
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
            os.environ.pop(name, None)
        for objects in args.objects:
            results[objects] = measure_size(endpoint_url, objects, args.runs, args.new)

    for objects, times in results.items():
        print(summary(f"{objects:,} objects: listing tick", times["listing"]))
        print(summary(f"{objects:,} objects: notification tick", times["notification"]))
        ratio = statistics.median(times["listing"]) / statistics.median(times["notification"])
        print(f"{objects:,} objects: listing / notification, median ratio {ratio:.1f}x (target at least 50x)")
    if len(results) > 1:
        largest, smallest = max(results), min(results)
        growth = statistics.median(results[largest]["notification"]) / statistics.median(
            results[smallest]["notification"]
        )
        print(
            f"notification tick at {largest:,} / at {smallest:,} objects: median ratio {growth:.2f}x"
            " (target at most 1.5x)"
        )


if __name__ == "__main__":
    sys.exit(main())

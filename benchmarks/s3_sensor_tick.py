"""Benchmark 5: one `dynamic_sensor` tick over an S3 prefix of 100,000 objects with nothing new.

The objects are put under `s3://<bucket>/landing/` on moto's standalone server (`benchmarks._s3`), in
a process of its own by default (`--server thread`: in this process, as the tests run it). The real
`dynamic_sensor` is evaluated once without a cursor, its partitions registered and its cursor kept, as
the daemon would (`SensorDaemon.tick(execute=False)`); then each timed tick is one more such tick that
finds nothing new. Every S3 request the sensor makes is counted by operation (a botocore `before-call`
hook on each client dagster-aws's `S3Resource.get_client` makes for the sensor).

`--age` backdates the objects (their LastModified that many seconds before the storage's clock). The
default, 2 hours, is a prefix at rest: every object older than the sensor's 1-hour rewrite lookback.
`--age 0` is the first hour after a bulk upload, when every object is within the lookback and the
cursor keeps the version of each.

Baseline, in the same run and interleaved: a bare paginated `list_objects_v2` of the same prefix (page
size 1,000, Delimiter "/") with a client made beforehand, the least any tick must ask of the storage.
Also reported: this process's CPU time for each (the client's side: HTTP and botocore's parsing, apart
from the server's work), and the same idle tick over pages recorded from a listing, already parsed: the
sensor's own work per object (`Replay`).
Run: `.venv/bin/python -m benchmarks.s3_sensor_tick [--objects 100000] [--runs 5] [--age 7200]
[--server process|thread]`
"""

import argparse
import collections
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource

from benchmarks import _s3
from benchmarks._stats import ratio_line, summary
from dagster_and_etl.definitions import defs as load_defs
from dagster_and_etl.ingest.source_bucket import BucketSource
from dagster_and_etl.local_s3 import s3_server
from dagster_and_etl.sample_data import HEADER
from dagster_and_etl.testing import SensorDaemon

BUCKET, PREFIX = "bench", "landing/"
PAGING = {"PaginationConfig": {"PageSize": 1000}}
# Dagster's limit on one sensor evaluation, and the share of it a tick should plan to use.
EVALUATION_LIMIT_S = 60
MARGIN = 0.5


class Counted:
    """The sensor's S3 clients, each with a hook counting its requests by operation, and the time spent
    making the clients and listing."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.client_seconds = 0.0
        self.list_seconds = 0.0
        self.clients = 0

    def reset(self) -> None:
        self.calls.clear()
        self.client_seconds = self.list_seconds = 0.0
        self.clients = 0

    def wrap_client(self, make: Callable[[S3Resource], object]) -> Callable[[S3Resource], object]:
        def counted_client(resource: S3Resource):
            started = time.perf_counter()
            s3 = make(resource)
            self.client_seconds += time.perf_counter() - started
            self.clients += 1
            # Once per client: the project makes one for each tick that reads the bucket.
            s3.meta.events.register("before-call.s3", self._count, unique_id=f"benchmark-count-{id(self)}")
            return s3

        return counted_client

    def wrap_list(self, list_: Callable) -> Callable:
        def timed_list(source: BucketSource):
            started = time.perf_counter()
            try:
                return list_(source)
            finally:
                self.list_seconds += time.perf_counter() - started

        return timed_list

    def _count(self, model, **_) -> None:
        self.calls[model.name] += 1


class Replay:
    """A stand-in S3 client that answers a listing with pages recorded from the real one: a tick with it
    is the sensor's own work, without HTTP or botocore's parsing of the answers."""

    def __init__(self, pages: list[dict]) -> None:
        self.pages = pages

    def get_paginator(self, operation: str) -> "Replay":
        assert operation == "list_objects_v2", operation
        return self

    def paginate(self, **kwargs) -> Iterator[dict]:
        assert kwargs == {"Bucket": BUCKET, "Prefix": PREFIX, "Delimiter": "/", **PAGING}, kwargs
        return iter(self.pages)


def bare_list(s3, calls: collections.Counter[str]) -> int:
    """A bare paginated listing of the prefix, as the sensor asks for it; the keys it found."""
    found = 0
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=PREFIX, Delimiter="/", **PAGING
    )
    for page in pages:
        calls["ListObjectsV2"] += 1
        found += len(page.get("Contents", ()))
    return found


def measured(fn: Callable[[], object]) -> tuple[float, float, object]:
    """Wall-clock and this process's CPU seconds of one call, and what it returned."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def server(kind: str, scratch: Path, age: float) -> contextlib.AbstractContextManager[str]:
    if kind == "process":
        return _s3.moto_server_process(scratch / "moto.log", age_seconds=age)
    assert not age, "--age needs --server process"
    return s3_server(0)  # moto in a thread of this process, as the tests and make dev-s3 run it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--age", type=float, default=7200, help="seconds the objects are backdated")
    parser.add_argument("--server", choices=("process", "thread"), default="process")
    args = parser.parse_args()

    counted = Counted()
    with (
        tempfile.TemporaryDirectory() as scratch,
        server(args.server, Path(scratch), args.age) as endpoint_url,
        dg.instance_for_test() as instance,
    ):
        names = [f"file-{index:06d}.csv" for index in range(args.objects)]
        body = HEADER.encode()
        seconds = _s3.upload(endpoint_url, BUCKET, PREFIX, names, lambda _: body)
        print(
            f"{args.objects:,} objects put in {seconds:.0f} s ({args.objects / seconds:.0f}/s),"
            f" moto_server in {'a process of its own' if args.server == 'process' else 'this process'},"
            f" objects backdated {args.age:g} s",
            flush=True,
        )
        os.environ.update(
            _s3.aws_settings(endpoint_url),
            SOURCE_DIR=f"s3://{BUCKET}/{PREFIX}",
            DUCKDB_DATABASE=str(Path(scratch) / "data.duckdb"),
            SENSOR_SETTLE_SECONDS="0",
            SENSOR_MAX_BATCH="1000",
            SENSOR_MAX_RUNS_PER_TICK=str(args.objects),
        )
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
            os.environ.pop(name, None)
        S3Resource.get_client = counted.wrap_client(S3Resource.get_client)
        BucketSource.list = counted.wrap_list(BucketSource.list)
        time.sleep(2.5)  # past the whole-second slack of the storage's timestamps
        daemon = SensorDaemon(instance, load_defs())

        first = daemon.tick(execute=False)  # registers every object and requests their runs
        registered = len(instance.get_dynamic_partitions("dynamic_partition"))
        print(
            f"first tick: {len(first.launched)} runs requested, {registered:,} partitions registered,"
            f" requests {dict(counted.calls)}",
            flush=True,
        )
        assert registered == args.objects, registered

        def idle_tick():
            tick = daemon.tick(execute=False)
            assert not tick.result.run_requests, "a tick with nothing new requested runs"
            assert not tick.result.dynamic_partitions_requests, "a tick with nothing new registered keys"
            return tick

        idle_tick()  # the first idle tick: warms what the later ones reuse
        bare_client = _s3.client(endpoint_url)
        bare_calls: collections.Counter[str] = collections.Counter()
        assert bare_list(bare_client, bare_calls) == args.objects
        bare: list[float] = []
        bare_cpu: list[float] = []
        ticks: list[float] = []
        tick_cpu: list[float] = []
        requests: list[dict[str, int]] = []
        parts: list[tuple[float, float]] = []
        for run in range(args.runs):  # interleaved, so both see the same machine
            bare_calls.clear()
            wall, cpu, found = measured(lambda: bare_list(bare_client, bare_calls))
            assert found == args.objects, found
            bare.append(wall)
            bare_cpu.append(cpu)
            counted.reset()
            wall, cpu, tick = measured(idle_tick)
            ticks.append(wall)
            tick_cpu.append(cpu)
            requests.append(dict(counted.calls))
            parts.append((counted.client_seconds, counted.list_seconds))
            print(
                f"run {run + 1}: bare list {bare[-1]:.2f} s ({bare_calls['ListObjectsV2']} LIST);"
                f" tick {wall:.2f} s, requests {requests[-1]}, {counted.clients} client(s) made",
                flush=True,
            )
        cursor = daemon.cursor or ""
        # The sensor's own work: the same idle tick over the pages of a listing made after the last tick
        # (so the storage's clock in them is not behind the cursor's), already parsed.
        recorded = list(
            bare_client.get_paginator("list_objects_v2").paginate(
                Bucket=BUCKET, Prefix=PREFIX, Delimiter="/", **PAGING
            )
        )
        replay = Replay(recorded)
        S3Resource.get_client = lambda _resource: replay
        replayed: list[float] = []
        for _ in range(args.runs):
            replayed.append(measured(idle_tick)[0])

    print(summary("bare paginated list_objects_v2", bare))
    print(summary("sensor tick, nothing new", ticks))
    print(summary("  of which: making the S3 client", [made for made, _ in parts]))
    print(summary("  of which: BucketSource.list", [listed for _, listed in parts]))
    print(summary("  process CPU, bare list", bare_cpu))
    print(summary("  process CPU, tick", tick_cpu))
    print(summary("  sensor's own work (replayed pages)", replayed))
    print(ratio_line("tick / bare list", ticks, bare, 1.5))
    lists = {r.get("ListObjectsV2", 0) for r in requests}
    print(f"S3 requests per idle tick: {requests[-1]} (LIST per tick over the runs: {sorted(lists)})")
    print(f"cursor: {len(cursor.encode()):,} bytes")
    print(f"skip reason: {tick.skip_reason}")
    per_second = args.objects / statistics.median(ticks)
    print(
        f"idle tick: {per_second:,.0f} objects/s -> {per_second * EVALUATION_LIMIT_S:,.0f} objects in"
        f" {EVALUATION_LIMIT_S} s, {per_second * EVALUATION_LIMIT_S * MARGIN:,.0f} with a margin of"
        f" {1 / MARGIN:g}x (the tick in at most {EVALUATION_LIMIT_S * MARGIN:g} s)"
    )
    cpu_per_object = statistics.median(tick_cpu) / args.objects
    print(f"tick CPU in this process: {cpu_per_object * 1e6:.1f} us per object")
    own = statistics.median(replayed) / args.objects
    print(f"sensor's own work (replayed pages): {own * 1e6:.1f} us per object")


if __name__ == "__main__":
    sys.exit(main())

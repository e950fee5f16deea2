"""Benchmark 6: 1,000 new objects in an S3 prefix, loaded by the sensor under the project's `dagster dev`.

Each round measures, each in a scratch folder of its own with benchmark 1's machinery
(`benchmarks.ingest`: a fresh DAGSTER_HOME with the project's `.dagster_home/dagster.yaml`, a fresh
DuckDB, `dagster dev` on 127.0.0.1 killed with everything it started when the measurement ends):
- s3: the same 1,000 sample files as benchmark 1, put as objects under `s3://<a new bucket>/landing/`
  on moto's standalone server, in a process of its own on loopback (`benchmarks._s3`), with
  SOURCE_DIR and the standard AWS settings pointing at it; from turning `dynamic_sensor` on until every
  partition of `duckdb_dynamic_partition_table` is materialized. The S3 requests of the measurement
  are counted from the server's request log;
- folder: benchmark 1's clean ingest of the same files from a local folder, the baseline (target: the
  S3 ingest at most 1.2x its median).
The order alternates from one round to the next (folder first, then S3 first), so drift in the
machine's load falls on both. Both must run the same runs over the same key ranges (checked).
Run: `.venv/bin/python -m benchmarks.s3_ingest [--files 1000] [--runs 3]`
"""

import argparse
import collections
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from benchmarks import _s3, ingest
from benchmarks._stats import ratio_line, summary
from tests.dagster_dev_process import PROJECT_ROOT, wait_for

PREFIX = "landing/"
# A request line of the server's log: `127.0.0.1 - - [date] "GET /bucket/key?query HTTP/1.1" 200 -`.
REQUEST_LINE = re.compile(r'"(GET|HEAD|PUT|POST|DELETE) /([^/?" ]+)(/[^?" ]*)?(\?[^" ]*)? HTTP')


def s3_requests(log: Path, bucket: str) -> collections.Counter[str]:
    """The requests on `bucket` in the server's log, by kind: LIST, HEAD, GET (an object), PUT, ..."""
    counts: collections.Counter[str] = collections.Counter()
    for match in REQUEST_LINE.finditer(log.read_text(errors="replace")):
        method, found, key, query = match.groups()
        if found != bucket:
            continue
        if method == "GET" and not key and query and "list-type=2" in query:
            counts["LIST"] += 1
        else:
            counts[method if key else f"{method} bucket"] += 1
    return counts


def one_s3(files: int, scratch: Path, endpoint_url: str, log: Path, bucket: str) -> tuple[float, list, dict]:
    """Seconds from turning the sensor on until every partition is materialized, the key range of each
    run, and the S3 requests on the bucket while `dagster dev` ran."""
    home = scratch / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / ".dagster_home" / "dagster.yaml").read_text())
    keys, _ = ingest.write_files(scratch / "staged", files, set())
    bodies = [(scratch / "staged" / f"{key}.csv").read_bytes() for key in keys]
    names = [f"{key}.csv" for key in keys]
    _s3.upload(endpoint_url, bucket, PREFIX, names, lambda index: bodies[index])
    before = s3_requests(log, bucket)
    env = {
        **_s3.aws_settings(endpoint_url),
        "SOURCE_DIR": f"s3://{bucket}/{PREFIX}",
        "DUCKDB_DATABASE": str(scratch / "data.duckdb"),
    }
    table = ingest.PROJECT_TABLE
    with ingest.dagster_dev(
        ingest.PROJECT[0], ingest.PROJECT_LOCATION, home, env, scratch / "dev.log"
    ) as port:
        time.sleep(6)  # the objects are older than the settle window
        started = time.perf_counter()
        ingest.start_sensor(port, "dynamic_sensor", ingest.PROJECT_LOCATION)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            wait_for(
                lambda: len(ingest.materialized(instance, table)) >= len(keys),
                1800,
                f"{len(keys)} materialized partitions of {table.to_user_string()}",
                1,
            )
            elapsed = time.perf_counter() - started
            ingest.check_loopback_only(home)  # the run workers too
            assert ingest.materialized(instance, table) == set(keys)
            ranges = ingest.run_ranges(instance)
    ingest.check_duckdb(scratch / "data.duckdb", keys)
    requests = s3_requests(log, bucket)
    requests.subtract(before)
    return elapsed, ranges, {kind: count for kind, count in requests.items() if count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)  # only the S3 measurement's `dagster dev` gets AWS settings

    results: dict[str, list[float]] = {"folder": [], "s3": []}
    batching: list[tuple[str, str]] | None = None
    with tempfile.TemporaryDirectory(prefix="s3-ingest-") as server_scratch:
        log = Path(server_scratch) / "moto.log"
        with _s3.moto_server_process(log) as endpoint_url:
            for run in range(args.runs):
                order = ("folder", "s3") if run % 2 == 0 else ("s3", "folder")
                done = []
                for name in order:
                    with tempfile.TemporaryDirectory(prefix=f"ingest-{name}-") as scratch:
                        if name == "folder":
                            seconds, ranges = ingest.one_clean(args.files, Path(scratch))
                            done.append(f"folder {seconds:.2f} s")
                        else:
                            bucket = f"ingest-{run}"
                            seconds, ranges, requests = one_s3(
                                args.files, Path(scratch), endpoint_url, log, bucket
                            )
                            done.append(f"s3 {seconds:.2f} s, S3 requests {requests}")
                    results[name].append(seconds)
                    batching = batching or ranges
                    assert ranges == batching, f"{name} ran {ranges}, another ingest {batching}"
                print(f"run {run + 1}: {'; '.join(done)}", flush=True)
    assert batching is not None
    spans = ", ".join(f"{first}..{last}" for first, last in batching)
    print(f"every ingest ran the same {len(batching)} run(s): {spans}")
    print(summary(f"{args.files} files from a local folder", results["folder"]))
    print(summary(f"{args.files} objects from an S3 prefix", results["s3"]))
    print(ratio_line("S3 ingest / folder ingest", results["s3"], results["folder"], 1.2))


if __name__ == "__main__":
    sys.exit(main())

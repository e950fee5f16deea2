"""Benchmark 1: new files dropped into SOURCE_DIR, loaded by the sensor under the project's `dagster dev`.

Each round measures, every measurement in a scratch folder of its own (a fresh DAGSTER_HOME with the
project's `.dagster_home/dagster.yaml`, a fresh source folder and DuckDB), with the project's settings:
- clean: from turning `dynamic_sensor` on until every partition of `duckdb_dynamic_partition_table` is
  materialized;
- bad: the same with `--bad` of the files (10 of 1,000 by default, spread evenly through the key order)
  holding a bad date on one line: until every good partition is materialized. Afterwards, untimed, every
  run must end and each bad partition must end failed, not materialized, and absent from DuckDB;
- floor: Dagster's own cost of the same: `benchmarks/ingest_floor.py` under `dagster dev`, whose sensor
  plans with the project's `plan_tick` (same keys, same batches, same ranges) and whose two assets do
  nothing but report a materialization per partition; until every partition of `floor_table` is
  materialized. The clean ingest is reported as a ratio of this floor's median (target at most 1.15x);
- gzip: the clean ingest with `--gzip` of the files (500 of 1,000 by default, every other one) written
  as `<key>.csv.gz`, reported as a ratio of the clean ingest's median (target at most 1.1x);
- bare: the same files loaded in-process with `load_partitions` in one call, no Dagster at all.
Every `dagster dev` listens on 127.0.0.1 only and its process group is killed when its measurement ends;
any process left with the measurement's DAGSTER_HOME (another group) is killed too, and reported.
With `--storage sqlite postgres`, every round measures each of them on both Dagster instances: the
project's `.dagster_home/dagster.yaml` (SQLite), and the production `deploy/dagster.yaml` on a PostgreSQL
server of this machine (Debian's package, started once for the benchmark in the system's temporary
folder, beside the SQLite homes; a fresh database per measurement), reached through PgBouncer
(`deploy/pgbouncer.ini`) as in production, or with `postgres-direct` without it.
Run: `.venv/bin/python -m benchmarks.ingest [--files 1000] [--bad 10] [--gzip 500] [--runs 3]
[--storage sqlite postgres postgres-direct]`
"""

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import gzip
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import dagster as dg
import duckdb

from benchmarks import ingest_floor
from benchmarks._stats import ratio_line, summary
from dagster_and_etl.defs.partitions import dynamic_partitions_def
from dagster_and_etl.ingest.duckdb_load import load_partitions
from dagster_and_etl.ingest.duckdb_tables import RawTable
from dagster_and_etl.local_postgres import LocalPostgres, running
from dagster_and_etl.sample_data import sample_csv
from dagster_and_etl.tags import RANGE_END_TAG, RANGE_START_TAG
from tests.dagster_dev_process import (
    BIN,
    PROJECT_ROOT,
    free_port,
    location_loaded,
    start_sensor,
    stop_group,
    wait_for,
)

PROJECT_LOCATION = "dagster_and_etl"
PROJECT_TABLE = dg.AssetKey("duckdb_dynamic_partition_table")
FLOOR_TABLE = dg.AssetKey("floor_table")
FIRST_DAY = dt.date(2000, 1, 1)
ROWS_PER_FILE = 10
# The data line (1 is the first after the header) that holds the bad date in a bad file.
BAD_LINE = 6
BAD_DATE = "2018/13/01"  # no 13th month: DuckDB rejects the line, the load sets the file aside
MEASUREMENTS = ("bare", "floor", "clean", "bad", "gzip")
# How long the runs of the bad-file ingest may take to end after the last good partition is in.
SETTLE_TIMEOUT = 300


# 127.0.0.1 and ::1 as /proc/net/tcp and tcp6 write them.
LOOPBACK_V4 = "0100007F"
LOOPBACK_V6 = "00000000000000000000000001000000"


def processes_with_home(home: Path) -> dict[int, int]:
    """pid -> process group of every live process started with this DAGSTER_HOME (ours: the home is a
    scratch folder made for one measurement)."""
    marker = f"DAGSTER_HOME={home}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = os.getpgid(int(entry.name))
        except (OSError, ProcessLookupError):
            continue  # gone, or not ours to read
    return found


def wait_gone(home: Path, timeout: float = 15) -> dict[int, int]:
    """The processes with this DAGSTER_HOME still alive after `timeout` s (killed ones take a moment)."""
    deadline = time.monotonic() + timeout
    while (left := processes_with_home(home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def stop(process: subprocess.Popen, home: Path) -> None:
    """Stops `dagster dev` and everything it started: its process group, then any other process group
    holding a process with its DAGSTER_HOME."""
    stop_group(process)
    own_group = os.getpgid(0)
    strays = {pgid for pgid in wait_gone(home).values() if pgid != own_group}
    for pgid in strays:
        print(f"  killing process group {pgid}, left over from dagster dev", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    left = wait_gone(home)
    assert not left, f"processes of this measurement still alive (pid: process group): {left}"


def listeners(home: Path) -> list[tuple[str, int]]:
    """The TCP addresses and ports the processes with this DAGSTER_HOME listen on."""
    sockets: dict[str, tuple[str, int]] = {}  # socket inode -> address, port
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                address, port = fields[1].split(":")
                sockets[fields[9]] = (address, int(port, 16))
    found = []
    for pid in processes_with_home(home):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in sockets:
                        found.append(sockets[link[8:-1]])
    return found


def check_loopback_only(home: Path) -> None:
    """Every server of this measurement listens on 127.0.0.1 (code servers use Unix sockets)."""
    exposed = [(a, p) for a, p in listeners(home) if a not in (LOOPBACK_V4, LOOPBACK_V6)]
    assert not exposed, f"servers listening beyond 127.0.0.1 (address in /proc/net/tcp form, port): {exposed}"


def _startup(process: subprocess.Popen, port: int, location: str, home: Path, log: Path) -> str | None:
    """Returns "ready" once this `dagster dev` serves `port` with `location` loaded; "retry" if it lost
    the port to another process or died; None while it is starting. Only a webserver whose socket
    belongs to a process of this measurement is ever asked anything: another may hold the port."""
    if process.poll() is not None or "address already in use" in log.read_text(errors="replace"):
        return "retry"
    if not any(p == port for _, p in listeners(home)):
        return None
    return "ready" if location_loaded(port, location) else None


@contextlib.contextmanager
def dagster_dev(workspace: Path, location: str, home: Path, env: dict[str, str], log: Path) -> Iterator[int]:
    """`dagster dev` on 127.0.0.1 in a process group of its own, yielding its port once `location` loaded;
    it is started again on another port if another process takes its port first."""
    for attempt in range(1, 4):
        port = free_port()
        with log.open("w") as output:
            process = subprocess.Popen(
                [BIN / "dagster", "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
                cwd=PROJECT_ROOT,
                env={**os.environ, **env, "DAGSTER_HOME": str(home)},
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            starting = functools.partial(_startup, process, port, location, home, log)
            state = wait_for(starting, 180, f"dagster dev to load {location}")
            if state == "ready":
                check_loopback_only(home)
                break
            print(
                f"  dagster dev lost port {port} or died (attempt {attempt}); starting it again",
                file=sys.stderr,
            )
        except BaseException:
            _print_tail(log)
            stop(process, home)
            raise
        stop(process, home)
    else:
        _print_tail(log)
        raise AssertionError("dagster dev did not start in 3 attempts")
    try:
        yield port
    except BaseException:
        _print_tail(log)
        raise
    finally:
        stop(process, home)


def _print_tail(log: Path) -> None:
    lines = log.read_text(errors="replace").splitlines()
    print("\n".join(["  last lines of dagster dev's log:", *lines[-40:]]), file=sys.stderr)


def write_files(
    source: Path, files: int, bad: set[int], gzipped: frozenset[int] = frozenset()
) -> tuple[list[str], list[str]]:
    """The sample files, oldest first, so the sensor registers them in key order; the files at the
    indexes in `bad` hold a bad date on one line, those in `gzipped` are `<key>.csv.gz`. Returns the
    good keys and the bad keys."""
    source.mkdir(parents=True)
    good_keys, bad_keys = [], []
    for index in range(files):
        day = FIRST_DAY + dt.timedelta(days=index)
        text = sample_csv(seed=day.toordinal(), rows=ROWS_PER_FILE)
        if index in bad:
            lines = text.split("\n")
            lines[BAD_LINE] = f'"{BAD_DATE}"' + lines[BAD_LINE][lines[BAD_LINE].index(",") :]
            text = "\n".join(lines)
        if index in gzipped:
            (source / f"{day.isoformat()}.csv.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (source / f"{day.isoformat()}.csv").write_text(text)
        (bad_keys if index in bad else good_keys).append(day.isoformat())
    return good_keys, bad_keys


def spread(files: int, bad: int) -> set[int]:
    """`bad` file indexes spread evenly through `files`, none at either end."""
    return {int((i + 0.5) * files / bad) for i in range(bad)} if bad else set()


def materialized(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> set[str]:
    return instance.get_materialized_partitions(asset_key)


def run_ranges(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    """The first and last partition key of each run, in key order: how the sensor batched the files."""
    ranges = []
    for run in instance.get_runs():
        tags = run.tags
        if "dagster/partition" in tags:
            ranges.append((tags["dagster/partition"], tags["dagster/partition"]))
        else:
            ranges.append((tags[RANGE_START_TAG], tags[RANGE_END_TAG]))
    return sorted(ranges)


def all_runs_ended(instance: dg.DagsterInstance) -> bool:
    runs = instance.get_runs()
    return bool(runs) and all(run.is_finished for run in runs)


@dataclass(frozen=True)
class Storage:
    """A Dagster instance configuration to measure on: SQLite, or PostgreSQL on `server`."""

    name: str
    config: Path
    server: LocalPostgres | None = None

    def settings(self) -> dict[str, str]:
        """What a measurement's processes need to reach a fresh instance: on PostgreSQL, a new database."""
        if self.server is None:
            return {}
        database = f"bench_{uuid.uuid4().hex[:12]}"
        self.server.create_database(database)
        return self.server.environment(database)


SQLITE = Storage("sqlite", PROJECT_ROOT / ".dagster_home" / "dagster.yaml")


def timed_ingest(
    scratch: Path,
    files: int,
    bad: set[int],
    location: tuple[Path, str, str, dg.AssetKey],
    after: Callable[[dg.DagsterInstance, list[str], list[str]], None] | None = None,
    storage: Storage = SQLITE,
    gzipped: frozenset[int] = frozenset(),
) -> tuple[float, list[str], list[tuple[str, str]]]:
    """Seconds from turning the sensor on until every good partition of the table is materialized, the
    good keys, and the key range of each run. `location`: the workspace file, the location's name, its
    sensor and its table asset. `after` checks, untimed, what the instance holds then, while `dagster
    dev` still runs."""
    workspace, location_name, sensor, table = location
    home, source = scratch / "dagster_home", scratch / "source"
    home.mkdir()
    (home / "dagster.yaml").write_text(storage.config.read_text())
    good_keys, bad_keys = write_files(source, files, bad, gzipped)
    instance_settings = storage.settings()
    env = {"SOURCE_DIR": str(source), "DUCKDB_DATABASE": str(scratch / "data.duckdb"), **instance_settings}
    dev = dagster_dev(workspace, location_name, home, env, scratch / "dagster-dev.log")
    with dev as port, mock.patch.dict(os.environ, instance_settings):
        time.sleep(6)  # the files are older than the settle window
        started = time.perf_counter()
        start_sensor(port, sensor, location_name)
        # One instance for all the polls: opening one per poll would load the machine being measured.
        with dg.DagsterInstance.from_config(str(home)) as instance:
            wait_for(
                lambda: len(materialized(instance, table)) >= len(good_keys),
                1800,
                f"{len(good_keys)} materialized partitions of {table.to_user_string()}",
                1,
            )
            elapsed = time.perf_counter() - started
            check_loopback_only(home)  # the run workers too
            if after is not None:
                after(instance, good_keys, bad_keys)
            assert materialized(instance, table) == set(good_keys)
            ranges = run_ranges(instance)
    return elapsed, good_keys, ranges


def check_duckdb(database: Path, good_keys: list[str]) -> None:
    """The good partitions, each with its rows, are in DuckDB, and nothing else."""
    with duckdb.connect(str(database), read_only=True) as conn:
        found = conn.execute("SELECT partition_key, count(*) FROM raw_dynamic_partition_data GROUP BY ALL")
        rows = dict(found.fetchall())
    assert rows == dict.fromkeys(good_keys, ROWS_PER_FILE), (
        f"{len(rows)} partitions in DuckDB, {len(rows.keys() - set(good_keys))} of them not good ones,"
        f" {sum(rows.values())} rows"
    )


def check_bad_partitions(instance: dg.DagsterInstance, good_keys: list[str], bad_keys: list[str]) -> None:
    """Untimed: once every run has ended, the good partitions are materialized and the bad ones failed."""
    wait_for(lambda: all_runs_ended(instance), SETTLE_TIMEOUT, "every run to end", 1)
    keys = good_keys + bad_keys
    status = instance.get_status_by_partition(PROJECT_TABLE, keys, dynamic_partitions_def)
    assert status is not None, "no partition status for duckdb_dynamic_partition_table"
    counts: dict[str, int] = {}
    for value in status.values():
        counts[str(value)] = counts.get(str(value), 0) + 1
    wrong_bad = {key: status[key] for key in bad_keys if status[key] != dg.AssetPartitionStatus.FAILED}
    wrong_good = [key for key in good_keys if status[key] != dg.AssetPartitionStatus.MATERIALIZED]
    assert not wrong_bad and not wrong_good, (
        f"partition status {counts}; bad not failed: {wrong_bad}; good not materialized: {wrong_good[:5]}"
    )


PROJECT = (PROJECT_ROOT / "workspace.yaml", PROJECT_LOCATION, "dynamic_sensor", PROJECT_TABLE)


# Seconds, and the key range of each run (None for the bare load).
Measured = tuple[float, list[tuple[str, str]] | None]


def one_clean(files: int, scratch: Path, storage: Storage = SQLITE) -> Measured:
    elapsed, good_keys, ranges = timed_ingest(scratch, files, set(), PROJECT, storage=storage)
    check_duckdb(scratch / "data.duckdb", good_keys)
    return elapsed, ranges


def one_bad(files: int, bad: int, scratch: Path, storage: Storage = SQLITE) -> Measured:
    bad_files = spread(files, bad)
    elapsed, good_keys, ranges = timed_ingest(
        scratch, files, bad_files, PROJECT, check_bad_partitions, storage
    )
    check_duckdb(scratch / "data.duckdb", good_keys)
    return elapsed, ranges


def one_gzip(files: int, gzipped: int, scratch: Path, storage: Storage = SQLITE) -> Measured:
    """The clean ingest with `gzipped` of the files, every other one, compressed: `<key>.csv.gz`."""
    every_other = frozenset(range(0, files, max(1, files // gzipped))[:gzipped])
    elapsed, good_keys, ranges = timed_ingest(
        scratch, files, set(), PROJECT, storage=storage, gzipped=every_other
    )
    check_duckdb(scratch / "data.duckdb", good_keys)
    return elapsed, ranges


def one_floor(files: int, scratch: Path, storage: Storage = SQLITE) -> Measured:
    workspace = scratch / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n"
        f"      module_name: {ingest_floor.__name__}\n"
        f"      location_name: {ingest_floor.LOCATION_NAME}\n"
        f"      working_directory: {PROJECT_ROOT}\n"
    )
    location = (workspace, ingest_floor.LOCATION_NAME, ingest_floor.SENSOR_NAME, FLOOR_TABLE)
    elapsed, _, ranges = timed_ingest(scratch, files, set(), location, storage=storage)
    assert not (scratch / "data.duckdb").exists(), "the floor touched DuckDB"
    return elapsed, ranges


def one_bare_load(files: int, scratch: Path, storage: Storage = SQLITE) -> Measured:
    source = scratch / "source"
    write_files(source, files, set())
    paths = sorted(source.iterdir())
    with duckdb.connect(str(scratch / "bare.duckdb")) as conn:
        started = time.perf_counter()
        report = load_partitions(conn, RawTable.DYNAMIC, {path.stem: path for path in paths})
        elapsed = time.perf_counter() - started
    assert len(report.loaded) == files and not report.failed, (len(report.loaded), report.failed)
    return elapsed, None


@contextlib.contextmanager
def storages(names: list[str]) -> Iterator[list[Storage]]:
    """The instance configurations to measure on; PostgreSQL's server runs for as long as the block."""
    if not any(name.startswith("postgres") for name in names):
        yield [SQLITE]
        return
    with tempfile.TemporaryDirectory(prefix="ingest-postgres-") as folder:
        Path(folder).chmod(0o755)  # the server runs as the `postgres` user under root
        with running(Path(folder) / "cluster", free_port(), free_port()) as server:
            config = PROJECT_ROOT / "deploy" / "dagster.yaml"
            postgres = Storage("postgres", config, server)
            direct = Storage("postgres-direct", config, dataclasses.replace(server, pooler_port=None))
            yield [storage for storage in (SQLITE, postgres, direct) if storage.name in names]


def measure_rounds(args: argparse.Namespace, chosen: list[Storage]) -> dict[tuple[str, str], list[float]]:
    """Seconds of each measurement on each storage, round after round; the bare load once a round."""
    measure = {
        "bare": lambda scratch, storage: one_bare_load(args.files, scratch, storage),
        "floor": lambda scratch, storage: one_floor(args.files, scratch, storage),
        "clean": lambda scratch, storage: one_clean(args.files, scratch, storage),
        "bad": lambda scratch, storage: one_bad(args.files, args.bad, scratch, storage),
        "gzip": lambda scratch, storage: one_gzip(args.files, args.gzip, scratch, storage),
    }
    plan = [
        (storage, name)
        for storage in chosen
        for name in MEASUREMENTS
        if name in args.only and (name != "bare" or storage is chosen[0])
    ]
    results: dict[tuple[str, str], list[float]] = {(storage.name, name): [] for storage, name in plan}
    batching: list[tuple[str, str]] | None = None
    for run in range(args.runs):
        for storage, name in plan:
            with tempfile.TemporaryDirectory(prefix=f"ingest-{name}-") as scratch:
                seconds, ranges = measure[name](Path(scratch), storage)
            results[(storage.name, name)].append(seconds)
            if ranges is not None:  # every ingest, the floor's too, must batch the files the same way
                batching = batching or ranges
                assert ranges == batching, f"{name} on {storage.name} ran {ranges}, another ingest {batching}"
        done = "; ".join(
            f"{storage} {name} {seconds[-1]:.2f} s" for (storage, name), seconds in results.items()
        )
        print(f"run {run + 1}: {done}", flush=True)
    if batching is not None:
        spans = ", ".join(f"{first}..{last}" for first, last in batching)
        print(f"every ingest ran the same {len(batching)} run(s): {spans}")
    return results


def report(args: argparse.Namespace, results: dict[tuple[str, str], list[float]]) -> None:
    good = args.files - args.bad
    labels = {
        "bare": f"{args.files} files, bare in-process load",
        "floor": f"{args.files} partitions, no-op assets (floor)",
        "clean": f"{args.files} files, sensor under dagster dev",
        "bad": f"{good} good + {args.bad} bad files, to {good} in",
        "gzip": f"{args.files} files, {args.gzip} of them .csv.gz, sensor under dagster dev",
    }
    for (storage, name), seconds in results.items():
        print(summary(f"{storage}: {labels[name]}", seconds))
    for storage in dict.fromkeys(storage for storage, _ in results):
        got = {name: seconds for (where, name), seconds in results.items() if where == storage}
        if "clean" in got and "floor" in got:
            print(ratio_line(f"{storage}: clean ingest / Dagster floor", got["clean"], got["floor"], 1.15))
        if "clean" in got and "gzip" in got:
            print(ratio_line(f"{storage}: gzip ingest / clean ingest", got["gzip"], got["clean"], 1.1))
        if "clean" in got and "bad" in got:
            ratio = statistics.median(got["bad"]) / statistics.median(got["clean"])
            print(f"{storage}: bad-file ingest / clean ingest: median ratio {ratio:.2f}x (reported)")
        if "clean" in got:
            slowest = max(got["clean"])
            verdict = "meets" if slowest <= 60 else "MISSES"
            print(
                f"{storage}: slowest clean ingest {slowest:.1f} s"
                f" (target at most 60 s for 1,000 files) -> {verdict}"
            )
    for name in ("clean", "floor"):
        for postgres in ("postgres", "postgres-direct"):
            if (postgres, name) in results and ("sqlite", name) in results:
                pg, lite = results[(postgres, name)], results[("sqlite", name)]
                print(ratio_line(f"{name}: {postgres} / sqlite", pg, lite, 1.0))
    if ("sqlite", "bare") in results and ("sqlite", "clean") in results:
        ratio = statistics.median(results[("sqlite", "clean")]) / statistics.median(
            results[("sqlite", "bare")]
        )
        print(f"clean ingest / bare load: median ratio {ratio:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000)
    parser.add_argument("--bad", type=int, default=10, help="bad files among --files in the bad-file ingest")
    parser.add_argument("--gzip", type=int, default=500, help="files gzip-compressed in the gzip ingest")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=MEASUREMENTS,
        default=list(MEASUREMENTS),
        help="measure only these (default: all, each round in this order: bare, floor, clean, bad, gzip)",
    )
    parser.add_argument(
        "--storage",
        nargs="+",
        choices=["sqlite", "postgres", "postgres-direct"],
        default=["sqlite"],
        help="the Dagster instances to measure on, each in every round (default: sqlite)",
    )
    args = parser.parse_args()
    assert 0 < args.bad < args.files, "--bad must be at least 1 and fewer than --files"
    with storages(args.storage) as chosen:
        results = measure_rounds(args, chosen)
    report(args, results)


if __name__ == "__main__":
    sys.exit(main())

"""A load killed with SIGKILL leaves its partition with all its old rows or all its new rows, never part of
either; the database opens again with no stale lock and no leftover table, and the next run loads the file.

The load runs in a real process of its own (`replace_partition` through `StagingDatabase`, as the table
assets call it) on a file big enough that it takes seconds, and is killed at several points of it.
"""

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from dagster_and_etl.defs.resources import StagingDatabase
from dagster_and_etl.ingest.duckdb_load import RawTable, replace_partition
from dagster_and_etl.sample_data import write_large_sample_file
from tests.support import write_source_file

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PARTITION = "2018-01-23"
OTHER_DAYS = ["2018-01-22", "2018-01-24"]
OTHER_FILES = ["vendor-a"]  # a dynamic partition, so that both tables exist
OLD_ROWS = 10
# Big enough that its load takes seconds, so that each timed kill below lands in the middle of it.
NEW_ROWS = 5_000_000
RAW_TABLES = [("main", RawTable.DYNAMIC.value), ("main", RawTable.DAILY.value)]
COLUMNS = "date, share_price, amount, spend, shift, spread"
# A partition's exact content, cheaply: how many rows, and the sum of their hashes.
FINGERPRINT = f"count(*), sum(hash({COLUMNS})::HUGEINT)"

# The load as the asset runs it, in a process of its own. It says when the load starts and when it has
# returned, committed; then it keeps its connection open, as a run still busy with other work would.
LOADER = """
import sys, time
from pathlib import Path
from dagster_and_etl.defs.resources import StagingDatabase
from dagster_and_etl.ingest.duckdb_load import RawTable, replace_partition

with StagingDatabase().get_connection() as conn:
    print("LOAD STARTING", flush=True)
    result = replace_partition(conn, RawTable.DAILY, sys.argv[1], Path(sys.argv[2]))
    print("LOAD COMMITTED", result.row_count, flush=True)
    time.sleep(600)
"""

Fingerprint = tuple[int, int | None]


@dataclass(frozen=True)
class NewFile:
    path: Path
    fingerprint: Fingerprint


@pytest.fixture(scope="module")
def new_file(tmp_path_factory: pytest.TempPathFactory) -> NewFile:
    """The partition's big new file, written once for the whole module, with the fingerprint of its rows."""
    path = write_large_sample_file(tmp_path_factory.mktemp("new") / "new.csv", rows=NEW_ROWS, seed=1)
    with duckdb.connect() as conn:
        fingerprint = conn.execute(
            f"""SELECT {FINGERPRINT} FROM read_csv(?, header = true, dateformat = '%Y/%m/%d', columns = {{
                'date': 'DATE', 'share_price': 'DECIMAL(18, 4)', 'amount': 'DECIMAL(18, 4)',
                'spend': 'DECIMAL(18, 4)', 'shift': 'DECIMAL(18, 4)', 'spread': 'DECIMAL(18, 4)'}})""",
            [str(path)],
        ).fetchone()
    assert fingerprint[0] == NEW_ROWS
    return NewFile(path, fingerprint)


@dataclass(frozen=True)
class Contents:
    partition: Fingerprint  # the partition being loaded
    others: dict[str, list[tuple]]  # every row of every other partition of both tables, by table


def read_database(duckdb_path: Path) -> Contents:
    """Opens the file for writing, which fails while a lock is still held, and checks that only the two
    raw tables are in it: no table a load made for itself is left behind."""
    with duckdb.connect(str(duckdb_path)) as conn:
        tables = conn.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL").fetchall()
        assert tables == RAW_TABLES, f"tables in the database: {tables}"
        partition = conn.execute(
            f"SELECT {FINGERPRINT} FROM {RawTable.DAILY.value} WHERE partition_key = ?", [PARTITION]
        ).fetchone()
        others = {
            table.value: conn.execute(
                f"SELECT * FROM {table.value} WHERE partition_key <> ? ORDER BY ALL", [PARTITION]
            ).fetchall()
            for table in RawTable
        }
    return Contents(partition, others)


@pytest.fixture
def before(source_dir: Path, duckdb_path: Path, new_file: NewFile) -> Contents:
    """Every partition loaded from a small file; then the partition's file is replaced by the big one."""
    with StagingDatabase().get_connection() as conn:
        for seed, key in enumerate([PARTITION, *OTHER_DAYS]):
            path = write_source_file(source_dir, f"{key}.csv", seed=seed)
            assert replace_partition(conn, RawTable.DAILY, key, path).row_count == OLD_ROWS
        for seed, key in enumerate(OTHER_FILES, start=10):
            path = write_source_file(source_dir, f"{key}.csv", seed=seed)
            assert replace_partition(conn, RawTable.DYNAMIC, key, path).row_count == OLD_ROWS
    contents = read_database(duckdb_path)
    assert contents.partition[0] == OLD_ROWS
    assert {table: len(rows) for table, rows in contents.others.items()} == {
        RawTable.DAILY.value: OLD_ROWS * len(OTHER_DAYS),
        RawTable.DYNAMIC.value: OLD_ROWS * len(OTHER_FILES),
    }
    (source_dir / f"{PARTITION}.csv").unlink()
    try:
        os.link(new_file.path, source_dir / f"{PARTITION}.csv")  # the module's file, not copied each time
    except OSError:
        shutil.copyfile(new_file.path, source_dir / f"{PARTITION}.csv")
    return contents


class Loader:
    """The loader process, its output read as it comes; it is killed and reaped however the test ends."""

    def __init__(self, log: Path, source_dir: Path, duckdb_path: Path) -> None:
        self.log = log
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", LOADER, PARTITION, str(source_dir / f"{PARTITION}.csv")],
                cwd=PROJECT_ROOT,
                env={**os.environ, "SOURCE_DIR": str(source_dir), "DUCKDB_DATABASE": str(duckdb_path)},
                stdout=subprocess.PIPE,
                stderr=stderr,  # a file: a pipe that no one reads could stall the load
            )
        self.output = b""

    def wait_for_line(self, prefix: str, timeout: float = 60) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            while not any(line.startswith(prefix.encode()) for line in self.output.splitlines()):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"the loader printed no {prefix!r} in {timeout} s: {self.output!r}"
                if selector.select(remaining):
                    chunk = os.read(self.process.stdout.fileno(), 4096)
                    assert chunk, f"the loader ended before {prefix!r}: {self.log.read_text()[-3000:]}"
                    self.output += chunk
        finally:
            selector.close()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL
        self.output += self.process.stdout.read()

    @property
    def committed(self) -> bool:
        return b"LOAD COMMITTED" in self.output

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self.process.stdout.close()


@pytest.fixture
def start_loader(tmp_path: Path, source_dir: Path, duckdb_path: Path) -> Iterator[Callable[[], Loader]]:
    """Starts the loader on this test's folder and database; every loader is gone when the test ends."""
    loaders: list[Loader] = []

    def start() -> Loader:
        loaders.append(Loader(tmp_path / f"loader-{len(loaders)}.log", source_dir, duckdb_path))
        return loaders[-1]

    try:
        yield start
    finally:
        for loader in loaders:
            loader.stop()


def assert_old_or_new(contents: Contents, before: Contents, new_file: NewFile) -> None:
    assert contents.partition in (before.partition, new_file.fingerprint), (
        f"{PARTITION} holds {contents.partition[0]} rows: neither its {OLD_ROWS} old rows"
        f" nor its {NEW_ROWS} new ones"
    )
    assert contents.others == before.others, "a partition that was not being loaded changed"


def assert_the_next_run_loads_the_new_file(
    defs: dg.Definitions, instance: dg.DagsterInstance, duckdb_path: Path, before: Contents, new_file: NewFile
) -> None:
    result = defs.resolve_job_def("import_partition_job").execute_in_process(
        partition_key=PARTITION, instance=instance, raise_on_error=False
    )
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    after = read_database(duckdb_path)
    assert after.partition == new_file.fingerprint
    assert after.others == before.others


@pytest.mark.parametrize("kill_after", [0.2, 0.8, 1.5], ids=lambda seconds: f"{seconds}s")
def test_a_load_killed_mid_way_leaves_the_old_rows_and_the_next_run_loads_the_new_ones(
    kill_after: float,
    start_loader: Callable[[], Loader],
    before: Contents,
    new_file: NewFile,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    duckdb_path: Path,
) -> None:
    loader = start_loader()
    loader.wait_for_line("LOAD STARTING")
    time.sleep(kill_after)
    loader.kill()

    after = read_database(duckdb_path)
    assert_old_or_new(after, before, new_file)
    # The kill came in the middle of the load: had it finished, the partition would hold the new rows.
    assert not loader.committed, f"the load finished within {kill_after} s: make the new file bigger"
    assert after.partition == before.partition
    assert_the_next_run_loads_the_new_file(defs, instance, duckdb_path, before, new_file)


def test_a_load_killed_right_after_its_commit_keeps_all_the_new_rows(
    start_loader: Callable[[], Loader],
    before: Contents,
    new_file: NewFile,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    duckdb_path: Path,
) -> None:
    loader = start_loader()
    loader.wait_for_line("LOAD COMMITTED")
    loader.kill()  # its connection still open: what was committed is only as safe as DuckDB's log

    after = read_database(duckdb_path)
    assert_old_or_new(after, before, new_file)
    assert after.partition == new_file.fingerprint
    assert_the_next_run_loads_the_new_file(defs, instance, duckdb_path, before, new_file)

"""A load killed with SIGKILL leaves its partition with all its old rows or all its new rows, never part of
either, and a load history that says which: the database opens again with no stale lock and no leftover
table, and the next run loads the file and records that it did.

The load runs in a real process of its own (`replace_partition` through `StagingDatabase`, as the table
assets call it) on a file of several row groups. The process stops at named points of the real load and
says so, and is killed there: after the partition's rows are replaced but before the history row is
written, after the history row but before COMMIT, and right after COMMIT. No kill depends on how fast the
machine is. A load rolled back for a bad line, and a plain load, are checked against the history too.
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
from typing import NamedTuple

import dagster as dg
import duckdb
import pytest

from dagster_and_etl.defs.resources import StagingDatabase
from dagster_and_etl.ingest.duckdb_load import load_partitions, replace_partition
from dagster_and_etl.ingest.duckdb_tables import RawTable, loaded_versions
from dagster_and_etl.ingest.source_file_scan import FileVersion
from dagster_and_etl.sample_data import write_large_sample_file
from tests.support import run_daily, write_source_file

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PARTITION = "2018-01-23"
OTHER_DAYS = ["2018-01-22", "2018-01-24"]
OTHER_FILES = ["vendor-a"]  # a dynamic partition, so that both tables exist
OLD_ROWS = 10
# Two row groups of DuckDB's (122,880 rows each) and many of its chunks: a load big enough to be written
# to the database file before it commits, which is what a crash must not leave half of.
NEW_ROWS = 200_000
TABLES = [("main", "load_history"), ("main", RawTable.DYNAMIC.value), ("main", RawTable.DAILY.value)]
SEQUENCES = [("main", "load_history_id")]
COLUMNS = "date, share_price, amount, spend, shift, spread"
# A partition's exact content, cheaply: how many rows, and the sum of their hashes.
FINGERPRINT = f"count(*), sum(hash({COLUMNS})::HUGEINT)"
# A line whose price is not a number, which DuckDB sets aside and the load rolls back for.
BAD_LINE = '"2018/10/31","not a price","33597290.0000","270.2600","278.0000","260.5550"'

# The load as the asset runs it, in a process of its own. With a pause point it stops there inside the
# real load, says so with what its own transaction sees (the partition's rows and the version the history
# says the partition holds), and waits to be killed: `after-insert` when `_record_loads` is called, the
# partition's rows deleted and inserted and no history row written yet; `before-commit` when the load's
# COMMIT is sent, after its history row. Without one it says when the load has returned, committed, then
# keeps its connection open, as a run still busy with other work would. Only this process is patched.
LOADER = """
import sys, time
from pathlib import Path
import dagster as dg
from dagster_and_etl.defs.resources import StagingDatabase
from dagster_and_etl.ingest import duckdb_load
from dagster_and_etl.ingest.duckdb_tables import RawTable, loaded_versions
from dagster_and_etl.ingest.duckdb_load import replace_partition

pause_at, key, path = sys.argv[1], sys.argv[2], Path(sys.argv[3])
assert pause_at in ("after-insert", "before-commit", "none"), pause_at
recorded = []

def pause(conn, point):
    (rows,) = conn.execute(
        "SELECT count(*) FROM raw_partition_data WHERE partition_key = ?", [key]
    ).fetchone()
    version, _ = loaded_versions(conn, RawTable.DAILY, [key])[key]
    print("PAUSED", point, rows, version, flush=True)
    time.sleep(600)

record_loads = duckdb_load._record_loads

def pausing_record_loads(load, *args):
    if pause_at == "after-insert":
        pause(load.conn, pause_at)
    record_loads(load, *args)
    recorded.append(True)

duckdb_load._record_loads = pausing_record_loads

class PausingConnection:
    def __init__(self, conn):
        self._conn = conn

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def execute(self, query, *args):
        # The first COMMIT is the one that creates the tables; the load's own comes after its history.
        if pause_at == "before-commit" and query == "COMMIT" and recorded:
            pause(self._conn, pause_at)
        return self._conn.execute(query, *args)

with dg.build_resources({"database": StagingDatabase()}) as up, up.database.get_connection() as conn:
    print("LOAD STARTING", flush=True)
    result = replace_partition(PausingConnection(conn), RawTable.DAILY, key, path)
    print("LOAD COMMITTED", result.row_count, flush=True)
    time.sleep(600)
"""

Fingerprint = tuple[int, int | None]


class HistoryRow(NamedTuple):
    """A row of `load_history`, without the time it was written."""

    load_id: int
    table_name: str
    partition_key: str
    source: str
    version: str
    size_bytes: int
    modified_at_ns: int  # `modified_at`, in nanoseconds since the epoch, to compare with the file's mtime
    data_rows: int
    run_id: str | None


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
    history: list[HistoryRow]  # every row of the load history, oldest first
    holds: tuple[str, str | None]  # the version the history says the partition holds, and its run


def read_database(duckdb_path: Path) -> Contents:
    """Opens the file for writing, which fails while a lock is still held, and checks that only the two
    raw tables and the load history are in it: no table a load made for itself is left behind."""
    with duckdb.connect(str(duckdb_path)) as conn:
        tables = conn.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL").fetchall()
        assert tables == TABLES, f"tables in the database: {tables}"
        sequences = conn.execute(
            "SELECT schema_name, sequence_name FROM duckdb_sequences() ORDER BY ALL"
        ).fetchall()
        assert sequences == SEQUENCES, f"sequences in the database: {sequences}"
        partition = conn.execute(
            f"SELECT {FINGERPRINT} FROM {RawTable.DAILY.value} WHERE partition_key = ?", [PARTITION]
        ).fetchone()
        others = {
            table.value: conn.execute(
                f"SELECT * FROM {table.value} WHERE partition_key <> ? ORDER BY ALL", [PARTITION]
            ).fetchall()
            for table in RawTable
        }
        history = [
            HistoryRow(*row)
            for row in conn.execute(
                "SELECT load_id, table_name, partition_key, source, version, size_bytes,"
                " epoch_ns(modified_at), data_rows, run_id FROM load_history ORDER BY load_id"
            ).fetchall()
        ]
        holds = loaded_versions(conn, RawTable.DAILY, [PARTITION])[PARTITION]
    return Contents(partition, others, history, holds)


def assert_records(
    row: HistoryRow, table: RawTable, key: str, path: Path, rows: int, run_id: str | None
) -> None:
    """The history row is the load of the file's current version into the partition, by the run."""
    version = FileVersion.of(path)
    assert (row.table_name, row.partition_key, row.source, row.version, row.size_bytes, row.data_rows) == (
        table.value,
        key,
        str(path),
        version.token,
        version.size,
        rows,
    )
    assert row.run_id == run_id
    # `modified_at` holds the mtime to the microsecond (the version token keeps the nanoseconds).
    assert row.modified_at_ns == version.mtime_ns // 1000 * 1000, (row.modified_at_ns, version.mtime_ns)


def replace_file(source_dir: Path, key: str, new: Path) -> Path:
    """Puts `new` in place of the partition's file: a new inode, as a feed that writes a new file does."""
    path = source_dir / f"{key}.csv"
    path.unlink()
    try:
        os.link(new, path)  # the module's file, not copied each time
    except OSError:
        shutil.copyfile(new, path)
    return path


@pytest.fixture
def before(
    source_dir: Path, duckdb_path: Path, staging_database: StagingDatabase, new_file: NewFile
) -> Contents:
    """Every partition loaded from a small file, each with its row in the load history; then the
    partition's file is replaced by the big one."""
    loads = []
    with staging_database.get_connection() as conn:
        for seed, key in enumerate([PARTITION, *OTHER_DAYS]):
            path = write_source_file(source_dir, f"{key}.csv", seed=seed)
            assert replace_partition(conn, RawTable.DAILY, key, path).row_count == OLD_ROWS
            loads.append((RawTable.DAILY, key, path))
        for seed, key in enumerate(OTHER_FILES, start=10):
            path = write_source_file(source_dir, f"{key}.csv", seed=seed)
            assert replace_partition(conn, RawTable.DYNAMIC, key, path).row_count == OLD_ROWS
            loads.append((RawTable.DYNAMIC, key, path))
    contents = read_database(duckdb_path)
    assert contents.partition[0] == OLD_ROWS
    assert {table: len(rows) for table, rows in contents.others.items()} == {
        RawTable.DAILY.value: OLD_ROWS * len(OTHER_DAYS),
        RawTable.DYNAMIC.value: OLD_ROWS * len(OTHER_FILES),
    }
    assert len(contents.history) == len(loads)
    for row, (table, key, path) in zip(contents.history, loads, strict=True):
        assert_records(row, table, key, path, OLD_ROWS, run_id=None)
    assert contents.holds == (contents.history[0].version, None)
    replace_file(source_dir, PARTITION, new_file.path)
    return contents


class Loader:
    """The loader process, its output read as it comes; it is killed and reaped however the test ends."""

    def __init__(self, log: Path, source_dir: Path, duckdb_path: Path, pause_at: str) -> None:
        self.log = log
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", LOADER, pause_at, PARTITION, str(source_dir / f"{PARTITION}.csv")],
                cwd=PROJECT_ROOT,
                env={**os.environ, "SOURCE_DIR": str(source_dir), "DUCKDB_DATABASE": str(duckdb_path)},
                stdout=subprocess.PIPE,
                stderr=stderr,  # a file: a pipe that no one reads could stall the load
            )
        self.output = b""

    def lines(self) -> list[str]:
        """The lines printed so far, whole: a line still being written is not one yet."""
        return self.output[: self.output.rfind(b"\n") + 1].decode().splitlines()

    def wait_for_line(self, prefix: str, timeout: float = 120) -> str:
        """Waits for the loader to reach a state and say so; the line it printed. The timeout is only
        there so that a loader that never gets there fails the test instead of hanging it."""
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            while not any(line.startswith(prefix) for line in self.lines()):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"the loader printed no {prefix!r} in {timeout} s: {self.output!r}"
                assert prefix.startswith("LOAD COMMITTED") or not self.committed, (
                    f"the loader committed without stopping at {prefix!r}: {self.output!r}"
                )
                if selector.select(remaining):
                    chunk = os.read(self.process.stdout.fileno(), 4096)
                    assert chunk, f"the loader ended before {prefix!r}: {self.log.read_text()[-3000:]}"
                    self.output += chunk
        finally:
            selector.close()
        return next(line for line in self.lines() if line.startswith(prefix))

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
def start_loader(tmp_path: Path, source_dir: Path, duckdb_path: Path) -> Iterator[Callable[[str], Loader]]:
    """Starts the loader on this test's folder and database, to pause at the point given (`none`: run to
    its commit); every loader is gone when the test ends."""
    loaders: list[Loader] = []

    def start(pause_at: str) -> Loader:
        loaders.append(Loader(tmp_path / f"loader-{len(loaders)}.log", source_dir, duckdb_path, pause_at))
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


def table_materializations(result: dg.ExecuteInProcessResult) -> list[dg.AssetMaterialization]:
    return result.asset_materializations_for_node("duckdb_partition_table")


def assert_the_next_run_loads_the_new_file(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    duckdb_path: Path,
    before: Contents,
    new_file: NewFile,
    path: Path,
) -> None:
    """The next run loads the new file whole and writes the one history row for it, naming the run."""
    result = run_daily(defs, instance, PARTITION)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    after = read_database(duckdb_path)
    assert after.partition == new_file.fingerprint
    assert after.others == before.others
    assert after.history[:-1] == before.history, "the run changed history rows it did not write"
    assert_records(after.history[-1], RawTable.DAILY, PARTITION, path, NEW_ROWS, run_id=result.run_id)
    assert after.holds == (FileVersion.of(path).token, result.run_id)


@pytest.mark.parametrize("pause_at", ["after-insert", "before-commit"])
def test_a_load_killed_before_its_commit_leaves_the_old_rows_and_history_and_the_next_run_loads_the_file(
    pause_at: str,
    start_loader: Callable[[str], Loader],
    before: Contents,
    new_file: NewFile,
    source_dir: Path,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    duckdb_path: Path,
) -> None:
    """Killed with the new rows in place of the old ones in its transaction, and, at `before-commit`, its
    history row written too, the load leaves nothing of either: the old rows, and no history row for the
    new version, the old one still the latest. Then a real run loads the file and records it."""
    path = source_dir / f"{PARTITION}.csv"
    new_version = FileVersion.of(path).token
    loader = start_loader(pause_at)
    paused = loader.wait_for_line(f"PAUSED {pause_at} ")
    # What the load's own transaction held when it was killed: it had got that far, and no further.
    _, _, rows, holds = paused.split()
    assert int(rows) == NEW_ROWS
    assert holds == (new_version if pause_at == "before-commit" else before.holds[0])
    loader.kill()
    assert not loader.committed

    after = read_database(duckdb_path)
    assert_old_or_new(after, before, new_file)
    assert after.partition == before.partition
    assert after.history == before.history
    assert new_version not in [row.version for row in after.history]
    assert after.holds == before.holds
    assert_the_next_run_loads_the_new_file(defs, instance, duckdb_path, before, new_file, path)


def test_a_load_killed_right_after_its_commit_keeps_all_the_new_rows_and_its_history_row(
    start_loader: Callable[[str], Loader],
    before: Contents,
    new_file: NewFile,
    source_dir: Path,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    duckdb_path: Path,
) -> None:
    """Killed once it has committed, its connection still open, the load keeps its new rows and exactly
    one new history row for the new version. The next run finds that version loaded: it loads nothing
    again, writes no history row, and says the version was loaded before."""
    path = source_dir / f"{PARTITION}.csv"
    loader = start_loader("none")
    assert loader.wait_for_line("LOAD COMMITTED") == f"LOAD COMMITTED {NEW_ROWS}"
    loader.kill()  # its connection still open: what was committed is only as safe as DuckDB's log

    after = read_database(duckdb_path)
    assert_old_or_new(after, before, new_file)
    assert after.partition == new_file.fingerprint
    assert after.history[:-1] == before.history
    assert_records(after.history[-1], RawTable.DAILY, PARTITION, path, NEW_ROWS, run_id=None)
    assert after.holds == (FileVersion.of(path).token, None)

    result = run_daily(defs, instance, PARTITION)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    (materialization,) = table_materializations(result)
    assert "loaded before" in materialization.metadata["unchanged"].value
    again = read_database(duckdb_path)
    assert again.partition == new_file.fingerprint
    assert again.others == before.others
    assert again.history == after.history
    assert again.holds == after.holds


@pytest.fixture(scope="module")
def bad_file(new_file: NewFile, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The big new file with one bad line after all its good ones: DuckDB inserts every good row before
    the load sees the bad one and rolls back."""
    path = tmp_path_factory.mktemp("bad") / "bad.csv"
    shutil.copyfile(new_file.path, path)
    with path.open("a") as file:
        file.write(f"\n{BAD_LINE}")
    return path


def test_a_load_rolled_back_for_a_bad_line_writes_no_history_and_keeps_the_old_rows(
    before: Contents,
    bad_file: Path,
    source_dir: Path,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    duckdb_path: Path,
) -> None:
    """A run whose file has a bad line fails naming it, and the partition keeps its old rows and its old
    history row as the latest: the rolled-back load left no history row behind."""
    replace_file(source_dir, PARTITION, bad_file)
    result = run_daily(defs, instance, PARTITION)
    assert not result.success
    (event,) = result.get_step_failure_events()
    assert event.step_key == "duckdb_partition_table"
    failure = event.step_failure_data.user_failure_data
    assert failure is not None, event.step_failure_data.error
    assert f"line {NEW_ROWS + 2}" in failure.description, failure.description

    after = read_database(duckdb_path)
    assert after.partition == before.partition
    assert after.others == before.others
    assert after.history == before.history
    assert after.holds == before.holds


def test_a_bad_file_loaded_with_a_good_one_gets_no_history_row_and_the_good_one_gets_its_own(
    staging_database: StagingDatabase,
    before: Contents,
    bad_file: Path,
    new_file: NewFile,
    source_dir: Path,
    duckdb_path: Path,
) -> None:
    """Loaded in one call, the two files are first loaded together and rolled back for the bad line; the
    good one is then loaded alone. Only it has a new history row, with the run's id; the bad file's
    partition keeps its old rows and its old history."""
    bad_path = replace_file(source_dir, PARTITION, bad_file)
    good_key = OTHER_DAYS[0]
    good_path = replace_file(source_dir, good_key, new_file.path)
    with staging_database.get_connection() as conn:
        report = load_partitions(conn, RawTable.DAILY, {PARTITION: bad_path, good_key: good_path}, "run-1")
    assert list(report.failed) == [PARTITION]
    assert f"line {NEW_ROWS + 2}" in report.failed[PARTITION].problem
    assert list(report.loaded) == [good_key]
    assert report.loaded[good_key].row_count == NEW_ROWS

    after = read_database(duckdb_path)
    assert after.partition == before.partition
    assert after.history[:-1] == before.history
    assert_records(after.history[-1], RawTable.DAILY, good_key, good_path, NEW_ROWS, run_id="run-1")
    assert after.holds == before.holds


def test_a_plain_load_writes_one_history_row_and_the_same_file_again_writes_none(
    before: Contents,
    new_file: NewFile,
    source_dir: Path,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    duckdb_path: Path,
) -> None:
    """A run loads the new file and writes one history row for it, naming the run. A second run on the
    same, unchanged file loads nothing, writes no row, and says which run loaded that version."""
    path = source_dir / f"{PARTITION}.csv"
    assert_the_next_run_loads_the_new_file(defs, instance, duckdb_path, before, new_file, path)
    first = read_database(duckdb_path)

    result = run_daily(defs, instance, PARTITION)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    (materialization,) = table_materializations(result)
    assert first.holds[1] in materialization.metadata["unchanged"].value
    assert read_database(duckdb_path) == first

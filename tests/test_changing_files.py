"""Files that change under the pipeline: the sensor never crashes, and a load never mixes two versions."""

import os
import random
import threading
import time
from pathlib import Path

import duckdb
import pytest

from dagster_and_etl.defs.resources import StagingDatabase
from dagster_and_etl.ingest.duckdb_load import replace_partition
from dagster_and_etl.ingest.duckdb_tables import RawTable
from dagster_and_etl.ingest.source_file_scan import FileVersion, SourceFileError
from dagster_and_etl.ingest.source_folder import list_source_files
from dagster_and_etl.sample_data import sample_csv, write_large_sample_file
from tests.support import SensorTicks, wait_until_settled


def churn(folder: Path, stop: threading.Event) -> int:
    """Creates, rewrites, replaces and deletes files as fast as it can until told to stop."""
    rng = random.Random(7)
    changes = 0
    while not stop.is_set():
        name = f"churn-{rng.randrange(300):03d}.csv"
        path = folder / name
        action = rng.randrange(3)
        if action == 0:
            path.unlink(missing_ok=True)
        elif action == 1:
            path.write_text("x" * rng.randrange(100))
        else:
            staged = folder / f".{name}.tmp"
            staged.write_text("y" * rng.randrange(100))
            os.replace(staged, path)
        changes += 1
    return changes


def test_files_deleted_or_replaced_during_ticks_never_crash_the_sensor(
    source_dir: Path, sensor: SensorTicks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSOR_MAX_BATCH", "500")
    stop = threading.Event()
    counted: list[int] = []
    worker = threading.Thread(target=lambda: counted.append(churn(source_dir, stop)))
    worker.start()
    ticks = 0
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            listing = list_source_files(source_dir)  # the listing alone, as often as possible
            assert all(f.name.startswith("churn-") for f in listing.files)
            sensor.tick()
            ticks += 1
    finally:
        stop.set()
        worker.join()
    assert ticks >= 3 and counted[0] > 200

    # Once the folder is still and settled, ticks request every file there (at most 20 runs a tick, so
    # it may take several) and then fall idle.
    wait_until_settled(source_dir)
    on_disk = {path.stem for path in source_dir.glob("churn-*.csv")}
    for _ in range(len(on_disk)):
        if not sensor.tick().run_requests:
            break
    assert not sensor.tick().run_requests
    assert on_disk <= set(sensor.registered_keys)
    everything_requested = {key for result in sensor.results for key in sensor.keys_of(result)}
    assert on_disk <= everything_requested


@pytest.fixture
def big_and_small(tmp_path: Path) -> tuple[Path, Path]:
    big = write_large_sample_file(tmp_path / "big.csv", rows=600_000, seed=1)
    small = tmp_path / "small.csv"
    small.write_text(sample_csv(seed=2, rows=10))
    return big, small


def loaded_rows(database: Path) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as conn:
        return conn.execute(
            "SELECT * EXCLUDE (partition_key) FROM raw_dynamic_partition_data ORDER BY ALL"
        ).fetchall()


def rows_of(path: Path, database: Path) -> list[tuple]:
    """A file's rows as the loader would store them, loaded alone into a scratch database."""
    scratch = database.with_name("scratch.duckdb")
    with duckdb.connect(str(scratch)) as conn:
        replace_partition(conn, RawTable.DYNAMIC, "p", path)
        return conn.execute(
            "SELECT * EXCLUDE (partition_key) FROM raw_dynamic_partition_data ORDER BY ALL"
        ).fetchall()


@pytest.mark.parametrize("how", ["renamed_over", "rewritten_in_place"])
@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_file_replaced_while_its_partition_loads_yields_one_whole_version(
    source_dir: Path,
    duckdb_path: Path,
    staging_database: StagingDatabase,
    big_and_small: tuple[Path, Path],
    how: str,
    delay: float,
) -> None:
    big, small = big_and_small
    path = source_dir / "p.csv"
    path.write_bytes(big.read_bytes())

    def replace() -> None:
        time.sleep(delay)
        if how == "renamed_over":
            staged = source_dir / ".p.csv.tmp"
            staged.write_bytes(small.read_bytes())
            os.replace(staged, path)
        else:
            with path.open("r+b") as target:
                target.truncate(0)
                target.write(small.read_bytes())

    writer = threading.Thread(target=replace)
    writer.start()
    with staging_database.get_connection() as conn:
        try:
            result = replace_partition(conn, RawTable.DYNAMIC, "p", path)
        except SourceFileError as error:
            # Rewritten in place, the file is empty from its truncation until its new bytes are written.
            # A load that starts in that moment (the writer's delay is a thread's, and a busy machine can
            # run it first) reads that empty version whole, fails on it, and keeps nothing of it.
            writer.join()
            assert how == "rewritten_in_place", error
            assert "the file is empty (0 bytes)" in str(error)
            assert conn.execute("SELECT count(*) FROM raw_dynamic_partition_data").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM load_history").fetchone() == (0,)
            return
    writer.join()

    rows = loaded_rows(duckdb_path)
    assert result.row_count == len(rows) == result.file_rows
    if len(rows) == 10:
        assert rows == rows_of(small, duckdb_path)
    else:
        assert len(rows) == 600_000
        assert rows == rows_of(big, duckdb_path)


def test_a_file_emptied_by_its_rewrite_as_the_load_reads_it_is_read_again_not_held_back(
    source_dir: Path, duckdb_path: Path, staging_database: StagingDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file rewritten in place is emptied first. A load that takes its version just before and reads
    it just after sees an empty file: that file is being written, not bad, and is read again once the
    writer is done. The writer acts at the exact moments it must, so no timing decides the case."""
    path = source_dir / "p.csv"
    path.write_text(sample_csv(seed=1, rows=10))
    new_text = sample_csv(seed=2, rows=4)
    version_of = FileVersion.of.__func__
    steps = ["empty it after the load takes its version", "finish once the load has read it"]

    def writer_at_work(cls: type[FileVersion], target: Path) -> FileVersion:
        version = version_of(cls, target)
        if target == path and steps:
            step = steps.pop(0)
            path.write_text("" if step.startswith("empty") else new_text)
        return version

    monkeypatch.setattr(FileVersion, "of", classmethod(writer_at_work))
    with staging_database.get_connection() as conn:
        result = replace_partition(conn, RawTable.DYNAMIC, "p", path)

    assert steps == []
    assert result.row_count == result.file_rows == 4
    assert loaded_rows(duckdb_path) == rows_of(path, duckdb_path)

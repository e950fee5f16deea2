"""Compressed source files (`.csv.gz`, `.csv.zst`) load the rows their plain CSV would, and a corrupt or
cut-short archive fails only its own partition, naming the file."""

import gzip
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import zstandard

from dagster_and_etl.defs.resources import StagingDatabase
from dagster_and_etl.ingest import source_bucket, source_tick
from dagster_and_etl.ingest.duckdb_load import load_partitions
from dagster_and_etl.ingest.duckdb_tables import RawTable
from dagster_and_etl.ingest.load_report import LoadReport
from dagster_and_etl.ingest.partition_keys import first_split_name, key_for_file_name
from dagster_and_etl.sample_data import sample_csv
from dagster_and_etl.testing import SensorDaemon, launched_partition_keys
from tests.landing import BucketLanding, FolderLanding
from tests.support import rows_per_partition, run_daily
from tests.test_exactly_once import DEFAULT_LIMITS, SMALL_LIMITS, history, set_limits, status
from tests.test_notification_mode import (  # noqa: F401  (`notified`)
    drain,
    first_listing,
    lose_events,
    notified_fixture,
    reconcile,
)
from tests.test_s3_notifications import NotifiedBucket

Landing = FolderLanding | BucketLanding

TEXT = sample_csv(seed=1, rows=2000)


def gzipped(text: str) -> bytes:
    return gzip.compress(text.encode())


def zstd(text: str) -> bytes:
    return zstandard.ZstdCompressor().compress(text.encode())


def two_gzip_members(text: str) -> bytes:
    """What `cat a.gz b.gz` makes: a file gzip reads as the two texts one after the other."""
    middle = text.index("\n", len(text) // 2) + 1
    return gzipped(text[:middle]) + gzipped(text[middle:])


def two_zstd_frames(text: str) -> bytes:
    middle = text.index("\n", len(text) // 2) + 1
    return zstd(text[:middle]) + zstd(text[middle:])


def load(database: StagingDatabase, files: dict[str, Path]) -> LoadReport:
    with database.get_connection() as conn:
        return load_partitions(conn, RawTable.DYNAMIC, files, "run-1")


def table_rows(database: Path, key: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as conn:
        query = "SELECT * EXCLUDE (partition_key) FROM raw_dynamic_partition_data WHERE partition_key = ?"
        return conn.execute(query + " ORDER BY ALL", [key]).fetchall()


def test_gzip_and_zstd_files_load_the_rows_of_their_plain_csv(
    source_dir: Path, staging_database: StagingDatabase, duckdb_path: Path
) -> None:
    contents = {
        "plain.csv": TEXT.encode(),
        "gzip.csv.gz": gzipped(TEXT),
        "members.csv.gz": two_gzip_members(TEXT),
        "zstd.csv.zst": zstd(TEXT),
        "frames.csv.zst": two_zstd_frames(TEXT),
    }
    files = {}
    for name, data in contents.items():
        (source_dir / name).write_bytes(data)
        files[name.split(".")[0]] = source_dir / name

    report = load(staging_database, files)

    assert not report.failed
    assert {key: result.file_rows for key, result in report.loaded.items()} == dict.fromkeys(files, 2000)
    assert rows_per_partition(duckdb_path) == dict.fromkeys(files, 2000)
    for key in files:
        assert table_rows(duckdb_path, key) == table_rows(duckdb_path, "plain")


BROKEN = {
    "gzip cut short": ("a.csv.gz", gzipped(TEXT)[:-200], "not a complete gzip file"),
    "zstd cut short": ("a.csv.zst", zstd(TEXT)[:-200], "not a complete zstd file"),
    "not gzip at all": ("a.csv.gz", TEXT.encode(), "not a readable gzip file"),
    "gzip with a byte changed": (
        "a.csv.gz",
        (lambda data: data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])(gzipped(TEXT)),
        "not a readable gzip file",
    ),
    "zstd followed by garbage": ("a.csv.zst", zstd(TEXT) + b"garbage", "not a readable zstd file"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_archive_fails_only_its_partition_naming_the_file(
    source_dir: Path, staging_database: StagingDatabase, duckdb_path: Path, case: str
) -> None:
    (source_dir / "a.csv").write_text(sample_csv(seed=2))
    assert not load(staging_database, {"a": source_dir / "a.csv"}).failed
    before = table_rows(duckdb_path, "a")
    name, data, expected = BROKEN[case]
    (source_dir / name).write_bytes(data)
    (source_dir / "b.csv.gz").write_bytes(gzipped(sample_csv(seed=3)))

    report = load(staging_database, {"a": source_dir / name, "b": source_dir / "b.csv.gz"})

    assert list(report.failed) == ["a"]
    message = str(report.failed["a"])
    assert message.startswith(f"{source_dir / name} cannot be loaded: it is {expected}")
    assert table_rows(duckdb_path, "a") == before  # what was loaded stays
    assert rows_per_partition(duckdb_path) == {"a": 10, "b": 10}


@pytest.fixture
def daemon(instance: dg.DagsterInstance, defs: dg.Definitions) -> SensorDaemon:
    return SensorDaemon(instance, defs)


@pytest.mark.parametrize("limits", [DEFAULT_LIMITS, SMALL_LIMITS], ids=["default_batching", "small_batches"])
def test_compressed_files_among_plain_ones_are_found_and_loaded_once_each(
    landing: Landing,
    daemon: SensorDaemon,
    instance: dg.DagsterInstance,
    duckdb_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    limits: dict[str, str | None],
) -> None:
    set_limits(monkeypatch, limits)
    landing.write("a.csv", seed=1)
    landing.write_bytes("b.csv.gz", gzipped(sample_csv(seed=2)))
    landing.write_bytes("c.csv.zst", zstd(sample_csv(seed=3)))
    landing.write_bytes("d.csv.gz", gzipped(sample_csv(seed=4))[:-30])  # cut short
    landing.write("e.csv.gz.tmp")  # an upload under way: not a source file
    landing.wait_until_settled()

    ticks = daemon.run_until_idle()

    assert sorted(launched_partition_keys(ticks)) == ["a", "b", "c", "d"]  # each once
    assert rows_per_partition(duckdb_path) == {"a": 10, "b": 10, "c": 10}
    assert status(instance, ["a", "b", "c", "d"]) == {
        "a": "MATERIALIZED",
        "b": "MATERIALIZED",
        "c": "MATERIALIZED",
        "d": "FAILED",
    }
    # The load history names each file as it lies in the source.
    assert history(duckdb_path, "b")[0][0] == landing.location("b.csv.gz")
    assert history(duckdb_path, "c")[0][0] == landing.location("c.csv.zst")
    (failed,) = [run for tick in ticks for run in tick.runs if not run.success]
    (failure,) = failed.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert f"{landing.location('d.csv.gz')} cannot be loaded: it is not a complete gzip file" in description


def test_two_files_giving_one_key_are_both_skipped_naming_each_other_until_one_is_gone(
    landing: Landing,
    daemon: SensorDaemon,
    instance: dg.DagsterInstance,
    duckdb_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    landing.write("a.csv", sample_csv(seed=1, rows=4))
    landing.wait_until_settled()
    assert launched_partition_keys(daemon.run_until_idle()) == ["a"]
    landing.write_bytes("a.csv.gz", gzipped(sample_csv(seed=2, rows=7)))  # the same day, compressed
    landing.write("b.csv.gz", sample_csv(seed=3))  # named gzip, but plain text: b fails by itself
    landing.wait_until_settled()
    capfd.readouterr()

    ticks = [daemon.tick(), daemon.tick()]

    # Every tick passes over both files of `a` and says why; b, alone with its key, is tried.
    assert [tick.partition_keys for tick in ticks] == [["b"], []]
    logged = capfd.readouterr().err
    clash = (
        "it is one of the files a.csv and a.csv.gz, which give the same partition key 'a';"
        " none of them is loaded while more than one is there"
    )
    for name in ("a.csv", "a.csv.gz"):
        assert logged.count(f"Skipped {name!r} in {landing.uri}: {clash}.") == 2
    assert "2 file(s) skipped, the log says why ('a.csv', 'a.csv.gz')" in (ticks[1].skip_reason or "")
    assert rows_per_partition(duckdb_path) == {"a": 4}  # what was loaded stays

    landing.delete("a.csv")  # the sender says which one it meant
    after = daemon.run_until_idle()

    assert launched_partition_keys(after) == ["a"]
    assert rows_per_partition(duckdb_path) == {"a": 7}
    assert [row[0] for row in history(duckdb_path, "a")] == [
        landing.location(n) for n in ("a.csv", "a.csv.gz")
    ]
    assert status(instance, ["a", "b"]) == {"a": "MATERIALIZED", "b": "FAILED"}


def test_a_run_that_finds_a_second_file_for_its_key_fails_that_partition_naming_both(
    landing: Landing,
    daemon: SensorDaemon,
    instance: dg.DagsterInstance,
    duckdb_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")  # one run for both files
    landing.write("a.csv", seed=1)
    landing.write("b.csv", seed=2)
    landing.wait_until_settled()
    (tick,) = [daemon.tick(execute=False)]
    landing.write_bytes("a.csv.zst", zstd(sample_csv(seed=3)))  # lands between the tick and its run

    (run,) = [daemon.run(request) for request in tick.launched]

    assert not run.success
    assert rows_per_partition(duckdb_path) == {"b": 10}
    assert status(instance, ["a", "b"]) == {"a": "FAILED", "b": "MATERIALIZED"}
    (failure,) = run.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert (
        f"{landing.location('a.csv')} cannot be loaded: it is one of the files a.csv and a.csv.zst"
        in description
    )


def test_a_days_file_may_arrive_compressed(
    defs: dg.Definitions, instance: dg.DagsterInstance, source_dir: Path, duckdb_path: Path
) -> None:
    (source_dir / "2018-01-22.csv.gz").write_bytes(gzipped(sample_csv(seed=1)))
    (source_dir / "2018-01-23.csv.zst").write_bytes(zstd(sample_csv(seed=2)))

    assert run_daily(defs, instance, "2018-01-22").success
    assert run_daily(defs, instance, "2018-01-23").success

    assert rows_per_partition(duckdb_path, "raw_partition_data") == {"2018-01-22": 10, "2018-01-23": 10}


def test_in_notification_mode_compressed_objects_load_and_two_for_one_key_wait_until_one_is_gone(
    notified: NotifiedBucket, daemon: SensorDaemon, duckdb_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    first_listing(daemon)
    bucket = notified.landing
    bucket.write_bytes("a.csv.gz", gzipped(sample_csv(seed=1, rows=3)))
    bucket.write("b.csv", sample_csv(seed=2, rows=4))
    bucket.write_bytes("b.csv.zst", zstd(sample_csv(seed=3, rows=5)))
    bucket.wait_until_settled()
    capfd.readouterr()

    assert launched_partition_keys(daemon.run_until_idle()) == ["a"]
    assert rows_per_partition(duckdb_path) == {"a": 3}
    with_news = capfd.readouterr().err
    assert daemon.tick().launched == []  # a tick with no news
    for logged in (with_news, capfd.readouterr().err):  # each names the two
        for name in ("b.csv", "b.csv.zst"):
            assert f"Skipped {name!r} in {bucket.uri}: it is one of the files b.csv and b.csv.zst" in logged

    bucket.delete("b.csv")  # its removal is news of `b`: the object left is loaded

    assert launched_partition_keys(daemon.run_until_idle()) == ["b"]
    assert rows_per_partition(duckdb_path) == {"a": 3, "b": 5}
    drain(notified, daemon)


def test_a_reconciliation_cut_into_parts_sees_two_files_giving_one_key_together(
    notified: NotifiedBucket,
    daemon: SensorDaemon,
    duckdb_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Two entries a page, a page a tick: `a.csv` ends the first page and `a.csv.gz` starts the second.
    The first part stops before `a.csv`, so the next one judges the two together and loads neither."""
    monkeypatch.setattr(source_bucket, "PAGE_SIZE", 2)
    monkeypatch.setattr(source_tick, "LIST_SECONDS", 0)
    first_listing(daemon)
    bucket = notified.landing
    bucket.write("0.csv")
    bucket.write("a.csv", sample_csv(seed=1, rows=3))
    bucket.write_bytes("a.csv.gz", gzipped(sample_csv(seed=2, rows=4)))
    bucket.write("b.csv")
    bucket.wait_until_settled()
    lose_events(notified)  # found by the reconciliation listing alone
    capfd.readouterr()

    parts = reconcile(daemon, monkeypatch, ticks=2)

    assert parts == [(["0"], f"{bucket.prefix}0.csv"), (["b"], None)]
    logged = capfd.readouterr().err
    for name in ("a.csv", "a.csv.gz"):
        assert f"Skipped {name!r} in {bucket.uri}: it is one of the files a.csv and a.csv.gz" in logged
    assert rows_per_partition(duckdb_path) == {"0": 10, "b": 10}


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("a.csv", "a"),
        ("a.csv.gz", "a"),
        ("a.csv.zst", "a"),
        ("a.gz.csv", "a.gz"),
        ("a.csv.gz.tmp", None),  # an upload under way
        ("a.gz", None),
        ("a.CSV.GZ", None),
        ("a.csv.bz2", None),
        (".a.csv.gz", None),
    ],
)
def test_the_suffixes_a_source_file_may_have(name: str, key: str | None) -> None:
    assert key_for_file_name(name) == key


@pytest.mark.parametrize(
    ("names", "last_read", "split"),
    [
        (["a.csv"], "a.csv", "a.csv"),  # `a.csv.gz` may be on the next page
        (["0.csv", "a.csv", "a.csv.gz"], "a.csv.gz", "a.csv"),  # `a.csv.zst` may
        (["a.csv", "b.csv"], "b.csv", "b.csv"),
        (["a.csv", "b.csv"], "c.csv", None),
        (["a.csv.zst"], "a.csv.zst", None),  # the last name a key's file may have
        (["a.csv"], "sub/", None),  # a subfolder ended the page
    ],
)
def test_where_a_part_of_a_listing_ends_to_keep_each_keys_files_together(
    names: list[str], last_read: str, split: str | None
) -> None:
    assert first_split_name(names, last_read) == split

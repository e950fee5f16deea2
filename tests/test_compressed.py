"""Compressed source files (`.csv.gz`, `.csv.zst`) load the rows their plain CSV would, and a corrupt or
cut-short archive fails only its own partition, naming the file."""

import gzip
from pathlib import Path

import duckdb
import pytest
import zstandard

from dagster_and_etl.defs.resources import StagingDatabase
from dagster_and_etl.ingest.duckdb_load import load_partitions
from dagster_and_etl.ingest.duckdb_tables import RawTable
from dagster_and_etl.ingest.load_report import LoadReport
from dagster_and_etl.sample_data import sample_csv
from tests.support import rows_per_partition

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

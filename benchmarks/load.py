"""Benchmark 2: loading one partition of 1,000,000 rows.

Measured: the table asset's load of one file (`replace_partition`: file checks and row count, delete,
insert, bad-line check, load history, one transaction), each time over the partition's rows from the load
before. A version already loaded is not loaded again, so the file is touched before each timed load (not
timed): every load sees a new version. Baseline, in the same process on the same file: a bare DuckDB
`read_csv` into a new table.
Run: `.venv/bin/python -m benchmarks.load [--rows 1000000] [--runs 5]`
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import duckdb

from benchmarks._stats import ratio_line, summary, timed
from dagster_and_etl.ingest.duckdb_load import replace_partition
from dagster_and_etl.ingest.duckdb_tables import RawTable
from dagster_and_etl.sample_data import write_large_sample_file

BARE_LOAD = """
CREATE OR REPLACE TABLE bare AS
SELECT * FROM read_csv(?, header = true, dateformat = '%Y/%m/%d', columns = {
    'date': 'DATE', 'share_price': 'DECIMAL(18, 4)', 'amount': 'DECIMAL(18, 4)',
    'spend': 'DECIMAL(18, 4)', 'shift': 'DECIMAL(18, 4)', 'spread': 'DECIMAL(18, 4)'})
"""
KEY = "2018-01-22"


def new_version(path: Path) -> None:
    """Gives the file a new version (mtime and ctime) without changing a byte of it."""
    now = time.time_ns()
    os.utime(path, ns=(now, now))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        csv_path = write_large_sample_file(Path(scratch) / f"{KEY}.csv", rows=args.rows)
        print(f"{args.rows:,} rows, {csv_path.stat().st_size / 1e6:.1f} MB")
        with duckdb.connect(str(Path(scratch) / "bench.duckdb")) as conn:
            conn.execute(BARE_LOAD, [str(csv_path)])  # warm the file cache for both
            loaded = replace_partition(conn, RawTable.DAILY, KEY, csv_path)
            assert loaded.row_count == args.rows, loaded
            bare: list[float] = []
            asset: list[float] = []
            for _ in range(args.runs):  # interleaved, so both see the same machine
                bare += timed(lambda: conn.execute(BARE_LOAD, [str(csv_path)]), 1)
                new_version(csv_path)
                asset += timed(lambda: replace_partition(conn, RawTable.DAILY, KEY, csv_path), 1)
            (count,) = conn.execute("SELECT count(*) FROM raw_partition_data").fetchone()
            assert count == args.rows, "a re-load left more than one copy of the partition"
            (loads,) = conn.execute("SELECT count(*) FROM load_history").fetchone()
            assert loads == args.runs + 1, f"{loads - 1} of {args.runs} timed loads loaded the file"

    print(summary("bare read_csv into a table", bare))
    print(summary("asset load (replace_partition)", asset))
    print(ratio_line("asset load / bare read_csv", asset, bare, 1.25))


if __name__ == "__main__":
    main()

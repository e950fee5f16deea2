"""Benchmark 2: loading one partition of 1,000,000 rows.

Measured: the table asset's load (`replace_partitions`: file checks, delete, insert, bad-line check, one
transaction). Baseline, in the same process on the same file: a bare DuckDB `read_csv` into a new table.
Run: `.venv/bin/python -m benchmarks.load [--rows 1000000] [--runs 5]`
"""

import argparse
import tempfile
from pathlib import Path

import duckdb

from benchmarks._stats import ratio_line, summary, timed
from dagster_and_etl.ingest.duckdb_load import RawTable, replace_partitions
from dagster_and_etl.sample_data import write_large_sample_file

BARE_LOAD = """
CREATE OR REPLACE TABLE bare AS
SELECT * FROM read_csv(?, header = true, dateformat = '%Y/%m/%d', columns = {
    'date': 'DATE', 'share_price': 'DECIMAL(18, 4)', 'amount': 'DECIMAL(18, 4)',
    'spend': 'DECIMAL(18, 4)', 'shift': 'DECIMAL(18, 4)', 'spread': 'DECIMAL(18, 4)'})
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        csv_path = write_large_sample_file(Path(scratch) / "2018-01-22.csv", rows=args.rows)
        print(f"{args.rows:,} rows, {csv_path.stat().st_size / 1e6:.1f} MB")
        with duckdb.connect(str(Path(scratch) / "bench.duckdb")) as conn:
            conn.execute(BARE_LOAD, [str(csv_path)])  # warm the file cache for both
            loaded = replace_partitions(conn, RawTable.DAILY, {"2018-01-22": csv_path})
            assert loaded["2018-01-22"].row_count == args.rows
            bare: list[float] = []
            asset: list[float] = []
            for _ in range(args.runs):  # interleaved, so both see the same machine
                bare += timed(lambda: conn.execute(BARE_LOAD, [str(csv_path)]), 1)
                asset += timed(lambda: replace_partitions(conn, RawTable.DAILY, {"2018-01-22": csv_path}), 1)
            (count,) = conn.execute("SELECT count(*) FROM raw_partition_data").fetchone()
            assert count == args.rows, "a re-load left more than one copy of the partition"

    print(summary("bare read_csv into a table", bare))
    print(summary("asset load (replace_partitions)", asset))
    print(ratio_line("asset load / bare read_csv", asset, bare, 1.25))


if __name__ == "__main__":
    main()

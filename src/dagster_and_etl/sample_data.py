"""Writes realistic sample source files, one per day.

Usage: `python -m dagster_and_etl.sample_data data/source 2018-01-22 --days 5`.

Each file holds a few trading days of share prices and volumes, newest first, in the exact format of the
files the pipelines load. As in the real feed, the dates inside a file have nothing to do with the file's
own date, which is only its partition key.
"""

import argparse
import datetime as dt
import random
from pathlib import Path

from dagster_and_etl.ingest.csv_format import COLUMN_NAMES, DATE_FORMAT

HEADER = ",".join(f'"{name}"' for name in COLUMN_NAMES)


def sample_csv(seed: int, rows: int = 10) -> str:
    """The text of one source file: a header and `rows` trading days, with no trailing newline."""
    rng = random.Random(seed)
    day = dt.date(2018, 9, 3) + dt.timedelta(days=rng.randrange(60))
    close = rng.uniform(240.0, 320.0)
    lines = [HEADER]
    for _ in range(rows):
        while day.weekday() >= 5:
            day -= dt.timedelta(days=1)
        open_ = close * (1 + rng.gauss(0, 0.012))
        high = max(open_, close) * (1 + abs(rng.gauss(0, 0.008)))
        low = min(open_, close) * (1 - abs(rng.gauss(0, 0.008)))
        volume = round(rng.lognormvariate(16, 0.45))
        values = (close, volume, open_, high, low)
        lines.append(",".join([f'"{day.strftime(DATE_FORMAT)}"', *(f'"{value:.4f}"' for value in values)]))
        close = open_ * (1 + rng.gauss(0, 0.01))
        day -= dt.timedelta(days=1)
    return "\n".join(lines)


def write_sample_files(folder: Path, first_day: dt.date, days: int, rows: int = 10) -> list[Path]:
    """One file per day from `first_day`, named by its partition key; the same days give the same files."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        path = folder / f"{day.isoformat()}.csv"
        path.write_text(sample_csv(seed=day.toordinal(), rows=rows))
        written.append(path)
    return written


def write_large_sample_file(path: Path, rows: int, seed: int = 0) -> Path:
    """A source file of `rows` data rows in the same format, written by DuckDB in seconds, for load tests."""
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as conn:
        conn.execute("SELECT setseed(?)", [(seed % 1000) / 1000])
        conn.execute(
            """
            CREATE TABLE sample AS SELECT
                strftime(DATE '2018-10-31' - CAST(i % 3000 AS INTEGER), ?) AS date,
                printf('%.4f', 240 + random() * 80) AS share_price,
                printf('%.4f', round(1e6 + random() * 3e7)) AS amount,
                printf('%.4f', 240 + random() * 80) AS spend,
                printf('%.4f', 250 + random() * 80) AS shift,
                printf('%.4f', 230 + random() * 80) AS spread
            FROM range(?) AS t(i)
            """,
            [DATE_FORMAT, rows],
        )
        conn.table("sample").write_csv(str(path), header=True, quotechar='"', quoting="ALL")
    with path.open("r+b") as written:  # the feed's files end without a newline
        written.truncate(path.stat().st_size - 1)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("first_day", type=dt.date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--rows", type=int, default=10, help="data rows per file")
    args = parser.parse_args()
    for path in write_sample_files(args.folder, args.first_day, args.days, args.rows):
        print(path)


if __name__ == "__main__":
    main()

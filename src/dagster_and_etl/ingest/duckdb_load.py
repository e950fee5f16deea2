"""Loading a partition's CSV file into its DuckDB table, replacing that partition's rows atomically."""

from enum import StrEnum
from pathlib import Path

import duckdb

from dagster_and_etl.ingest.csv_format import header_problem

SQL_DIR = Path(__file__).parent / "sql"


class RawTable(StrEnum):
    """The tables partitions load into: the only names ever put into SQL text."""

    DAILY = "raw_partition_data"
    DYNAMIC = "raw_dynamic_partition_data"


class SourceFileError(ValueError):
    """A source file that cannot be loaded, with the file and what is wrong in the message."""


def _sql(name: str, table: RawTable) -> str:
    return (SQL_DIR / name).read_text().replace("{table}", RawTable(table).value)


def check_header(csv_path: Path) -> None:
    """Fails unless the file's first line names the expected columns in order."""
    with csv_path.open("rb") as source:
        problem = header_problem(source.readline())
    if problem is not None:
        raise SourceFileError(f"{csv_path} cannot be loaded: {problem}")


def replace_partition(
    conn: duckdb.DuckDBPyConnection, table: RawTable, partition_key: str, csv_path: Path
) -> int:
    """Replaces `partition_key`'s rows in `table` with the rows of `csv_path`, in one transaction.

    Returns the number of rows loaded. On any error the transaction is rolled back, so the partition
    keeps exactly the rows it had and no other partition is touched.
    """
    check_header(csv_path)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(_sql("create_raw_table.sql", table))
        conn.execute(f"DELETE FROM {RawTable(table).value} WHERE partition_key = ?", [partition_key])
        conn.execute(_sql("insert_partition.sql", table), [partition_key, str(csv_path)])
        (row_count,) = conn.fetchone() or (0,)
        conn.execute("COMMIT")
    except duckdb.Error as error:
        conn.execute("ROLLBACK")
        raise SourceFileError(f"{csv_path} cannot be loaded: {error}") from error
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return row_count

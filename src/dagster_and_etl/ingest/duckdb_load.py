"""Loading a partition's CSV file into its DuckDB table, replacing that partition's rows atomically."""

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import duckdb

from dagster_and_etl.ingest.source_file_scan import FileVersion, SourceFileError, count_data_rows

SQL_DIR = Path(__file__).parent / "sql"
# How often a load starts again when the file changes while it is read, before giving up.
ATTEMPTS_WHILE_CHANGING = 3
# How many of a file's bad lines an error lists.
ERRORS_SHOWN = 5


class RawTable(StrEnum):
    """The tables partitions load into: the only names ever put into SQL text."""

    DAILY = "raw_partition_data"
    DYNAMIC = "raw_dynamic_partition_data"


class FileChangedError(SourceFileError):
    """The file kept changing while it was being loaded."""


@dataclass(frozen=True)
class LoadResult:
    row_count: int  # rows now in the table for the partition
    file_rows: int  # data rows counted in the file, independently of DuckDB
    version: FileVersion  # the version of the file that was loaded


def _sql(name: str, table: RawTable) -> str:
    return (SQL_DIR / name).read_text().replace("{table}", RawTable(table).value)


def _first_paragraph(error: Exception) -> str:
    """DuckDB's own message without its generic advice, which names options this loader sets on purpose."""
    return str(error).split("\n\n")[0].replace("\n", " ").strip()


def _shortened(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _rejected_lines(conn: duckdb.DuckDBPyConnection, path: Path) -> SourceFileError | None:
    """The lines DuckDB could not read in the last load, as one error naming each, or None."""
    rejects = conn.execute(
        "SELECT line, column_name, error_type, error_message FROM temp.load_rejects ORDER BY line"
    ).fetchall()
    if not rejects:
        return None
    errors = [
        {"line": line, "column": column, "error": error_type, "message": _shortened(message)}
        for line, column, error_type, message in rejects
    ]
    shown = "; ".join(
        f"line {e['line']}" + (f", column {e['column']}" if e["column"] else "") + f": {e['message']}"
        for e in errors[:ERRORS_SHOWN]
    )
    more = f" (and {len(errors) - ERRORS_SHOWN} more)" if len(errors) > ERRORS_SHOWN else ""
    return SourceFileError(path, f"{len(errors)} bad line(s): {shown}{more}", errors)


def _has_changed(path: Path, before: FileVersion) -> bool:
    try:
        return FileVersion.of(path) != before
    except FileNotFoundError:
        return True


def _load_once(
    conn: duckdb.DuckDBPyConnection, table: RawTable, partition_key: str, path: Path
) -> LoadResult:
    before = FileVersion.of(path)
    conn.execute("BEGIN TRANSACTION")
    try:
        file_rows = count_data_rows(path)
        conn.execute(_sql("create_raw_table.sql", table))
        conn.execute("DROP TABLE IF EXISTS temp.load_rejects")
        conn.execute("DROP TABLE IF EXISTS temp.load_reject_scans")
        conn.execute(f"DELETE FROM {RawTable(table).value} WHERE partition_key = ?", [partition_key])
        insert = conn.execute(_sql("insert_partition.sql", table), [partition_key, str(path)])
        (row_count,) = insert.fetchone()
        rejected = _rejected_lines(conn, path)
        if rejected is not None:
            raise rejected
        if _has_changed(path, before):
            raise FileChangedError(path, "the file changed while it was being loaded")
        conn.execute("COMMIT")
    except BaseException as error:
        conn.execute("ROLLBACK")
        if isinstance(error, FileChangedError) or not isinstance(error, SourceFileError | duckdb.Error):
            raise
        # What looks like a bad file may be a file caught half-way through being rewritten.
        if _has_changed(path, before):
            raise FileChangedError(path, "the file changed while it was being loaded") from error
        if isinstance(error, duckdb.ConstraintException):
            raise SourceFileError(path, f"a value is missing: {_first_paragraph(error)}") from error
        if isinstance(error, duckdb.Error):
            raise SourceFileError(path, _first_paragraph(error)) from error
        raise
    return LoadResult(row_count=row_count, file_rows=file_rows, version=before)


def replace_partition(
    conn: duckdb.DuckDBPyConnection, table: RawTable, partition_key: str, path: Path
) -> LoadResult:
    """Replaces `partition_key`'s rows in `table` with the rows of the file at `path`, in one transaction.

    The file is checked first (header, encoding); any bad line, missing value or a change to the file
    during the load rolls the transaction back, so the partition keeps exactly the rows it had and no
    other partition is touched. A file replaced during the load is loaded again, whole.
    """
    for _ in range(ATTEMPTS_WHILE_CHANGING - 1):
        try:
            return _load_once(conn, table, partition_key, path)
        except FileChangedError:
            continue
    return _load_once(conn, table, partition_key, path)

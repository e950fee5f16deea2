"""The DuckDB tables the partitions load into, and the SQL that reads and writes them (in sql/)."""

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from dagster_and_etl.ingest.csv_format import COLUMN_NAMES, COLUMNS, DATE_FORMAT

if TYPE_CHECKING:
    import duckdb

SQL_DIR = Path(__file__).parent / "sql"
# The most bad lines DuckDB keeps per file while it reads (`rejects_limit` in insert_partitions.sql).
REJECTS_KEPT = 100
# Characters DuckDB reads as a glob pattern in a path; each is put in brackets to stand for itself.
GLOB_CHARACTERS = "[*?"


class DatabaseBusy(Exception):
    """Another process is writing to the DuckDB file, so it cannot be read now."""


class RawTable(StrEnum):
    """The tables partitions load into: the only names ever put into SQL text."""

    DAILY = "raw_partition_data"
    DYNAMIC = "raw_dynamic_partition_data"


# What the statements in sql/ say of the file layout, filled in from `csv_format`, where it is written once.
LAYOUT = {
    "{column_definitions}": ",\n    ".join(f"{name} {kind} NOT NULL" for name, kind in COLUMNS),
    "{source_columns}": ", ".join(f"src.{name}" for name in COLUMN_NAMES),
    "{column_types}": "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in COLUMNS) + "}",
    "{date_format}": DATE_FORMAT,
    "{rejects_limit}": str(REJECTS_KEPT),
}


def sql_text(name: str, table: RawTable | None = None) -> str:
    text = (SQL_DIR / name).read_text()
    for placeholder, value in LAYOUT.items():
        text = text.replace(placeholder, value)
    return text if table is None else text.replace("{table}", RawTable(table).value)


def literal_path(path: Path) -> str:
    """A path DuckDB reads as exactly this file, even when its name holds glob characters."""
    return "".join(f"[{char}]" if char in GLOB_CHARACTERS else char for char in str(path))


def ensure_tables(conn: "duckdb.DuckDBPyConnection", table: RawTable) -> None:
    """Creates the table and the load history where they are not yet, in a transaction of their own."""
    import duckdb  # here, not at the top: loading the code location need not load DuckDB

    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(sql_text("create_raw_table.sql", table))
        conn.execute(sql_text("create_load_history.sql"))
        conn.execute("COMMIT")
    except duckdb.Error:
        conn.execute("ROLLBACK")
        raise


def loaded_versions(
    conn: "duckdb.DuckDBPyConnection", table: RawTable, partition_keys: list[str] | None = None
) -> dict[str, tuple[str, str | None]]:
    """The file version each partition holds, with the run that loaded it, from `load_history`."""
    if not _has_table(conn, "load_history"):
        return {}
    found = conn.execute(sql_text("loaded_versions.sql"), [RawTable(table).value, partition_keys]).fetchall()
    return {key: (version, run_id) for key, version, run_id in found}


def _has_table(conn: "duckdb.DuckDBPyConnection", name: str) -> bool:
    found = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
        " AND schema_name = 'main' AND table_name = ?",
        [name],
    ).fetchone()
    return bool(found and found[0])


def row_counts(
    conn: "duckdb.DuckDBPyConnection", table: RawTable, partition_keys: list[str]
) -> dict[str, int]:
    """How many rows each of the partitions has in `table`; a partition without rows is left out."""
    found = conn.execute(
        f"SELECT partition_key, count(*) FROM {RawTable(table).value}"
        " WHERE partition_key IN (SELECT unnest(?::VARCHAR[])) GROUP BY ALL",
        [partition_keys],
    ).fetchall()
    return dict(found)


@dataclass(frozen=True)
class LoadedFile:
    """The version of its file a table's partition holds, and when it was loaded (ns since the epoch)."""

    version: str
    loaded_at_ns: int


def loaded_files(conn: "duckdb.DuckDBPyConnection", table: RawTable) -> dict[str, LoadedFile]:
    """The file version each partition of `table` holds and when it was loaded, from `load_history`."""
    if not _has_table(conn, "load_history"):
        return {}
    found = conn.execute(sql_text("loaded_files.sql"), [RawTable(table).value]).fetchall()
    return {key: LoadedFile(version, loaded_at_us * 1000) for key, version, loaded_at_us in found}

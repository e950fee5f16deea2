"""What a load left in its table, as plain values: the table's columns and the first rows of the partitions
it loaded."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dagster_and_etl.ingest.duckdb_tables import RawTable

if TYPE_CHECKING:
    import duckdb

# Rows shown in a preview: enough to recognise the data, small enough for every materialization event.
PREVIEW_ROWS = 5


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool


@dataclass(frozen=True)
class Preview:
    """The first rows of some partitions, in the table's column order."""

    columns: list[str]
    rows: list[tuple]


def table_columns(conn: "duckdb.DuckDBPyConnection", table: RawTable) -> list[Column]:
    """The table's columns in their order, with DuckDB's types."""
    found = conn.execute(
        "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns"
        " WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = ?"
        " ORDER BY ordinal_position",
        [RawTable(table).value],
    ).fetchall()
    return [Column(name, data_type, nullable) for name, data_type, nullable in found]


def previews(
    conn: "duckdb.DuckDBPyConnection",
    table: RawTable,
    partition_keys: Sequence[str],
    limit: int = PREVIEW_ROWS,
) -> dict[str, Preview]:
    """The first `limit` rows of each partition, by date, in one query."""
    cursor = conn.execute(
        f"SELECT * FROM {RawTable(table).value} WHERE partition_key IN (SELECT unnest(?::VARCHAR[]))"
        " QUALIFY row_number() OVER (PARTITION BY partition_key ORDER BY date, share_price) <= ?"
        " ORDER BY partition_key, date, share_price",
        [list(partition_keys), limit],
    )
    columns = [description[0] for description in cursor.description]
    key_at = columns.index("partition_key")
    found: dict[str, Preview] = {key: Preview(columns, []) for key in partition_keys}
    for row in cursor.fetchall():
        found[row[key_at]].rows.append(row)
    return found


@dataclass(frozen=True)
class TableFacts:
    """What the materializations and checks of a load report of its table."""

    columns: list[Column]  # empty when no partition holds rows
    previews: dict[str, Preview]
    non_positive: int  # rows of the partitions whose share_price is 0 or less


def table_facts(conn: "duckdb.DuckDBPyConnection", table: RawTable, partition_keys: list[str]) -> TableFacts:
    (non_positive,) = conn.execute(
        f"SELECT count(*) FROM {RawTable(table).value} WHERE partition_key IN (SELECT unnest(?::VARCHAR[]))"
        " AND share_price <= 0",
        [partition_keys],
    ).fetchone()
    columns = table_columns(conn, table) if partition_keys else []
    return TableFacts(columns, previews(conn, table, partition_keys), non_positive)

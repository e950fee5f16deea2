"""Two pipelines of the same shape: a source file asset, then the DuckDB table it is loaded into.

The daily pair runs on a schedule, one partition per calendar day; the dynamic pair runs when the sensor
finds a file, one partition per file. The table asset reads the file itself, from its partition key, so
nothing passes between the two through an IO manager.
"""

import datetime as dt
from pathlib import Path

import dagster as dg

from dagster_and_etl.defs.partitions import daily_partitions_def, dynamic_partitions_def
from dagster_and_etl.defs.resources import SourceFolder, StagingDatabase
from dagster_and_etl.ingest.duckdb_load import (
    RawTable,
    SourceFileError,
    check_header,
    replace_partition,
)


def _check_source_file(source_folder: SourceFolder, partition_key: str) -> dg.MaterializeResult:
    """Fails unless the partition's file is in the source folder with the expected header."""
    path = source_folder.file_for(partition_key)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise dg.Failure(
            description=f"{path.name} has not arrived in {source_folder.path}.",
            metadata={"path": str(path)},
        ) from None
    try:
        check_header(path)
    except SourceFileError as error:
        raise dg.Failure(description=str(error), metadata={"path": str(path)}) from error
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "size_bytes": stat.st_size,
            "modified_at": dg.MetadataValue.timestamp(dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC)),
        }
    )


def _load_partition(
    source_folder: SourceFolder, duckdb: StagingDatabase, table: RawTable, partition_key: str
) -> dg.MaterializeResult:
    """Replaces the partition's rows in `table` with its file's rows."""
    path: Path = source_folder.file_for(partition_key)
    try:
        with duckdb.get_connection() as conn:
            row_count = replace_partition(conn, table, partition_key, path)
    except (SourceFileError, FileNotFoundError) as error:
        raise dg.Failure(description=str(error), metadata={"path": str(path)}) from error
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": row_count,
            "dagster/table_name": f"{duckdb.path.stem}.main.{table.value}",
            "path": dg.MetadataValue.path(str(path)),
        }
    )


@dg.asset(partitions_def=daily_partitions_def, group_name="scheduled_etl", kinds={"csv"})
def import_partition_file(
    context: dg.AssetExecutionContext, source_folder: SourceFolder
) -> dg.MaterializeResult:
    """The day's source file, `<SOURCE_DIR>/<date>.csv`, checked before it is loaded."""
    return _check_source_file(source_folder, context.partition_key)


@dg.asset(
    partitions_def=daily_partitions_def,
    deps=[import_partition_file],
    group_name="scheduled_etl",
    kinds={"duckdb"},
)
def duckdb_partition_table(
    context: dg.AssetExecutionContext, source_folder: SourceFolder, duckdb: StagingDatabase
) -> dg.MaterializeResult:
    """Table `raw_partition_data`: each day's file, its rows replaced whenever the day is re-run."""
    return _load_partition(source_folder, duckdb, RawTable.DAILY, context.partition_key)


@dg.asset(partitions_def=dynamic_partitions_def, group_name="event_driven_etl", kinds={"csv"})
def import_dynamic_partition_file(
    context: dg.AssetExecutionContext, source_folder: SourceFolder
) -> dg.MaterializeResult:
    """A file that landed in the source folder, `<SOURCE_DIR>/<key>.csv`, checked before it is loaded."""
    return _check_source_file(source_folder, context.partition_key)


@dg.asset(
    partitions_def=dynamic_partitions_def,
    deps=[import_dynamic_partition_file],
    group_name="event_driven_etl",
    kinds={"duckdb"},
)
def duckdb_dynamic_partition_table(
    context: dg.AssetExecutionContext, source_folder: SourceFolder, duckdb: StagingDatabase
) -> dg.MaterializeResult:
    """Table `raw_dynamic_partition_data`: each file's rows, replaced when the file changes."""
    return _load_partition(source_folder, duckdb, RawTable.DYNAMIC, context.partition_key)

"""Two pipelines of the same shape: a source file asset, then the DuckDB table it is loaded into.

The daily pair runs on a schedule, one partition per calendar day; the dynamic pair runs when the sensor
finds a file, one partition per file. The table asset reads the file itself, from its partition key, so
nothing passes between the two through an IO manager.
"""

import datetime as dt
import stat
from pathlib import Path

import dagster as dg

from dagster_and_etl.defs.partitions import daily_partitions_def, dynamic_partitions_def
from dagster_and_etl.defs.resources import SourceFolder, StagingDatabase
from dagster_and_etl.ingest.duckdb_load import FileChangedError, LoadResult, RawTable, replace_partitions
from dagster_and_etl.ingest.source_file_scan import SourceFileError, count_data_rows
from dagster_and_etl.ingest.table_summary import Column, Preview, markdown_table, preview, table_columns

# DuckDB lets one process write to a database file at a time: the loads queue for this pool, whose
# limit of 1 is set in the instance's dagster.yaml.
DUCKDB_WRITE_POOL = "duckdb_write"
# Who answers for these assets, as the UI shows it on each asset.
OWNERS = ["team:data-engineering"]
FILE_COLUMNS = ["partition", "path", "size (bytes)", "modified (UTC)", "rows"]


def _bad_file(error: SourceFileError) -> dg.Failure:
    """A failure that no retry can mend: the file itself is wrong."""
    return dg.Failure(
        description=str(error),
        metadata={
            "path": dg.MetadataValue.path(str(error.path)),
            "problem": error.problem,
            "bad_lines": dg.MetadataValue.json(error.errors[:20]),
        },
        allow_retries=False,
    )


def _arrived_file(source_folder: SourceFolder, partition_key: str) -> Path:
    """The partition's file, failing (retryably) while it has not arrived and for good if it is no file."""
    path = source_folder.file_for(partition_key)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        raise dg.Failure(
            description=f"{path.name} has not arrived in {source_folder.path}.",
            metadata={"path": dg.MetadataValue.path(str(path))},
        ) from None
    if not stat.S_ISREG(mode):
        raise _bad_file(SourceFileError(path, "it is not a regular file (a folder, link or device)"))
    return path


def _modified_at(mtime: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(mtime, tz=dt.UTC)


def _file_metadata(path: Path, size: int, mtime: float) -> dict[str, object]:
    return {
        "path": dg.MetadataValue.path(str(path)),
        "size_bytes": size,
        "modified_at": dg.MetadataValue.timestamp(_modified_at(mtime)),
    }


def _files_table(rows: list[tuple[str, Path, int, float, int]]) -> dg.MetadataValue:
    """The run's files as a markdown table: partition, path, size, modification time and data rows."""
    return dg.MetadataValue.md(
        markdown_table(
            FILE_COLUMNS,
            [
                (key, path, size, f"{_modified_at(mtime):%Y-%m-%d %H:%M:%S}", data_rows)
                for key, path, size, mtime, data_rows in rows
            ],
        )
    )


def _check_source_files(source_folder: SourceFolder, partition_keys: list[str]) -> dg.MaterializeResult:
    """Fails unless every partition's file has arrived with the expected header, as UTF-8 text.

    A run of one partition reports its file; a run of many reports totals and a table of its files, as
    Dagster gives every partition of a run the same metadata."""
    described = []
    for partition_key in partition_keys:
        path = _arrived_file(source_folder, partition_key)
        try:
            data_rows = count_data_rows(path)
        except SourceFileError as error:
            raise _bad_file(error) from error
        file_stat = path.stat()
        described.append((partition_key, path, file_stat.st_size, file_stat.st_mtime, data_rows))
    if len(described) == 1:
        ((_, path, size, mtime, data_rows),) = described
        return dg.MaterializeResult(metadata={**_file_metadata(path, size, mtime), "data_rows": data_rows})
    return dg.MaterializeResult(
        metadata={
            "files": len(described),
            "size_bytes": sum(row[2] for row in described),
            "data_rows": sum(row[4] for row in described),
            "file_list": _files_table(described),
        }
    )


def _load_checks(asset_name: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "share_price_is_positive", asset=asset_name, description="Every loaded share_price is > 0."
        ),
        dg.AssetCheckSpec(
            "row_count_matches_file",
            asset=asset_name,
            description="The partition holds as many rows as its file has data rows.",
        ),
    ]


def _table_metadata(
    table_name: str,
    files: dict[str, Path],
    loaded: dict[str, LoadResult],
    columns: list[Column],
    first_rows: Preview,
) -> dict[str, object]:
    """What a load's materialization shows: the table, its columns, its first rows and the files loaded."""
    metadata: dict[str, object] = {
        "dagster/row_count": sum(result.row_count for result in loaded.values()),
        "dagster/table_name": table_name,
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(
                    column.name, column.type, constraints=dg.TableColumnConstraints(nullable=column.nullable)
                )
                for column in columns
            ]
        ),
        "preview": dg.MetadataValue.md(markdown_table(first_rows.columns, first_rows.rows)),
    }
    if len(files) == 1:
        (key,) = files
        version = loaded[key].version
        metadata.update(_file_metadata(files[key], version.size, version.mtime_ns / 1e9))
    else:
        # Dagster gives every partition of a run the same metadata: the table has a line per partition.
        metadata["partitions_loaded"] = len(files)
        metadata["file_list"] = _files_table(
            [
                (key, files[key], result.version.size, result.version.mtime_ns / 1e9, result.row_count)
                for key, result in loaded.items()
            ]
        )
    return metadata


def _load_partitions(
    source_folder: SourceFolder, duckdb: StagingDatabase, table: RawTable, partition_keys: list[str]
) -> dg.MaterializeResult:
    """Replaces the partitions' rows in `table` with their files' rows, in one transaction, and checks
    what landed."""
    files = {partition_key: _arrived_file(source_folder, partition_key) for partition_key in partition_keys}
    with duckdb.get_connection() as conn:
        try:
            loaded: dict[str, LoadResult] = replace_partitions(conn, table, files)
        except FileChangedError as error:
            raise dg.Failure(description=f"{error} on every attempt.", allow_retries=True) from error
        except SourceFileError as error:
            raise _bad_file(error) from error
        except FileNotFoundError as error:
            raise dg.Failure(
                description=f"{Path(error.filename).name} disappeared from {source_folder.path}"
                " while it was being loaded.",
                metadata={"path": dg.MetadataValue.path(str(error.filename))},
            ) from error
        (non_positive,) = conn.execute(
            f"SELECT count(*) FROM {table.value} WHERE partition_key IN (SELECT unnest(?::VARCHAR[]))"
            " AND share_price <= 0",
            [partition_keys],
        ).fetchone()
        columns = table_columns(conn, table)
        first_rows = preview(conn, table, partition_keys)
    mismatched = [key for key, result in loaded.items() if result.row_count != result.file_rows]
    metadata = _table_metadata(f"{duckdb.path.stem}.main.{table.value}", files, loaded, columns, first_rows)
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="share_price_is_positive",
                passed=non_positive == 0,
                metadata={"non_positive_rows": non_positive},
            ),
            dg.AssetCheckResult(
                check_name="row_count_matches_file",
                passed=not mismatched,
                metadata={
                    "table_rows": sum(result.row_count for result in loaded.values()),
                    "file_rows": sum(result.file_rows for result in loaded.values()),
                    "mismatched_partitions": dg.MetadataValue.json(mismatched[:50]),
                },
            ),
        ],
    )


@dg.asset(
    partitions_def=daily_partitions_def,
    group_name="scheduled_etl",
    kinds={"csv"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=OWNERS,
)
def import_partition_file(
    context: dg.AssetExecutionContext, source_folder: SourceFolder
) -> dg.MaterializeResult:
    """The day's source file, `<SOURCE_DIR>/<date>.csv`, checked before it is loaded."""
    return _check_source_files(source_folder, context.partition_keys)


@dg.asset(
    partitions_def=daily_partitions_def,
    deps=[import_partition_file],
    group_name="scheduled_etl",
    kinds={"duckdb"},
    pool=DUCKDB_WRITE_POOL,
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=OWNERS,
    check_specs=_load_checks("duckdb_partition_table"),
)
def duckdb_partition_table(
    context: dg.AssetExecutionContext, source_folder: SourceFolder, duckdb: StagingDatabase
) -> dg.MaterializeResult:
    """Table `raw_partition_data`: each day's file, its rows replaced whenever the day is re-run."""
    return _load_partitions(source_folder, duckdb, RawTable.DAILY, context.partition_keys)


@dg.asset(
    partitions_def=dynamic_partitions_def,
    group_name="event_driven_etl",
    kinds={"csv"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=OWNERS,
)
def import_dynamic_partition_file(
    context: dg.AssetExecutionContext, source_folder: SourceFolder
) -> dg.MaterializeResult:
    """A file that landed in the source folder, `<SOURCE_DIR>/<key>.csv`, checked before it is loaded."""
    return _check_source_files(source_folder, context.partition_keys)


@dg.asset(
    partitions_def=dynamic_partitions_def,
    deps=[import_dynamic_partition_file],
    group_name="event_driven_etl",
    kinds={"duckdb"},
    pool=DUCKDB_WRITE_POOL,
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=OWNERS,
    check_specs=_load_checks("duckdb_dynamic_partition_table"),
)
def duckdb_dynamic_partition_table(
    context: dg.AssetExecutionContext, source_folder: SourceFolder, duckdb: StagingDatabase
) -> dg.MaterializeResult:
    """Table `raw_dynamic_partition_data`: each file's rows, replaced when the file changes."""
    return _load_partitions(source_folder, duckdb, RawTable.DYNAMIC, context.partition_keys)

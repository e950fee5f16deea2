"""What a file asset tells Dagster of the files that landed: for one partition, its file's path, size,
modification time and data rows; for a run of many, the totals and a table with a row per file (Dagster
gives every partition of a run the same metadata)."""

import datetime as dt
from dataclasses import dataclass

import dagster as dg

# How many files or partitions metadata lists by name (a run's files, a failure's); totals count them all.
LISTED_AT_MOST = 50
FILE_TABLE_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("partition", "string"),
        dg.TableColumn("path", "string"),
        dg.TableColumn("size_bytes", "int"),
        dg.TableColumn("modified_at", "string", description="UTC"),
        dg.TableColumn("data_rows", "int"),
        dg.TableColumn("note", "string", description="why a value is missing"),
    ]
)


def modified_at(mtime_ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(mtime_ns / 1e9, tz=dt.UTC)


def file_metadata(location: str, size: int, mtime_ns: int) -> dict[str, object]:
    return {
        "path": dg.MetadataValue.path(location),
        "size_bytes": size,
        "modified_at": dg.MetadataValue.timestamp(modified_at(mtime_ns)),
    }


@dataclass(frozen=True)
class DescribedFile:
    """A partition's file as the source describes it, or why there is none to describe."""

    partition: str
    location: str
    size: int | None = None  # None: no file (see `note`)
    mtime_ns: int | None = None
    data_rows: int | None = None  # None: not counted here (see `note`)
    note: str | None = None  # what is wrong with it, or why its rows are not counted


def _when(mtime_ns: int | None) -> str | None:
    return None if mtime_ns is None else f"{modified_at(mtime_ns):%Y-%m-%d %H:%M:%S}"


def _files_table(files: list[DescribedFile]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                data={
                    "partition": file.partition,
                    "path": file.location,
                    "size_bytes": file.size,
                    "modified_at": _when(file.mtime_ns),
                    "data_rows": file.data_rows,
                    "note": file.note,
                }
            )
            for file in files[:LISTED_AT_MOST]
        ],
        schema=FILE_TABLE_SCHEMA,
    )


def files_metadata(files: list[DescribedFile]) -> dict[str, object]:
    if len(files) == 1:
        (file,) = files
        if file.size is None or file.mtime_ns is None:
            return {"path": dg.MetadataValue.path(file.location), "problem": file.note}
        rows = file.data_rows if file.data_rows is not None else file.note
        return {**file_metadata(file.location, file.size, file.mtime_ns), "data_rows": rows}
    counted = [file.data_rows for file in files if file.data_rows is not None]
    return {
        "files": len(files),
        "size_bytes": sum(file.size for file in files if file.size is not None),
        **({"data_rows": sum(counted)} if counted else {}),
        "file_list": _files_table(files),
    }

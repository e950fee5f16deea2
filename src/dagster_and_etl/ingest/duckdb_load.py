"""Loading a partition's CSV file into its DuckDB table, replacing that partition's rows atomically."""

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from dagster_and_etl.ingest.source_file_scan import FileVersion, SourceFileError, count_data_rows

if TYPE_CHECKING:
    import duckdb

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


def _file_named_in(error: Exception) -> Path | None:
    """The file a DuckDB CSV error names in its details, if it names one."""
    found = re.search(r"^\s*file = (.+)$", str(error), re.MULTILINE)
    return Path(found.group(1).strip()) if found else None


def _shortened(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _rejected_lines(conn: "duckdb.DuckDBPyConnection") -> SourceFileError | None:
    """The lines DuckDB could not read in the last load, as one error naming the files and lines."""
    rejects = conn.execute((SQL_DIR / "rejected_lines.sql").read_text()).fetchall()
    if not rejects:
        return None
    errors = [
        {"file": file, "line": line, "column": column, "error": kind, "message": _shortened(message)}
        for file, line, column, kind, message in rejects
    ]
    first_file = errors[0]["file"]
    in_first = [e for e in errors if e["file"] == first_file]
    shown = "; ".join(
        f"line {e['line']}" + (f", column {e['column']}" if e["column"] else "") + f": {e['message']}"
        for e in in_first[:ERRORS_SHOWN]
    )
    more = f" (and {len(in_first) - ERRORS_SHOWN} more)" if len(in_first) > ERRORS_SHOWN else ""
    others = sorted({e["file"] for e in errors} - {first_file})
    also = f"; {len(others)} other file(s) have bad lines too: {', '.join(others[:5])}" if others else ""
    return SourceFileError(Path(first_file), f"{len(in_first)} bad line(s): {shown}{more}{also}", errors)


def _changed_files(versions: dict[Path, FileVersion]) -> list[Path]:
    changed = []
    for path, before in versions.items():
        try:
            if FileVersion.of(path) != before:
                changed.append(path)
        except FileNotFoundError:
            changed.append(path)
    return changed


def _load_once(
    conn: "duckdb.DuckDBPyConnection", table: RawTable, files: dict[str, Path]
) -> dict[str, LoadResult]:
    import duckdb  # here, not at the top: loading the code location need not load DuckDB

    versions = {path: FileVersion.of(path) for path in files.values()}
    conn.execute("BEGIN TRANSACTION")
    try:
        file_rows = {key: count_data_rows(path, skip_blank_lines=False) for key, path in files.items()}
        conn.execute(_sql("create_raw_table.sql", table))
        conn.execute("DROP TABLE IF EXISTS temp.load_rejects")
        conn.execute("DROP TABLE IF EXISTS temp.load_reject_scans")
        paths = [str(path) for path in files.values()]
        conn.execute((SQL_DIR / "stage_load_files.sql").read_text(), [paths, list(files)])
        name = RawTable(table).value
        conn.execute(f"DELETE FROM {name} WHERE partition_key IN (SELECT partition_key FROM load_files)")
        conn.execute(_sql("insert_partitions.sql", table), [paths])
        row_counts = dict(
            conn.execute(
                f"SELECT partition_key, count(*) FROM {name}"
                " WHERE partition_key IN (SELECT partition_key FROM load_files) GROUP BY ALL"
            ).fetchall()
        )
        for key, path in files.items():
            if row_counts.get(key, 0) != file_rows[key]:  # blank lines, or a real mismatch
                file_rows[key] = count_data_rows(path)
        rejected = _rejected_lines(conn)
        if rejected is not None:
            raise rejected
        changed = _changed_files(versions)
        if changed:
            raise FileChangedError(changed[0], "the file changed while it was being loaded")
        conn.execute("COMMIT")
    except BaseException as error:
        conn.execute("ROLLBACK")
        if isinstance(error, FileChangedError) or not isinstance(error, SourceFileError | duckdb.Error):
            raise
        # What looks like a bad file may be a file caught half-way through being rewritten.
        changed = _changed_files(versions)
        if changed:
            raise FileChangedError(changed[0], "the file changed while it was being loaded") from error
        if isinstance(error, SourceFileError):
            raise
        path = _file_named_in(error) or next(iter(files.values()))
        if isinstance(error, duckdb.ConstraintException):
            raise SourceFileError(
                path, f"a value is missing or out of range: {_first_paragraph(error)}"
            ) from error
        raise SourceFileError(path, _first_paragraph(error)) from error
    return {
        key: LoadResult(row_count=row_counts.get(key, 0), file_rows=file_rows[key], version=versions[path])
        for key, path in files.items()
    }


def replace_partitions(
    conn: "duckdb.DuckDBPyConnection", table: RawTable, files: dict[str, Path]
) -> dict[str, LoadResult]:
    """Replaces each partition's rows in `table` with the rows of its file, all in one transaction.

    `files` maps partition keys to their files. They are checked first (header, encoding); any bad
    line, missing value or a change to a file during the load rolls the whole transaction back, so every
    partition keeps exactly the rows it had and no other partition is touched. Files replaced during
    the load are loaded again, whole.
    """
    for _ in range(ATTEMPTS_WHILE_CHANGING - 1):
        try:
            return _load_once(conn, table, files)
        except FileChangedError:
            continue
    return _load_once(conn, table, files)


def replace_partition(
    conn: "duckdb.DuckDBPyConnection", table: RawTable, partition_key: str, path: Path
) -> LoadResult:
    """Replaces one partition's rows with those of its file: `replace_partitions` for a single file."""
    return replace_partitions(conn, table, {partition_key: path})[partition_key]

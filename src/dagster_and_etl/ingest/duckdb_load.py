"""Loading partitions' CSV files into their DuckDB table: each file whole or not at all, each version once.

A load replaces a partition's rows and records the file version it loaded in `load_history`, in the same
transaction. A file whose version is already the one loaded is left alone. Files are loaded together in
one transaction when they are all good; a bad file is set aside with the reason, and the others load
without it, so one bad file holds back only itself.
"""

import os
import re
import stat
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from dagster_and_etl.ingest.csv_format import COLUMN_NAMES, COLUMNS, DATE_FORMAT
from dagster_and_etl.ingest.source import LocalCopy
from dagster_and_etl.ingest.source_file_scan import FileVersion, SourceFileError, count_data_rows

if TYPE_CHECKING:
    import duckdb

SQL_DIR = Path(__file__).parent / "sql"
# How often a load starts again when a file changes while it is read, before giving up.
ATTEMPTS_WHILE_CHANGING = 3
# How many of a file's bad lines an error lists.
ERRORS_SHOWN = 5
# The most bad lines DuckDB keeps per file while it reads (`rejects_limit` in insert_partitions.sql).
REJECTS_KEPT = 100
# Characters DuckDB reads as a glob pattern in a path; each is put in brackets to stand for itself.
GLOB_CHARACTERS = "[*?"


class RawTable(StrEnum):
    """The tables partitions load into: the only names ever put into SQL text."""

    DAILY = "raw_partition_data"
    DYNAMIC = "raw_dynamic_partition_data"


class FileChangedError(SourceFileError):
    """A file changed while it was being loaded; `paths` are every file that did."""

    def __init__(
        self, paths: list[Path], problem: str = "the file changed while it was being loaded"
    ) -> None:
        super().__init__(paths[0], problem)
        self.paths = paths


@dataclass(frozen=True)
class PinnedVersion:
    """The version a complete local copy was made from (an S3 object's ETag and size): it cannot change."""

    token: str
    size: int
    mtime_ns: int


Version = FileVersion | PinnedVersion


@dataclass(frozen=True)
class LoadResult:
    row_count: int  # rows now in the table for the partition
    file_rows: int  # data rows counted in the file, independently of DuckDB
    version: Version  # the version of the file the partition holds
    loaded_by: str | None = None  # for a version loaded before: the run that loaded it


@dataclass
class LoadReport:
    """What a load did with each partition it was given."""

    loaded: dict[str, LoadResult] = field(default_factory=dict)  # loaded now
    unchanged: dict[str, LoadResult] = field(default_factory=dict)  # this version was loaded before
    failed: dict[str, SourceFileError] = field(default_factory=dict)  # bad files, nothing loaded
    # Files that kept changing on every attempt to load them: a later try may find them finished.
    changing: dict[str, FileChangedError] = field(default_factory=dict)
    # Files loaded once and since removed: the partition keeps its rows. The run that loaded them.
    removed: dict[str, str | None] = field(default_factory=dict)
    # Files never loaded that are not there (removed, or not arrived), by location: nothing to load,
    # nothing lost.
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def holding(self) -> dict[str, LoadResult]:
        """Every partition that now holds its file's current version."""
        return {**self.unchanged, **self.loaded}


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


def _first_paragraph(error: Exception) -> str:
    """DuckDB's own message without its generic advice, which names options this loader sets on purpose."""
    return str(error).split("\n\n")[0].replace("\n", " ").strip()


def _file_named_in(error: Exception) -> Path | None:
    """The file a DuckDB CSV error names in its details, if it names one."""
    found = re.search(r"^\s*file = (.+)$", str(error), re.MULTILINE)
    return Path(found.group(1).strip()) if found else None


def _shortened(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _rejected_lines(conn: "duckdb.DuckDBPyConnection") -> dict[Path, SourceFileError]:
    """The lines DuckDB could not read in the last load, as one error per file naming its lines."""
    by_file: dict[Path, list[dict]] = {}
    for file, line, column, kind, message in conn.execute(sql_text("rejected_lines.sql")).fetchall():
        by_file.setdefault(Path(file), []).append(
            {"file": file, "line": line, "column": column, "error": kind, "message": _shortened(message)}
        )
    errors = {}
    for path, lines in by_file.items():
        shown = "; ".join(
            f"line {e['line']}" + (f", column {e['column']}" if e["column"] else "") + f": {e['message']}"
            for e in lines[:ERRORS_SHOWN]
        )
        more = f" (and {len(lines) - ERRORS_SHOWN} more)" if len(lines) > ERRORS_SHOWN else ""
        count = (
            f"{REJECTS_KEPT} or more bad lines" if len(lines) >= REJECTS_KEPT else f"{len(lines)} bad line(s)"
        )
        # The same without DuckDB's messages, which quote the values they could not read.
        summary = "; ".join(
            f"line {e['line']}" + (f", column {e['column']}" if e["column"] else "") + f" ({e['error']})"
            for e in lines[:ERRORS_SHOWN]
        )
        errors[path] = SourceFileError(path, f"{count}: {shown}{more}", lines, f"{count}: {summary}{more}")
    return errors


def _changed_files(versions: dict[Path, Version]) -> list[Path]:
    """The files read in place that are no longer the version they were before the load began."""
    changed = []
    for path, before in versions.items():
        if isinstance(before, PinnedVersion):  # a complete copy of one version: nothing writes to it
            continue
        try:
            if FileVersion.of(path) != before:
                changed.append(path)
        except FileNotFoundError:
            changed.append(path)
    return changed


def ensure_tables(conn: "duckdb.DuckDBPyConnection", table: RawTable) -> None:
    conn.execute(sql_text("create_raw_table.sql", table))
    conn.execute(sql_text("create_load_history.sql"))


def loaded_versions(
    conn: "duckdb.DuckDBPyConnection", table: RawTable, partition_keys: list[str] | None = None
) -> dict[str, tuple[str, str | None]]:
    """The file version each partition holds, with the run that loaded it, from `load_history`."""
    exists = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
        " AND schema_name = 'main' AND table_name = 'load_history'"
    ).fetchone()[0]
    if not exists:
        return {}
    found = conn.execute(sql_text("loaded_versions.sql"), [RawTable(table).value, partition_keys]).fetchall()
    return {key: (version, run_id) for key, version, run_id in found}


def _record_loads(
    conn: "duckdb.DuckDBPyConnection",
    table: RawTable,
    files: dict[str, Path],
    versions: dict[Path, Version],
    file_rows: dict[str, int],
    run_id: str | None,
    locations: dict[Path, str],
) -> None:
    keys = list(files)
    conn.execute(
        sql_text("record_loads.sql"),
        [
            RawTable(table).value,
            run_id,
            keys,
            [locations[files[key]] for key in keys],
            [versions[files[key]].token for key in keys],
            [versions[files[key]].size for key in keys],
            [versions[files[key]].mtime_ns for key in keys],
            [file_rows[key] for key in keys],
        ],
    )


def _load_together(
    conn: "duckdb.DuckDBPyConnection",
    table: RawTable,
    files: dict[str, Path],
    versions: dict[Path, Version],
    file_rows: dict[str, int],
    run_id: str | None,
    locations: dict[Path, str],
) -> dict[str, LoadResult]:
    """Loads every file in one transaction, or rolls it all back and raises what went wrong: the bad
    files with their errors (`_BadFiles`), `FileChangedError`, or DuckDB's own error.

    `versions` were taken before the files were first read: a file that differs from them at the end
    was changed while it was read, and nothing is kept."""
    import duckdb  # here, not at the top: loading the code location need not load DuckDB

    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute("DROP TABLE IF EXISTS temp.load_rejects")
        conn.execute("DROP TABLE IF EXISTS temp.load_reject_scans")
        paths = [str(path) for path in files.values()]
        conn.execute(sql_text("stage_load_files.sql"), [paths, list(files)])
        name = RawTable(table).value
        conn.execute(f"DELETE FROM {name} WHERE partition_key IN (SELECT partition_key FROM load_files)")
        conn.execute(sql_text("insert_partitions.sql", table), [[literal_path(p) for p in files.values()]])
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
        if rejected:
            raise _BadFiles(rejected)
        changed = _changed_files({path: versions[path] for path in files.values()})
        if changed:
            raise FileChangedError(changed)
        _record_loads(conn, table, files, versions, file_rows, run_id, locations)
        conn.execute("COMMIT")
    except BaseException as error:
        conn.execute("ROLLBACK")
        if isinstance(error, FileChangedError) or not isinstance(error, _BadFiles | duckdb.Error):
            raise
        # What looks like a bad file may be a file caught half-way through being rewritten.
        changed = _changed_files({path: versions[path] for path in files.values()})
        if changed:
            raise FileChangedError(changed) from error
        raise
    return {
        key: LoadResult(row_count=row_counts.get(key, 0), file_rows=file_rows[key], version=versions[path])
        for key, path in files.items()
    }


class _BadFiles(Exception):
    def __init__(self, errors: dict[Path, SourceFileError]) -> None:
        super().__init__(f"{len(errors)} bad file(s)")
        self.errors = errors


def _duckdb_error(error: Exception, path: Path) -> SourceFileError:
    import duckdb

    if isinstance(error, duckdb.ConstraintException):
        return SourceFileError(
            path,
            f"a value is missing or out of range: {_first_paragraph(error)}",
            summary="a value is missing or out of range",
        )
    return SourceFileError(
        path, _first_paragraph(error), summary=f"DuckDB cannot read it as CSV ({type(error).__name__})"
    )


def _load_good_files(
    conn: "duckdb.DuckDBPyConnection",
    table: RawTable,
    files: dict[str, Path],
    versions: dict[Path, Version],
    file_rows: dict[str, int],
    run_id: str | None,
    locations: dict[Path, str],
    report: LoadReport,
) -> None:
    """Loads the files together; a bad one found on the way is set aside and the rest loaded again."""
    import duckdb

    while files:
        try:
            report.loaded.update(_load_together(conn, table, files, versions, file_rows, run_id, locations))
            return
        except _BadFiles as bad:
            key_of = {path: key for key, path in files.items()}
            for path, error in bad.errors.items():
                report.failed[key_of[path]] = error
            files = {key: path for key, path in files.items() if key not in report.failed}
        except duckdb.Error as error:
            # Not a line DuckDB could set aside (a value out of range, a file gone): find the file alone.
            if len(files) == 1:
                ((key, path),) = files.items()
                report.failed[key] = _duckdb_error(error, _file_named_in(error) or path)
                return
            for key, path in files.items():
                _load_good_files(conn, table, {key: path}, versions, file_rows, run_id, locations, report)
            return


def _read_first(
    files: dict[str, Path], pinned: dict[Path, PinnedVersion], report: LoadReport
) -> tuple[dict[Path, Version], dict[str, int], list[Path]]:
    """Each file's version, then its data rows counted while its header and encoding are checked; and the
    files that looked bad only because they were being rewritten as they were read (emptied, say)."""
    versions: dict[Path, Version] = {}
    file_rows: dict[str, int] = {}
    changed: list[Path] = []
    for key, path in files.items():
        try:
            versions[path] = pinned.get(path) or FileVersion.of(path)
            file_rows[key] = count_data_rows(path, skip_blank_lines=False)
        except SourceFileError as error:
            if _changed_files({path: versions[path]}):
                changed.append(path)  # read again, like a file that changed while it was loaded
            else:
                report.failed[key] = error
        except FileNotFoundError:
            report.missing[key] = str(path)
        except OSError as error:  # a file listed but not readable: held back by itself
            report.failed[key] = SourceFileError(path, f"it cannot be read: {error.strerror}")
    return versions, file_rows, changed


def _named_by_location(report: LoadReport, locations: dict[Path, str]) -> None:
    """Names each file in the report by its location in the source, not the local copy that was read."""
    for errors in (report.failed, report.changing):
        for key, error in errors.items():
            location = locations.get(Path(error.path)) if isinstance(error.path, Path) else None
            if location is not None and location != str(error.path):
                errors[key] = error.at(location)  # type: ignore[assignment]
    for key, path in report.missing.items():
        report.missing[key] = locations.get(Path(path), path)


def load_partitions(
    conn: "duckdb.DuckDBPyConnection",
    table: RawTable,
    files: dict[str, LocalCopy] | dict[str, Path],
    run_id: str | None = None,
) -> LoadReport:
    """Loads each partition's file into `table`, in place of the rows the partition had.

    `files` maps partition keys to their files: a local path, or a `LocalCopy` of a file kept elsewhere
    (which the load history and the errors name by its location). A partition whose file's version is
    already loaded is left as it is, and so is one whose file was loaded once and has since been
    removed; a file never loaded that is not there is reported in `missing`. A file that is bad (header,
    encoding, a bad line, a missing value) is reported in `failed`, and its partition keeps exactly the
    rows it had. Every other file is loaded, all in one transaction. Files that change while they are
    read are loaded again, whole; one that changes on every attempt is reported in `changing` and the
    others are loaded without it.
    """
    import duckdb

    copies = {
        key: copy if isinstance(copy, LocalCopy) else LocalCopy(str(copy), Path(copy))
        for key, copy in files.items()
    }
    report = LoadReport()
    conn.execute("BEGIN TRANSACTION")
    try:
        ensure_tables(conn, table)
        conn.execute("COMMIT")
    except duckdb.Error:
        conn.execute("ROLLBACK")
        raise
    holding = loaded_versions(conn, table, list(copies))
    to_load: dict[str, Path] = {}
    locations: dict[Path, str] = {}
    pinned: dict[Path, PinnedVersion] = {}
    for key, copy in copies.items():
        loaded = holding.get(key)
        if copy.problem is not None:
            report.failed[key] = SourceFileError(copy.location, copy.problem)
            continue
        if copy.path is None:
            if loaded is not None:
                report.removed[key] = loaded[1]
            else:
                report.missing[key] = copy.location
            continue
        path = copy.path
        locations[path] = copy.location
        if copy.pinned is not None:
            version: Version = PinnedVersion(copy.pinned, copy.size, copy.mtime_ns)
            pinned[path] = version
        else:
            try:
                file_stat = os.lstat(path)
            except FileNotFoundError:
                if loaded is not None:
                    report.removed[key] = loaded[1]
                else:
                    report.missing[key] = copy.location
                continue
            except OSError as error:
                report.failed[key] = SourceFileError(copy.location, f"it cannot be read: {error.strerror}")
                continue
            if not stat.S_ISREG(file_stat.st_mode):
                report.failed[key] = SourceFileError(
                    copy.location, "it is not a regular file (a folder, link or device)"
                )
                continue
            version = FileVersion.from_stat(file_stat)
        if loaded is not None and loaded[0] == version.token:
            report.unchanged[key] = LoadResult(0, 0, version, loaded_by=loaded[1])
        else:
            to_load[key] = path
    key_of = {path: key for key, path in to_load.items()}
    attempts: dict[str, int] = {}
    while True:
        done = report.loaded.keys() | report.failed.keys() | report.missing.keys() | report.changing.keys()
        remaining = {k: p for k, p in to_load.items() if k not in done}
        versions, file_rows, changed = _read_first(remaining, pinned, report)
        try:
            _load_good_files(
                conn,
                table,
                {k: p for k, p in remaining.items() if k in file_rows},
                versions,
                file_rows,
                run_id,
                locations,
                report,
            )
        except FileChangedError as error:
            changed += error.paths
        if not changed:
            break
        for path in changed:
            key = key_of[path]
            attempts[key] = attempts.get(key, 0) + 1
            if attempts[key] >= ATTEMPTS_WHILE_CHANGING:
                report.changing[key] = FileChangedError([path], "it changed on every attempt to load it")
    _named_by_location(report, locations)
    if report.unchanged:
        counts = dict(
            conn.execute(
                f"SELECT partition_key, count(*) FROM {RawTable(table).value}"
                " WHERE partition_key IN (SELECT unnest(?::VARCHAR[])) GROUP BY ALL",
                [list(report.unchanged)],
            ).fetchall()
        )
        for key, result in report.unchanged.items():
            rows = counts.get(key, 0)
            report.unchanged[key] = LoadResult(rows, rows, result.version, result.loaded_by)
    return report


def replace_partition(
    conn: "duckdb.DuckDBPyConnection",
    table: RawTable,
    partition_key: str,
    path: Path,
    run_id: str | None = None,
) -> LoadResult:
    """Loads one partition's file (see `load_partitions`), raising `SourceFileError` if it is bad and
    `FileNotFoundError` if it is not there."""
    report = load_partitions(conn, table, {partition_key: path}, run_id)
    if partition_key in report.failed:
        raise report.failed[partition_key]
    if partition_key in report.changing:
        raise report.changing[partition_key]
    if partition_key not in report.holding:
        raise FileNotFoundError(2, "No such file", str(path))
    return report.holding[partition_key]

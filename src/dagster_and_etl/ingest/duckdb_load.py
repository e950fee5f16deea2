"""Loading partitions' CSV files into their DuckDB table: each file whole or not at all, each version once.

A load replaces a partition's rows and records the file version it loaded in `load_history`, in the same
transaction. A file whose version is already the one loaded is left alone. Files are loaded together in
one transaction when they are all good; a bad file is set aside with the reason, and the others load
without it, so one bad file holds back only itself.
"""

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dagster_and_etl.ingest.duckdb_tables import (
    RawTable,
    ensure_tables,
    literal_path,
    loaded_versions,
    row_counts,
    sql_text,
)
from dagster_and_etl.ingest.load_errors import (
    BadFiles,
    FileChangedError,
    duckdb_error,
    file_named_in,
    rejected_lines,
)
from dagster_and_etl.ingest.load_report import LoadReport, LoadResult, PinnedVersion, Version, changed_files
from dagster_and_etl.ingest.source import LocalCopy
from dagster_and_etl.ingest.source_file_scan import FileVersion, SourceFileError, count_data_rows

if TYPE_CHECKING:
    import duckdb

# How often a load starts again when a file changes while it is read, before giving up.
ATTEMPTS_WHILE_CHANGING = 3


@dataclass
class _Load:
    """One call's load: where it writes, and what it knows of each file it reads."""

    conn: "duckdb.DuckDBPyConnection"
    table: RawTable
    run_id: str | None
    report: LoadReport = field(default_factory=LoadReport)
    locations: dict[Path, str] = field(default_factory=dict)  # each local file's place in the source
    pinned: dict[Path, PinnedVersion] = field(default_factory=dict)  # complete copies of one version
    versions: dict[Path, Version] = field(default_factory=dict)  # taken before each file was first read
    file_rows: dict[str, int] = field(default_factory=dict)  # data rows counted in each file


def _record_loads(load: _Load, files: dict[str, Path]) -> None:
    keys = list(files)
    versions = [load.versions[files[key]] for key in keys]
    load.conn.execute(
        sql_text("record_loads.sql"),
        [
            load.table.value,
            load.run_id,
            keys,
            [load.locations[files[key]] for key in keys],
            [version.token for version in versions],
            [version.size for version in versions],
            [version.mtime_ns for version in versions],
            [load.file_rows[key] for key in keys],
        ],
    )


def _insert(load: _Load, files: dict[str, Path]) -> dict[str, int]:
    """Replaces the partitions' rows with their files' (bad lines set aside in temp.load_rejects), and
    counts the rows each partition now has."""
    conn, name = load.conn, load.table.value
    conn.execute("DROP TABLE IF EXISTS temp.load_rejects")
    conn.execute("DROP TABLE IF EXISTS temp.load_reject_scans")
    conn.execute(sql_text("stage_load_files.sql"), [[str(path) for path in files.values()], list(files)])
    conn.execute(f"DELETE FROM {name} WHERE partition_key IN (SELECT partition_key FROM load_files)")
    conn.execute(sql_text("insert_partitions.sql", load.table), [[literal_path(p) for p in files.values()]])
    return row_counts(conn, load.table, list(files))


def _load_together(load: _Load, files: dict[str, Path]) -> dict[str, LoadResult]:
    """Loads every file in one transaction, or rolls it all back and raises what went wrong: the bad
    files with their errors (`BadFiles`), `FileChangedError`, or DuckDB's own error. A file that differs
    at the end from the version taken before it was first read changed while it was read."""
    import duckdb  # here, not at the top: loading the code location need not load DuckDB

    versions = {path: load.versions[path] for path in files.values()}
    load.conn.execute("BEGIN TRANSACTION")
    try:
        row_counts = _insert(load, files)
        for key, path in files.items():
            if row_counts.get(key, 0) != load.file_rows[key]:  # blank lines, or a real mismatch
                load.file_rows[key] = count_data_rows(path)
        if rejected := rejected_lines(load.conn):
            raise BadFiles(rejected)
        if changed := changed_files(versions):
            raise FileChangedError(changed)
        _record_loads(load, files)
        load.conn.execute("COMMIT")
    except BaseException as error:
        load.conn.execute("ROLLBACK")
        if isinstance(error, FileChangedError) or not isinstance(error, BadFiles | duckdb.Error):
            raise
        # What looks like a bad file may be a file caught half-way through being rewritten.
        if changed := changed_files(versions):
            raise FileChangedError(changed) from error
        raise
    return {
        key: LoadResult(row_counts.get(key, 0), load.file_rows[key], load.versions[path])
        for key, path in files.items()
    }


def _load_good_files(load: _Load, files: dict[str, Path]) -> None:
    """Loads the files together; a bad one found on the way is set aside and the rest loaded again."""
    import duckdb

    report = load.report
    while files:
        try:
            report.loaded.update(_load_together(load, files))
            return
        except BadFiles as bad:
            key_of = {path: key for key, path in files.items()}
            for path, error in bad.errors.items():
                report.failed[key_of[path]] = error
            files = {key: path for key, path in files.items() if key not in report.failed}
        except duckdb.Error as error:
            # Not a line DuckDB could set aside (a value out of range, a file gone): find the file alone.
            if len(files) == 1:
                ((key, path),) = files.items()
                report.failed[key] = duckdb_error(error, file_named_in(error) or path)
                return
            for key, path in files.items():
                _load_good_files(load, {key: path})
            return


def _read_first(load: _Load, files: dict[str, Path]) -> list[Path]:
    """Takes each file's version, then counts its data rows while its header and encoding are checked;
    returns the files that looked bad only because they were being rewritten as they were read."""
    changed: list[Path] = []
    for key, path in files.items():
        load.file_rows.pop(key, None)  # counted again: only a file counted now is loaded
        try:
            load.versions[path] = load.pinned.get(path) or FileVersion.of(path)
            load.file_rows[key] = count_data_rows(path, skip_blank_lines=False)
        except SourceFileError as error:
            if changed_files({path: load.versions[path]}):
                changed.append(path)  # read again, like a file that changed while it was loaded
            else:
                load.report.failed[key] = error
        except FileNotFoundError:
            load.report.missing[key] = str(path)
        except OSError as error:  # a file listed but not readable: held back by itself
            load.report.failed[key] = SourceFileError(path, f"it cannot be read: {error.strerror}")
    return changed


def _version_in_place(
    load: _Load, key: str, copy: LocalCopy, loaded: tuple[str, str | None] | None
) -> Version | None:
    """The version of a file read where it lies, or None when it cannot be loaded (reported)."""
    assert copy.path is not None
    try:
        file_stat = os.lstat(copy.path)
    except FileNotFoundError:
        _not_there(load.report, key, copy, loaded)
        return None
    except OSError as error:
        load.report.failed[key] = SourceFileError(copy.location, f"it cannot be read: {error.strerror}")
        return None
    if not stat.S_ISREG(file_stat.st_mode):
        problem = "it is not a regular file (a folder, link or device)"
        load.report.failed[key] = SourceFileError(copy.location, problem)
        return None
    return FileVersion.from_stat(file_stat)


def _not_there(report: LoadReport, key: str, copy: LocalCopy, loaded: tuple[str, str | None] | None) -> None:
    if loaded is not None:
        report.removed[key] = loaded[1]
    else:
        report.missing[key] = copy.location


def _to_load(load: _Load, copies: dict[str, LocalCopy]) -> dict[str, Path]:
    """The files whose version is not the one their partition holds; the others are reported."""
    holding = loaded_versions(load.conn, load.table, list(copies))
    to_load: dict[str, Path] = {}
    for key, copy in copies.items():
        loaded = holding.get(key)
        if copy.problem is not None:
            load.report.failed[key] = SourceFileError(copy.location, copy.problem)
            continue
        if copy.path is None:
            _not_there(load.report, key, copy, loaded)
            continue
        load.locations[copy.path] = copy.location
        if copy.pinned is not None:
            version: Version | None = PinnedVersion(copy.pinned, copy.size, copy.mtime_ns)
            load.pinned[copy.path] = version
        else:
            version = _version_in_place(load, key, copy, loaded)
        if version is None:
            continue
        if loaded is not None and loaded[0] == version.token:
            load.report.unchanged[key] = LoadResult(0, 0, version, loaded_by=loaded[1])
        else:
            to_load[key] = copy.path
    return to_load


def _load_until_unchanged(load: _Load, to_load: dict[str, Path]) -> None:
    """Loads the files, again for those that changed while read, until none did or a file has changed
    on every one of its attempts."""
    key_of = {path: key for key, path in to_load.items()}
    attempts: dict[str, int] = {}
    while True:
        remaining = {k: p for k, p in to_load.items() if k not in load.report.settled}
        changed = _read_first(load, remaining)
        try:
            _load_good_files(load, {k: p for k, p in remaining.items() if k in load.file_rows})
        except FileChangedError as error:
            changed += error.paths
        if not changed:
            return
        for path in changed:
            key = key_of[path]
            attempts[key] = attempts.get(key, 0) + 1
            if attempts[key] >= ATTEMPTS_WHILE_CHANGING:
                load.report.changing[key] = FileChangedError([path], "it changed on every attempt to load it")


def _count_unchanged(load: _Load) -> None:
    """The rows each partition left as it was holds."""
    unchanged = load.report.unchanged
    counts = row_counts(load.conn, load.table, list(unchanged)) if unchanged else {}
    for key, result in unchanged.items():
        unchanged[key] = LoadResult(counts.get(key, 0), counts.get(key, 0), result.version, result.loaded_by)


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
    copies = {
        key: copy if isinstance(copy, LocalCopy) else LocalCopy(str(copy), Path(copy))
        for key, copy in files.items()
    }
    ensure_tables(conn, RawTable(table))
    load = _Load(conn, RawTable(table), run_id)
    _load_until_unchanged(load, _to_load(load, copies))
    load.report.name_by_location(load.locations)
    _count_unchanged(load)
    return load.report


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

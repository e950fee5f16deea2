"""Moving loaded files out of the landing zone (`SOURCE_ARCHIVE`): which are due, and the move itself.

A file is due once its current version is the one every table that loaded it holds, loaded at least
`SOURCE_ARCHIVE_AFTER_HOURS` ago; a file rewritten since stays, to be loaded. It goes to
`<archive>/<day archived>/<name>` (under `<archive>/<day>/<version mark>/<name>` when another version
of it was archived that day), and only the version that was loaded goes:
- in a folder, by a rename on the same filesystem, after checking that the file is still that version,
  and put back if it changed as it moved;
- in a bucket, by a copy of exactly that version (`CopySourceIfMatch`), checked, and then a delete of the
  source only if it is still that version (`IfMatch`). A move cut short between the copy and the delete
  leaves both; the next move of the file copies it again, over the same object, and deletes it.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster_and_etl.ingest.aws_errors import NOT_FOUND, aws_cause, error_code
from dagster_and_etl.ingest.duckdb_tables import LoadedFile, RawTable, loaded_files, sql_text
from dagster_and_etl.ingest.sensor_cursor import version_mark
from dagster_and_etl.ingest.source import Source, SourceFile
from dagster_and_etl.ingest.source_bucket import BucketSource, is_s3_uri, parse_s3_uri, version_token
from dagster_and_etl.ingest.source_file_scan import FileVersion
from dagster_and_etl.ingest.source_folder import FolderSource

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class ArchivedFile:
    partition_key: str
    source: str  # where it was, as the load history names it
    version: str  # the version loaded, which is the one moved
    archived_to: str
    size: int


class NotMoved(Exception):
    """A file left where it is, and why; the message names it."""


@dataclass
class ArchiveReport:
    moved: list[ArchivedFile] = field(default_factory=list)
    not_moved: list[str] = field(default_factory=list)  # why each file left in place stayed


def archive_destination(root: str, source: Source) -> str:
    """`SOURCE_ARCHIVE` checked against the source: for a folder, another folder (files are renamed into
    it, so it must be on the same filesystem); for a bucket, another prefix of the same bucket, returned
    as that prefix. A `ValueError` names both otherwise."""
    if isinstance(source, BucketSource):
        bucket, prefix = parse_s3_uri(root) if is_s3_uri(root) else ("", "")
        if bucket != source.bucket or prefix == source.prefix:
            raise ValueError(
                f"SOURCE_ARCHIVE {root} must be another prefix of the bucket of SOURCE_DIR {source}"
            )
        return prefix
    assert isinstance(source, FolderSource)
    if is_s3_uri(root) or Path(root) == source.folder:
        raise ValueError(
            f"SOURCE_ARCHIVE {root} must be another folder than SOURCE_DIR {source}, not an S3 prefix"
        )
    return root


def archive_loaded(
    source: Source,
    archive: str,
    connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
    after_ns: int,
) -> ArchiveReport:
    """Lists the source, reads what each table holds, moves the files due and records each move, with
    `connect` opening the DuckDB file of the load history; what was moved is recorded even when a move
    fails outright."""
    listing = source.list()
    with connect() as conn:
        holdings = [loaded_files(conn, table) for table in RawTable]
    due = due_for_archive(listing.files, holdings, time.time_ns(), after_ns)
    report = ArchiveReport()
    try:
        archive_files(source, archive, due, dt.datetime.now(dt.UTC).date().isoformat(), report)
    finally:
        if report.moved:
            with connect() as conn:
                record_archived(conn, report.moved)
    return report


def record_archived(conn: duckdb.DuckDBPyConnection, moved: list[ArchivedFile]) -> None:
    """Where each file moved went, in `archived_files`: one row per version moved, kept once."""
    conn.execute(sql_text("create_archived_files.sql"))
    conn.execute(
        sql_text("record_archived.sql"),
        [
            [f.partition_key for f in moved],
            [f.source for f in moved],
            [f.version for f in moved],
            [f.archived_to for f in moved],
            [f.size for f in moved],
        ],
    )


def due_for_archive(
    files: Sequence[SourceFile], holdings: Sequence[Mapping[str, LoadedFile]], now_ns: int, after_ns: int
) -> list[SourceFile]:
    """The files whose current version every table that loaded their key (each of `holdings`) holds,
    loaded at least `after_ns` before `now_ns`, oldest change first. A table that never loaded a key does
    not take its file: a file named for a day, loaded by the event-driven table only, is not waited on."""
    due = []
    for file in files:
        held = [holding[file.partition_key] for holding in holdings if file.partition_key in holding]
        if held and all(h.version == file.version and h.loaded_at_ns <= now_ns - after_ns for h in held):
            due.append(file)
    return sorted(due, key=lambda f: (f.changed_ns, f.name))


def archive_files(
    source: Source, archive: str, files: Sequence[SourceFile], day: str, report: ArchiveReport
) -> None:
    """Moves each file into `archive` (a folder, or a prefix of the source's bucket) under `day`, adding
    to `report` as it goes, so that what was moved is known even if a move fails outright."""
    for file in files:
        try:
            if isinstance(source, BucketSource):
                report.moved.append(move_in_bucket(source, file, archive, day))
            else:
                assert isinstance(source, FolderSource)
                report.moved.append(move_in_folder(source, file, Path(archive), day))
        except NotMoved as reason:
            report.not_moved.append(str(reason))


def move_in_folder(source: FolderSource, file: SourceFile, archive: Path, day: str) -> ArchivedFile:
    """Renames the file into the archive if it is still the version listed; `NotMoved` if not."""
    path = source.folder / file.name
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        raise NotMoved(f"{path} is gone already") from None
    if FileVersion.from_stat(before).token != file.version:
        raise NotMoved(f"{path} changed since it was loaded: it stays, to be loaded")
    target = archive / day / file.name
    if os.path.lexists(target):
        target = archive / day / version_mark(file.version) / file.name
    if os.path.lexists(target):
        raise NotMoved(f"{path}: {target} is taken already")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(path, target)
    except OSError as error:
        if error.errno == errno.EXDEV:
            raise NotMoved(
                f"{path}: SOURCE_ARCHIVE {archive} is on another filesystem, where a rename cannot move it"
            ) from None
        raise NotMoved(f"{path} cannot be moved to {target}: {error.strerror}") from None
    after = os.lstat(target)
    if (after.st_ino, after.st_size, after.st_mtime_ns) != (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    ):
        _put_back(target, path)
        raise NotMoved(f"{path} changed as it was moved: it stays, to be loaded")
    return ArchivedFile(file.partition_key, str(path), file.version, str(target), file.size)


def _put_back(moved: Path, path: Path) -> None:
    """Moves a file back where it was, unless a file has taken its place meanwhile: then it stays moved."""
    try:
        os.link(moved, path)
    except FileExistsError:
        return
    os.unlink(moved)


def move_in_bucket(source: BucketSource, file: SourceFile, archive_prefix: str, day: str) -> ArchivedFile:
    """Copies exactly the version listed into the archive prefix, checks the copy, then deletes the
    source object if it is still that version; `NotMoved` when it is not."""
    s3, bucket, location = source.client(), source.bucket, source.location(file.name)
    key = source.prefix + file.name
    etag = _etag(_head(s3, bucket, key, f"{location} is gone already"))
    if version_token(etag, file.size) != file.version:
        raise NotMoved(f"{location} changed since it was loaded: it stays, to be loaded")
    target = f"{archive_prefix}{day}/{file.name}"
    found = _head_or_none(s3, bucket, target)
    if found is not None and _etag(found) != etag:  # another version, archived the same day
        target = f"{archive_prefix}{day}/{version_mark(file.version)}/{file.name}"
    copy_source = {"Bucket": bucket, "Key": key}
    _call(
        location,
        lambda: s3.copy_object(Bucket=bucket, Key=target, CopySource=copy_source, CopySourceIfMatch=etag),
    )
    copied = _head(s3, bucket, target, f"s3://{bucket}/{target} is not there after the copy")
    # A copy of a multipart upload has an ETag of its own; its size still has to match.
    if copied["ContentLength"] != file.size or ("-" not in etag and _etag(copied) != etag):
        raise NotMoved(f"s3://{bucket}/{target} differs from {location}: the source stays")
    _call(location, lambda: s3.delete_object(Bucket=bucket, Key=key, IfMatch=etag))
    return ArchivedFile(file.partition_key, location, file.version, f"s3://{bucket}/{target}", file.size)


def _etag(head: dict[str, Any]) -> str:
    return head["ETag"].strip('"')


def _head_or_none(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except Exception as error:
        if error_code(error) in NOT_FOUND:
            return None
        raise


def _head(s3: Any, bucket: str, key: str, missing: str) -> dict[str, Any]:
    found = _head_or_none(s3, bucket, key)
    if found is None:
        raise NotMoved(missing)
    return found


def _call(location: str, request: Callable[[], Any]) -> None:
    """A copy or delete made only for the version listed: `NotMoved` when the object is another now."""
    try:
        request()
    except Exception as error:
        if error_code(error) in ("PreconditionFailed", "412", *NOT_FOUND):
            raise NotMoved(
                f"{location} changed as it was moved: it stays, to be loaded ({aws_cause(error)})"
            ) from None
        raise

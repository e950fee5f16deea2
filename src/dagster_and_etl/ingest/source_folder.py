"""A local folder as a source: which CSV files are there, and which version of each."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dagster_and_etl.ingest.partition_keys import file_name_for_key, key_for_file_name
from dagster_and_etl.ingest.source import (
    MISSING,
    FileInfo,
    ListedFile,
    LocalCopy,
    NoFile,
    SourceFile,
    SourceListing,
    SourceUnavailable,
)
from dagster_and_etl.ingest.source_file_scan import FileVersion, version_token

# File timestamps come from a coarse kernel clock and some filesystems keep whole seconds only, so a
# change can carry a time up to a second older than the moment it happened.
TIMESTAMP_SLACK_NS = 1_000_000_000


def changed_ns(file_stat: os.stat_result) -> int:
    """When a file last changed, by the machine's clock: its inode change time.

    The kernel sets it to the current time on every write, rename or `touch`; unlike the mtime,
    `cp -p`, `rsync -t` and `touch -d` cannot set it back, or ahead.
    """
    return file_stat.st_ctime_ns


def _file_of(entry: ListedFile) -> SourceFile:
    name, partition_key, size, mtime_ns, ctime_ns, inode = entry
    return SourceFile(
        name, partition_key, size, mtime_ns, ctime_ns, version_token(size, mtime_ns, ctime_ns, int(inode))
    )


def list_source_files(folder: Path) -> SourceListing:
    """Every regular `*.csv` file directly in `folder` whose name can be a partition key.

    Subfolders, symbolic links, hidden files and other suffixes (`.tmp`, `.part`, `.csv.tmp`) are passed
    over; names that cannot be keys are returned apart, with the reason. A file that disappears between
    the listing and its stat is passed over too: the next listing sees the folder as it then is.
    """
    now_ns = time.time_ns()  # before listing: a file written during the listing is judged next tick
    with os.scandir(folder) as directory:
        return SourceListing.of(_csv_files(directory), now_ns, TIMESTAMP_SLACK_NS, _file_of)


def _csv_files(directory: Iterator[os.DirEntry[str]]) -> Iterator[ListedFile]:
    # This loop runs once per file on every tick, so it does no more than it must.
    for entry in directory:
        name = entry.name
        partition_key = key_for_file_name(name)
        if partition_key is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            found = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        # The inode change time is the file's change time (see `changed_ns`).
        yield ListedFile(
            name, partition_key, found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_ino
        )


@dataclass(frozen=True)
class FolderSource:
    """Source files in a local folder: `<folder>/<partition key>.csv`."""

    folder: Path
    lookback_ns: int = 0  # a rewrite's change time is set when it ends, never before
    slack_ns: int = TIMESTAMP_SLACK_NS

    def __str__(self) -> str:
        return str(self.folder)

    def path(self, partition_key: str) -> Path:
        return self.folder / file_name_for_key(partition_key)

    def location(self, partition_key: str) -> str:
        return str(self.path(partition_key))

    def list(self) -> SourceListing:
        if not self.folder.is_dir():
            raise SourceUnavailable(f"SOURCE_DIR {self.folder} does not exist or is not a folder.")
        return list_source_files(self.folder)

    def info(self, partition_keys: list[str]) -> dict[str, FileInfo | NoFile]:
        found: dict[str, FileInfo | NoFile] = {}
        for key in partition_keys:
            path = self.path(key)
            now_ns = time.time_ns()
            try:
                file_stat = path.lstat()
            except FileNotFoundError:
                found[key] = MISSING
                continue
            if not stat.S_ISREG(file_stat.st_mode):
                found[key] = NoFile("not a regular file (a folder, link or device)")
                continue
            found[key] = FileInfo(
                str(path),
                file_stat.st_size,
                file_stat.st_mtime_ns,
                changed_ns(file_stat),
                FileVersion.from_stat(file_stat).token,
                now_ns,
            )
        return found

    @contextmanager
    def local_copies(self, partition_keys: list[str]) -> Iterator[dict[str, LocalCopy]]:
        """The files themselves: the load reads each in place and notices if it changes meanwhile."""
        yield {key: LocalCopy(self.location(key), self.path(key)) for key in partition_keys}

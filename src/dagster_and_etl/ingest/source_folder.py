"""A local folder as a source: which CSV files are there, and which version of each."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dagster_and_etl.ingest.partition_keys import file_name_for_key, file_names_for_key, key_for_file_name
from dagster_and_etl.ingest.source import (
    FileInfo,
    ListedFile,
    LocalCopy,
    NoFile,
    SourceFile,
    SourceListing,
    SourceUnavailable,
    only_file,
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
    """Every regular `*.csv` (`.csv.gz`, `.csv.zst`) file directly in `folder` whose name can be a
    partition key.

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
class FoundFile:
    """A partition's file in the folder, and what `lstat` said of it."""

    path: Path
    stat: os.stat_result


@dataclass(frozen=True)
class FolderSource:
    """Source files in a local folder: `<folder>/<partition key>.csv`, or `.csv.gz` or `.csv.zst`."""

    folder: Path
    lookback_ns: int = 0  # a rewrite's change time is set when it ends, never before
    slack_ns: int = TIMESTAMP_SLACK_NS

    def __str__(self) -> str:
        return str(self.folder)

    def location(self, name: str) -> str:
        return str(self.folder / name)

    def expected_location(self, partition_key: str) -> str:
        return self.location(file_name_for_key(partition_key))

    def find(self, partition_key: str) -> FoundFile | NoFile:
        """A partition's file, whichever of its names it has, or why there is none."""
        present: dict[str, os.stat_result] = {}
        for name in file_names_for_key(partition_key):
            try:
                present[name] = (self.folder / name).lstat()
            except FileNotFoundError:
                continue
        found = only_file(partition_key, list(present))
        return found if isinstance(found, NoFile) else FoundFile(self.folder / found, present[found])

    def list(self) -> SourceListing:
        if not self.folder.is_dir():
            raise SourceUnavailable(f"SOURCE_DIR {self.folder} does not exist or is not a folder.")
        return list_source_files(self.folder)

    def info(self, partition_keys: list[str]) -> dict[str, FileInfo | NoFile]:
        found: dict[str, FileInfo | NoFile] = {}
        for key in partition_keys:
            now_ns = time.time_ns()
            file = self.find(key)
            if isinstance(file, NoFile):
                found[key] = file
            elif not stat.S_ISREG(file.stat.st_mode):
                found[key] = NoFile("not a regular file (a folder, link or device)")
            else:
                found[key] = FileInfo(
                    file.path.name,
                    str(file.path),
                    file.stat.st_size,
                    file.stat.st_mtime_ns,
                    changed_ns(file.stat),
                    FileVersion.from_stat(file.stat).token,
                    now_ns,
                )
        return found

    @contextmanager
    def local_copies(self, partition_keys: list[str]) -> Iterator[dict[str, LocalCopy]]:
        """The files themselves: the load reads each in place and notices if it changes meanwhile."""
        copies = {}
        for key in partition_keys:
            file = self.find(key)
            if isinstance(file, FoundFile):
                copies[key] = LocalCopy(str(file.path), file.path)
                continue
            expected = self.expected_location(key)
            # Not there: the load says whether it was loaded once (removed since) or never arrived.
            problem = None if file.missing else f"it is {file.problem}"
            copies[key] = LocalCopy(expected, None if problem else Path(expected), problem=problem)
        yield copies

"""Listing the source folder: which CSV files are there, and which version of each."""

import os
from dataclasses import dataclass, field
from pathlib import Path

from dagster_and_etl.ingest.partition_keys import key_for_file_name, key_problem


@dataclass(frozen=True)
class SourceFile:
    """One version of one source file, as a single stat saw it."""

    name: str
    partition_key: str
    size: int
    mtime_ns: int
    # The later of the content's and the inode's change time. Unlike the mtime, the inode change time
    # cannot be set back by `cp -p` or `rsync -t`, so it shows every write and every replacement.
    changed_ns: int

    @property
    def version(self) -> str:
        """Names this version of the file: the same bytes under the same name keep the same version."""
        return f"{self.name}@mtime_ns={self.mtime_ns},size={self.size}"


@dataclass(frozen=True)
class UnsafeName:
    name: str
    problem: str


@dataclass(frozen=True)
class FolderListing:
    files: list[SourceFile] = field(default_factory=list)
    unsafe_names: list[UnsafeName] = field(default_factory=list)


def list_source_files(folder: Path) -> FolderListing:
    """Every regular `*.csv` file directly in `folder` whose name can be a partition key.

    Subfolders, symbolic links, hidden files and other suffixes (`.tmp`, `.part`, `.csv.tmp`) are passed
    over; names that cannot be keys are returned apart, with the reason. A file that disappears between
    the listing and its stat is passed over too: the next listing sees the folder as it then is.
    """
    listing = FolderListing()
    with os.scandir(folder) as entries:
        for entry in entries:
            partition_key = key_for_file_name(entry.name)
            if partition_key is None:
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            problem = key_problem(partition_key)
            if problem is not None:
                listing.unsafe_names.append(UnsafeName(entry.name, problem))
                continue
            listing.files.append(
                SourceFile(
                    name=entry.name,
                    partition_key=partition_key,
                    size=stat.st_size,
                    mtime_ns=stat.st_mtime_ns,
                    changed_ns=max(stat.st_mtime_ns, stat.st_ctime_ns),
                )
            )
    return listing

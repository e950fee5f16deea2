"""Listing the source folder: which CSV files are there, and which version of each."""

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from dagster_and_etl.ingest.partition_keys import key_for_file_name, key_problem


@dataclass(frozen=True, slots=True)
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


# One file as the listing saw it: name, partition key, size, mtime_ns, changed_ns (see SourceFile).
Entry = tuple[str, str, int, int, int]


@dataclass(frozen=True)
class FolderListing:
    entries: list[Entry] = field(default_factory=list)
    unsafe_names: list[UnsafeName] = field(default_factory=list)

    @functools.cached_property
    def files(self) -> list[SourceFile]:
        """The files as objects, made only when a tick has more to do than see that nothing changed."""
        return [SourceFile(*entry) for entry in self.entries]

    def latest_change_ns(self) -> int:
        return max((entry[4] for entry in self.entries), default=0)

    def names_digest(self) -> str:
        """A short digest of which source files are in the folder, whatever their order or contents.

        Python's string hashing differs from one process to the next, so after a restart the digest
        differs once, which costs one full look at the registered keys and nothing else.
        """
        return format(hash(frozenset(entry[0] for entry in self.entries)) & (2**64 - 1), "016x")


def list_source_files(folder: Path) -> FolderListing:
    """Every regular `*.csv` file directly in `folder` whose name can be a partition key.

    Subfolders, symbolic links, hidden files and other suffixes (`.tmp`, `.part`, `.csv.tmp`) are passed
    over; names that cannot be keys are returned apart, with the reason. A file that disappears between
    the listing and its stat is passed over too: the next listing sees the folder as it then is.
    """
    # This loop runs once per file on every tick, so it does no more than it must.
    entries: list[Entry] = []
    unsafe_names: list[UnsafeName] = []
    with os.scandir(folder) as directory:
        for entry in directory:
            name = entry.name
            partition_key = key_for_file_name(name)
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
                unsafe_names.append(UnsafeName(name, problem))
                continue
            mtime_ns = stat.st_mtime_ns
            ctime_ns = stat.st_ctime_ns
            entries.append(
                (name, partition_key, stat.st_size, mtime_ns, ctime_ns if ctime_ns > mtime_ns else mtime_ns)
            )
    return FolderListing(entries, unsafe_names)

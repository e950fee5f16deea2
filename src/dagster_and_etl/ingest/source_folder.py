"""Listing the source folder: which CSV files are there, and which version of each."""

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from dagster_and_etl.ingest.partition_keys import key_for_file_name, key_problem
from dagster_and_etl.ingest.source_file_scan import version_token

# File timestamps come from a coarse kernel clock and some filesystems keep whole seconds only, so a
# change can carry a time up to a second older than the moment it happened. A file counts as settled
# only once that much more time has passed.
TIMESTAMP_SLACK_NS = 1_000_000_000


def settle_horizon(now_ns: int, settle_ns: int) -> int:
    """The latest change time of a file that has stayed unchanged for `settle_ns` by `now_ns`."""
    return now_ns - settle_ns - TIMESTAMP_SLACK_NS


def changed_ns(stat: os.stat_result) -> int:
    """When a file last changed: its inode change time (see `SourceFile.changed_ns`)."""
    return stat.st_ctime_ns


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One version of one source file, as a single stat saw it."""

    name: str
    partition_key: str
    size: int
    mtime_ns: int
    # When the file last changed, by the machine's clock: its inode change time. The kernel sets it to
    # the current time on every write, rename or `touch`; unlike the mtime, `cp -p`, `rsync -t` and
    # `touch -d` cannot set it back, or ahead.
    changed_ns: int
    ctime_ns: int
    inode: int

    @property
    def version(self) -> str:
        """Names this version of the file, as the load history records it."""
        return version_token(self.size, self.mtime_ns, self.ctime_ns, self.inode)


@dataclass(frozen=True)
class UnsafeName:
    name: str
    problem: str


# One file as the listing saw it: name, partition key, size, mtime_ns, changed_ns, ctime_ns, inode
# (see SourceFile).
Entry = tuple[str, str, int, int, int, int, int]


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
            ctime_ns = stat.st_ctime_ns
            entries.append(
                (name, partition_key, stat.st_size, stat.st_mtime_ns, ctime_ns, ctime_ns, stat.st_ino)
            )
    return FolderListing(entries, unsafe_names)

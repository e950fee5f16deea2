"""The one shape every source has, a local folder or an S3 bucket prefix, as the sensor and the loads see it.

A source lists its files (name, partition key, size, times, version) with the time "now" by its own
clock, describes the files of some partitions, and hands a load one local, complete copy of each. The
sensor's planner and the DuckDB load know nothing else of where the files live.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol

from dagster_and_etl.ingest.partition_keys import PLAIN_SUFFIX, clash_problem, key_problem


def settle_horizon(now_ns: int, settle_ns: int, slack_ns: int) -> int:
    """The latest change time of a file that has stayed unchanged for `settle_ns` by `now_ns`.

    Timestamps may be up to `slack_ns` older than the change they stand for (a coarse clock, whole
    seconds), so a file counts as settled only once that much more time has passed."""
    return now_ns - settle_ns - slack_ns


class SourceUnavailable(Exception):
    """The source cannot be listed or read at all: the message names it and the cause."""


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One version of one source file, as a listing saw it."""

    name: str  # the file's name in the source: `<partition key>.csv`, `.csv.gz` or `.csv.zst`
    partition_key: str
    size: int
    mtime_ns: int  # when the file says it was written: orders new files, oldest first
    # When the file last changed, by the source's own clock: the settle rule and the horizon use it.
    changed_ns: int
    version: str  # names this version, as the load history records it


PLAIN_SUFFIX_LENGTH = len(PLAIN_SUFFIX)  # `.csv`: a longer suffix is a compressed file's


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a listing is made. Its records are tuples of a subclass, which
    the collector, unlike plain tuples, keeps walking as they pile up: a third of an idle tick over
    100,000 files. A record refers to no other object, so no cycle can form for it to miss."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ListedFile(NamedTuple):
    """One file as a listing saw it. A tuple, cheap to make for every file on every tick; it becomes a
    `SourceFile`, with its version spelled out, only on a tick that has more to do than see that nothing
    changed."""

    name: str
    partition_key: str
    size: int
    mtime_ns: int
    changed_ns: int
    # With the size and times, what tells this version apart: the inode in a folder, the ETag in S3.
    identity: int | str


@dataclass(frozen=True)
class SkippedFile:
    """A file a listing passes over, and why: its name cannot be a partition key, or another file gives
    the same key."""

    name: str
    problem: str


def _clashes(files: list[ListedFile], keys: set[str]) -> dict[str, list[str]]:
    """The names of the files giving each of `keys` that more than one file gives."""
    names: dict[str, list[str]] = {}
    for file in files:
        if file.partition_key in keys:
            names.setdefault(file.partition_key, []).append(file.name)
    return {key: found for key, found in names.items() if len(found) > 1}


@dataclass(frozen=True)
class SourceListing:
    """Every file of a source at one moment, and that moment by the source's own clock; `make_file`
    makes the `SourceFile` of one of its entries."""

    entries: list[ListedFile]
    now_ns: int  # "now", read before the listing started
    slack_ns: int  # how much older than its change a timestamp may be
    make_file: Callable[[ListedFile], SourceFile]
    skipped: list[SkippedFile] = field(default_factory=list)
    clashing: list[str] = field(default_factory=list)  # keys more than one file gives: none is listed

    @functools.cached_property
    def files(self) -> list[SourceFile]:
        return [self.make_file(entry) for entry in self.entries]

    def latest_change_ns(self) -> int:
        return max((entry.changed_ns for entry in self.entries), default=0)

    def changed_after(self, horizon_ns: int) -> list[SourceFile]:
        return [self.make_file(entry) for entry in self.entries if entry.changed_ns > horizon_ns]

    @classmethod
    def of(
        cls,
        found: Iterable[ListedFile],
        now_ns: int,
        slack_ns: int,
        make_file: Callable[[ListedFile], SourceFile],
    ) -> SourceListing:
        """The listing of the files a source found: the same rules for every source. Set apart with the
        reason: files whose key could name a path outside the source, and files giving the same key."""
        files: list[ListedFile] = []
        compressed: set[str] = set()  # keys of compressed files, the only ones another file can share
        skipped: list[SkippedFile] = []
        with _collector_paused():
            for file in found:
                problem = key_problem(file.partition_key)
                if problem is not None:
                    skipped.append(SkippedFile(file.name, problem))
                    continue
                files.append(file)
                if len(file.name) - len(file.partition_key) != PLAIN_SUFFIX_LENGTH:
                    compressed.add(file.partition_key)
        clashing = _clashes(files, compressed) if compressed else {}
        for partition_key, names in clashing.items():
            problem = f"it is {clash_problem(partition_key, names)}"
            skipped.extend(SkippedFile(name, problem) for name in sorted(names))
        if clashing:
            files = [file for file in files if file.partition_key not in clashing]
        return cls(files, now_ns, slack_ns, make_file, skipped, list(clashing))

    def names_digest(self) -> str:
        """A short digest of which files are in the source, whatever their order or contents.

        Python's string hashing differs from one process to the next, so after a restart the digest
        differs once, which costs one full look at the registered keys and nothing else.
        """
        return format(hash(frozenset(entry.name for entry in self.entries)) & (2**64 - 1), "016x")


@dataclass(frozen=True)
class FileInfo:
    """What a source says of one partition's file without reading it."""

    name: str  # the file's name in the source, as in `SourceFile`
    location: str  # the file's path, or its s3:// URI
    size: int
    mtime_ns: int
    changed_ns: int  # by the source's clock, as in `SourceFile`
    version: str
    now_ns: int  # the source's clock when it was asked


@dataclass(frozen=True)
class NoFile:
    """Why a partition has no file to read: not there at all (`missing`), or there but not a file."""

    problem: str  # in words, as a run's metadata shows it
    missing: bool = False
    names: tuple[str, ...] = ()  # the files there are, when there are too many


MISSING = NoFile("missing", missing=True)


def only_file(partition_key: str, present: Sequence[str]) -> str | NoFile:
    """The name of a partition's file, given which of the names it may have are `present`; or why it has
    none: `MISSING`, or more than one (see `clash_problem`)."""
    if not present:
        return MISSING
    if len(present) > 1:
        return NoFile(clash_problem(partition_key, present), names=tuple(present))
    return present[0]


@dataclass(frozen=True)
class LocalCopy:
    """A partition's file as a load reads it: the local file DuckDB opens, and what it is a copy of.

    `path` None: the file is not in the source (removed, or not arrived). `pinned` None: `path` is the
    source file itself, whose version is read from it and which may change while it is read; otherwise
    `path` is a complete copy of the version `pinned` names, `size` and `mtime_ns` being its facts.
    """

    location: str
    path: Path | None
    pinned: str | None = None
    size: int = 0
    mtime_ns: int = 0
    problem: str | None = None  # the file could not be fetched, and why: it fails by itself


class Source(Protocol):
    """What the sensor and the assets need of a source."""

    # How long before the horizon a rewrite may be stamped and still be found (see `plan_tick`): 0 for a
    # folder, whose change times are set when a write ends; more for S3, which stamps an upload with
    # its start.
    lookback_ns: int
    # How much older than the change it stands for a timestamp of this source may be.
    slack_ns: int

    def __str__(self) -> str: ...

    def location(self, name: str) -> str:
        """The path or URI of a file of the source, by its name."""
        ...

    def expected_location(self, partition_key: str) -> str:
        """Where a partition's file is looked for first, named when none is there: its plain CSV."""
        ...

    def list(self) -> SourceListing:
        """Every source file directly in the folder or prefix; `SourceUnavailable` if it cannot be listed."""
        ...

    def info(self, partition_keys: list[str]) -> dict[str, FileInfo | NoFile]:
        """Each partition's file as it is now, or why there is none."""
        ...

    def local_copies(self, partition_keys: list[str]) -> AbstractContextManager[dict[str, LocalCopy]]:
        """A local copy of each partition's file for the block, removed after it whatever happens."""
        ...

"""Due files grouped into runs: each run a range of consecutive partition keys, in the order they were
registered (Dagster runs a contiguous range of dynamic partitions, not an arbitrary set), new keys after the
registered ones, oldest file first. A run's key names the versions of every file in its range, so the same
versions batched the same way always give the same run key."""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from dagster_and_etl.ingest.source import SourceFile


@dataclass(frozen=True)
class RunBatch:
    """One run: a range of registered partition keys whose files are all due, present and settled."""

    files: list[SourceFile]  # in key order

    @property
    def first_key(self) -> str:
        return self.files[0].partition_key

    @property
    def last_key(self) -> str:
        return self.files[-1].partition_key

    @property
    def partition_keys(self) -> list[str]:
        return [source_file.partition_key for source_file in self.files]

    @property
    def run_key(self) -> str:
        """`<first key>..<last key>@<digest of every file's name and version>`, or `<key>@<digest>`."""
        versions = "\n".join(f"{f.name}@{f.version}" for f in self.files)
        digest = hashlib.sha256(versions.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        span = self.first_key if len(self.files) == 1 else f"{self.first_key}..{self.last_key}"
        return f"{span}@{digest}"


def _batches(due: list[tuple[int, SourceFile]], max_batch: int, max_bytes: int | None) -> list[RunBatch]:
    """Groups due files, by key position, into runs of at most `max_batch` consecutive keys and, with
    `max_bytes`, at most that many bytes: a file larger than that runs alone."""
    batches: list[RunBatch] = []
    previous, size = -2, 0
    for position, source_file in sorted(due, key=lambda item: item[0]):
        fits = max_bytes is None or size + source_file.size <= max_bytes
        if batches and len(batches[-1].files) < max_batch and position == previous + 1 and fits:
            batches[-1].files.append(source_file)
            size += source_file.size
        else:
            batches.append(RunBatch([source_file]))
            size = source_file.size
        previous = position
    return batches


def _new_files(due: list[SourceFile], position: Mapping[str, int]) -> list[SourceFile]:
    """The due files whose keys are not registered, oldest first: the order they are registered in."""
    return sorted((f for f in due if f.partition_key not in position), key=lambda f: (f.mtime_ns, f.name))


@dataclass(frozen=True)
class TickRuns:
    """The runs one tick requests, and the due files the runs-per-tick limit leaves for a later tick."""

    batches: list[RunBatch]  # in key order
    waiting: list[SourceFile]
    position: Mapping[str, int]  # the registered keys' order

    @property
    def requested(self) -> list[SourceFile]:
        return [source_file for batch in self.batches for source_file in batch.files]

    @property
    def new_partition_keys(self) -> list[str]:
        """The requested keys not yet registered, in the order to register them: oldest file first."""
        return [f.partition_key for f in self.requested if f.partition_key not in self.position]


def tick_runs(
    due: list[SourceFile],
    position: Mapping[str, int],
    max_batch: int,
    max_runs: int | None,
    max_bytes: int | None = None,
) -> TickRuns:
    """The due files in runs of at most `max_batch` keys and `max_bytes` bytes, registered keys in their
    order (`position`), then new ones oldest first; the first `max_runs` runs are requested (all of them
    with None)."""
    placed = [(position[f.partition_key], f) for f in due if f.partition_key in position]
    placed += [(len(position) + index, f) for index, f in enumerate(_new_files(due, position))]
    batches = _batches(placed, max_batch, max_bytes)
    kept = batches if max_runs is None else batches[:max_runs]
    waiting = [source_file for batch in batches[len(kept) :] for source_file in batch.files]
    return TickRuns(kept, waiting, position)

"""What one tick of the directory sensor should do, decided from plain values.

The cursor holds a single time, the horizon: every file change at or before it has been dealt with. A
tick moves it up to "now less the settle window", so its size never grows with the folder. Files are
then requested when
- their key is not yet a registered partition (new files, whatever their mtime says), or
- they changed after the previous horizon (rewritten or replaced files).
Files that changed after the new horizon are still settling and wait for a later tick.

Requested files are loaded in batches, one run each over a range of partition keys in the order the
keys were registered (Dagster runs a contiguous range of dynamic partitions, not an arbitrary set). New
keys are registered oldest file first at the end of that order, so a backlog of new files makes few,
full batches. A run's key names the versions of every file in its range: the same versions, batched the
same way, always give the same run key, and Dagster never starts a run key twice.
"""

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dagster_and_etl.ingest.source_folder import FolderListing, SourceFile, UnsafeName

# File timestamps come from a coarse kernel clock and some filesystems keep whole seconds only, so a
# change can carry a time up to a second older than the moment it happened. The horizon stays that far
# behind the clock, and no change can land behind it unseen.
TIMESTAMP_SLACK_NS = 1_000_000_000


@dataclass(frozen=True)
class SensorCursor:
    horizon_ns: int = 0
    # Which files were in the folder when every one of them had been registered: while the folder
    # holds the same names and nothing changed, a tick need not read the registered keys at all.
    names_digest: str | None = None

    def serialize(self) -> str:
        return json.dumps({"horizon_ns": self.horizon_ns, "names_digest": self.names_digest})

    @classmethod
    def parse(cls, text: str | None) -> "SensorCursor":
        """The cursor stored by an earlier tick; an empty or unreadable one starts from the beginning."""
        try:
            stored = json.loads(text or "{}")
            horizon_ns, digest = stored.get("horizon_ns", 0), stored.get("names_digest")
        except (ValueError, TypeError, AttributeError):
            return cls()
        if not isinstance(horizon_ns, int) or horizon_ns < 0 or not isinstance(digest, str | None):
            return cls()
        return cls(horizon_ns, digest)


@dataclass(frozen=True)
class RunBatch:
    """One run: a range of registered partition keys whose files are all present and settled."""

    first_key: str
    last_key: str
    files: list[SourceFile]  # every file in the range, in key order
    requested: list[SourceFile]  # those among them that are new or changed

    @property
    def partition_keys(self) -> list[str]:
        return [source_file.partition_key for source_file in self.files]

    @property
    def run_key(self) -> str:
        versions = "\n".join(source_file.version for source_file in self.files)
        digest = hashlib.sha256(versions.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        span = self.first_key if len(self.files) == 1 else f"{self.first_key}..{self.last_key}"
        return f"{span}@{digest}"


@dataclass(frozen=True)
class TickPlan:
    batches: list[RunBatch]  # in key order, oldest new files last
    new_partition_keys: list[str]  # to register, in this order, before the batches run
    settling: list[SourceFile]
    unsafe_names: list[UnsafeName]
    waiting: list[SourceFile]  # new or changed, left for a later tick by the runs-per-tick limit
    cursor: SensorCursor

    @property
    def to_request(self) -> list[SourceFile]:
        return [source_file for batch in self.batches for source_file in batch.requested]

    def skip_reason(self, folder: str) -> str:
        """Why this tick requests nothing, telling an idle folder from a busy or a troubled one."""
        parts = [f"No new or modified files in {folder}"]
        if self.settling:
            parts.append(f"{len(self.settling)} file(s) still settling")
        if self.unsafe_names:
            names = ", ".join(repr(unsafe.name) for unsafe in self.unsafe_names[:3])
            more = ", ..." if len(self.unsafe_names) > 3 else ""
            parts.append(
                f"{len(self.unsafe_names)} file(s) skipped: names that cannot be partition keys"
                f" ({names}{more})"
            )
        return "; ".join(parts) + "."


def _batches(
    requested: list[tuple[int, SourceFile]], file_at: Sequence[SourceFile | None], max_batch: int
) -> list[RunBatch]:
    """Groups requested files, by key position, into ranges of at most `max_batch` keys with no gap:
    every key inside a range has a settled file (unchanged ones are loaded again with the rest)."""
    batches: list[RunBatch] = []
    start = end = -1
    chosen: list[SourceFile] = []

    def close() -> None:
        files = [source_file for source_file in file_at[start : end + 1] if source_file is not None]
        batches.append(RunBatch(files[0].partition_key, files[-1].partition_key, files, chosen))

    for position, source_file in requested:
        extends = (
            start >= 0
            and position - start < max_batch
            and all(file_at[between] is not None for between in range(end + 1, position))
        )
        if not extends:
            if start >= 0:
                close()
            start, chosen = position, []
        end = position
        chosen.append(source_file)
    if start >= 0:
        close()
    return batches


def plan_tick(
    listing: FolderListing,
    registered_keys: Sequence[str] | Callable[[], Sequence[str]],
    cursor: SensorCursor,
    now_ns: int,
    settle_ns: int,
    max_batch: int = 1,
    max_runs: int | None = None,
) -> TickPlan:
    """Which files to register and request, in which batches, which wait, and the cursor to store.

    `registered_keys` are the dynamic partition keys in the order they were registered, or a function
    that reads them, called only when the folder's names or files changed since the last tick.
    """
    horizon_ns = max(cursor.horizon_ns, now_ns - settle_ns - TIMESTAMP_SLACK_NS)
    digest = listing.names_digest()
    if digest == cursor.names_digest and listing.latest_change_ns() <= cursor.horizon_ns:
        return TickPlan([], [], [], listing.unsafe_names, [], SensorCursor(horizon_ns, digest))
    if callable(registered_keys):
        registered_keys = registered_keys()
    position = {key: index for index, key in enumerate(registered_keys)}
    settled: dict[str, SourceFile] = {}
    settling: list[SourceFile] = []
    changed: list[SourceFile] = []
    new: list[SourceFile] = []
    for source_file in listing.files:
        if source_file.changed_ns > horizon_ns:
            settling.append(source_file)
            continue
        settled[source_file.partition_key] = source_file
        if source_file.partition_key not in position:
            new.append(source_file)
        elif source_file.changed_ns > cursor.horizon_ns:
            changed.append(source_file)
    new.sort(key=lambda source_file: (source_file.mtime_ns, source_file.name))

    file_at: list[SourceFile | None] = [settled.get(key) for key in registered_keys] + new
    requested = sorted((position[f.partition_key], f) for f in changed) + [
        (len(registered_keys) + index, source_file) for index, source_file in enumerate(new)
    ]
    batches = _batches(requested, file_at, max_batch)
    kept = batches if max_runs is None else batches[:max_runs]
    waiting = [source_file for batch in batches[len(kept) :] for source_file in batch.requested]
    # Changed files left waiting are found again only if the horizon stays below them; new ones are
    # found again by their key, which is registered only once it is requested.
    waiting_changed = [f.changed_ns for f in waiting if f.partition_key in position]
    if waiting_changed:
        horizon_ns = min(horizon_ns, min(waiting_changed) - 1)
    requested_new = {f.partition_key for batch in kept for f in batch.requested} - position.keys()
    return TickPlan(
        batches=kept,
        new_partition_keys=[f.partition_key for f in new if f.partition_key in requested_new],
        settling=settling,
        unsafe_names=listing.unsafe_names,
        waiting=waiting,
        # Files still settling or waiting make the next tick look at the registered keys again.
        cursor=SensorCursor(max(horizon_ns, cursor.horizon_ns), None if waiting or settling else digest),
    )

"""What one tick of the file sensor should do, decided from plain values.

A file is due when its current version is not yet loaded or requested. The cursor tells which, without
reading the database on an ordinary tick:
- the horizon: every change at or before it has been requested. A tick moves it up to "now less the
  settle window", so a file changed after the last tick is due, and one changed after the new horizon
  is still settling and waits;
- the versions requested that changed after the horizon (only while a limit keeps the horizon back),
  so that no version is requested twice;
- for a source that may stamp a change with a time before it was seen (S3 stamps an upload with its
  start), the versions of every file stamped within a lookback window before the horizon, so a rewrite
  that lands behind the horizon is still found by its new version;
- a file whose key is not a registered partition is new, and due, whatever its mtime says.

Without a cursor (first enable, or a reset) the tick rebuilds what it knows from the load history: a
file is due when the version loaded into its partition is not its current one. Nothing loaded is
requested again.

Due files are requested in batches, one run each over a range of partition keys that are all due, in
the order the keys were registered (Dagster runs a contiguous range of dynamic partitions, not an
arbitrary set). New keys are registered oldest file first at the end of that order, so a backlog of new
files makes few, full batches. A run's key names the versions
of every file in its range, so the same versions batched the same way always give the same run key.
"""

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dagster_and_etl.ingest.source import SourceFile, SourceListing, UnsafeName, settle_horizon

# With a lookback, the most versions of files stamped at or before the horizon that the cursor keeps, so
# that it stays small (about 30 KB at most) however many files change within the lookback window.
MAX_REMEMBERED = 1000


@dataclass(frozen=True)
class SensorCursor:
    # 0: no tick has run, the cursor was reset, or a rebuild goes on; the next tick rebuilds.
    horizon_ns: int = 0
    # Which files were in the folder when every one of them had been registered: while the folder
    # holds the same names and nothing changed, a tick need not read the registered keys at all.
    names_digest: str | None = None
    # Versions requested whose changes lie after the horizon (during a rebuild: every version it
    # requested), by partition key, as short marks (`version_mark`); with a lookback, also the versions
    # loaded or requested of the files stamped within it, at most `MAX_REMEMBERED` of them.
    requested: Mapping[str, str] = field(default_factory=dict)
    # The clock when the cursor was stored: a clock found earlier than this was set back, and the
    # changes made since may carry times behind the horizon, so the tick rebuilds.
    clock_ns: int = 0
    # With a lookback: the stamp at or below which the files stamped within it were too many to remember
    # (see `MAX_REMEMBERED`); 0 when all are remembered.
    floor_ns: int = 0
    # Kept by the sensor, not the planner (see ingest/lost_loads.py): the database file as it was when
    # found holding the last load Dagster recorded, and, once it was found not to, why, until a reset.
    database: str | None = None
    database_problem: str | None = None

    @property
    def is_fresh(self) -> bool:
        return self.horizon_ns == 0

    def serialize(self) -> str:
        stored: dict = {"horizon_ns": self.horizon_ns, "names_digest": self.names_digest}
        if self.requested:
            stored["requested"] = dict(self.requested)
        if self.clock_ns:
            stored["clock_ns"] = self.clock_ns
        if self.floor_ns:
            stored["floor_ns"] = self.floor_ns
        if self.database:
            stored["database"] = self.database
        if self.database_problem:
            stored["database_problem"] = self.database_problem
        return json.dumps(stored, separators=(",", ":"))

    @classmethod
    def parse(cls, text: str | None) -> "SensorCursor":
        """The cursor stored by an earlier tick; an empty or unreadable one starts a rebuild."""
        try:
            stored = json.loads(text or "{}")
            horizon_ns, digest = stored.get("horizon_ns", 0), stored.get("names_digest")
            requested, clock_ns = stored.get("requested", {}), stored.get("clock_ns", 0)
            floor_ns = stored.get("floor_ns", 0)
            database, problem = stored.get("database"), stored.get("database_problem")
        except (ValueError, TypeError, AttributeError):
            return cls()
        if (
            not isinstance(horizon_ns, int)
            or not isinstance(clock_ns, int)
            or not isinstance(floor_ns, int)
            or horizon_ns < 0
            or not isinstance(digest, str | None)
            or not isinstance(requested, dict)
            or not all(isinstance(v, str) for v in requested.values())
            or not isinstance(database, str | None)
            or not isinstance(problem, str | None)
        ):
            return cls()
        return cls(horizon_ns, digest, requested, clock_ns, floor_ns, database, problem)


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


@dataclass(frozen=True)
class TickPlan:
    batches: list[RunBatch]  # in key order, new files oldest first after the registered ones
    new_partition_keys: list[str]  # to register, in this order, before the batches run
    settling: list[SourceFile]
    unsafe_names: list[UnsafeName]
    waiting: list[SourceFile]  # due, left for a later tick by the runs-per-tick limit
    cursor: SensorCursor
    rebuilt: bool = False  # this tick rebuilt what is due from the load history
    registered_only: int = 0  # files registered without a run: present when the sensor was first enabled

    @property
    def to_request(self) -> list[SourceFile]:
        return [source_file for batch in self.batches for source_file in batch.files]

    def skip_reason(self, source: str) -> str:
        """Why this tick requests nothing, telling an idle folder from a busy or a troubled one."""
        if self.registered_only:
            parts = [
                f"First tick: registered the {self.registered_only} file(s) already in {source} as"
                " partitions without loading them (SENSOR_INCLUDE_EXISTING_FILES=false); files that"
                " arrive or change from now on are loaded"
            ]
        else:
            parts = [f"No new or modified files in {source}"]
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


def _batches(due: list[tuple[int, SourceFile]], max_batch: int) -> list[RunBatch]:
    """Groups due files, by key position, into runs of at most `max_batch` consecutive keys."""
    batches: list[RunBatch] = []
    previous = -2
    for position, source_file in sorted(due, key=lambda item: item[0]):
        if batches and len(batches[-1].files) < max_batch and position == previous + 1:
            batches[-1].files.append(source_file)
        else:
            batches.append(RunBatch([source_file]))
        previous = position
    return batches


def plan_tick(
    listing: SourceListing,
    registered_keys: Sequence[str] | Callable[[], Sequence[str]],
    cursor: SensorCursor,
    now_ns: int,
    settle_ns: int,
    max_batch: int = 1,
    max_runs: int | None = None,
    loaded_versions: Mapping[str, str] | Callable[[], Mapping[str, str]] = dict,
    include_existing: bool = True,
    lookback_ns: int = 0,
) -> TickPlan:
    """Which files to register and request, in which batches, which wait, and the cursor to store.

    `registered_keys` are the dynamic partition keys in the order they were registered, and
    `loaded_versions` the version of the file each partition holds; either may be a function that
    reads them. The keys are read only when the source's names or files changed since the last tick,
    the loaded versions only when the tick rebuilds (no cursor, or a clock set back). `lookback_ns` is
    how long before the horizon a change may be stamped and still be found (see `Source.lookback_ns`).
    """
    rebuild = cursor.is_fresh or now_ns < cursor.clock_ns
    settled_by_now = settle_horizon(now_ns, settle_ns, listing.slack_ns)
    horizon_ns = settled_by_now if rebuild else max(cursor.horizon_ns, settled_by_now)
    digest = listing.names_digest()
    # A file stamped after this is due unless the cursor holds its version; before it, unless it is new.
    known_after_ns = _known_after(cursor.horizon_ns, cursor.floor_ns, lookback_ns)
    if (
        not rebuild
        and digest == cursor.names_digest
        and listing.latest_change_ns() <= cursor.horizon_ns
        and all(
            cursor.requested.get(f.partition_key) == version_mark(f.version)
            for f in listing.changed_after(known_after_ns)
        )
    ):
        remembered = listing.changed_after(_known_after(horizon_ns, cursor.floor_ns, lookback_ns))
        return TickPlan(
            [],
            [],
            [],
            listing.unsafe_names,
            [],
            _next_cursor(horizon_ns, digest, remembered, now_ns, cursor.floor_ns, lookback_ns),
        )
    if callable(registered_keys):
        registered_keys = registered_keys()
    position = {key: index for index, key in enumerate(registered_keys)}
    settled: list[SourceFile] = []
    settling: list[SourceFile] = []
    for source_file in listing.files:
        (settling if source_file.changed_ns > horizon_ns else settled).append(source_file)

    if cursor.horizon_ns == 0 and not include_existing and not registered_keys:
        # First enable on a fresh instance: what is already there is registered, ready for a backfill.
        existing = sorted(settled, key=lambda f: (f.mtime_ns, f.name))
        remembered = [f for f in settled if f.changed_ns > horizon_ns - lookback_ns] if lookback_ns else []
        return TickPlan(
            [],
            [f.partition_key for f in existing],
            settling,
            listing.unsafe_names,
            [],
            _next_cursor(horizon_ns, None if settling else digest, remembered, now_ns, 0, lookback_ns),
            registered_only=len(existing),
        )

    if rebuild:
        if callable(loaded_versions):
            loaded_versions = loaded_versions()
        due = [
            f
            for f in settled
            if loaded_versions.get(f.partition_key) != f.version
            and cursor.requested.get(f.partition_key) != version_mark(f.version)
        ]
    else:
        due = [
            f
            for f in settled
            if f.partition_key not in position
            or (
                f.changed_ns > known_after_ns
                and cursor.requested.get(f.partition_key) != version_mark(f.version)
            )
        ]
    new = sorted((f for f in due if f.partition_key not in position), key=lambda f: (f.mtime_ns, f.name))
    placed = [(position[f.partition_key], f) for f in due if f.partition_key in position]
    placed += [(len(position) + index, f) for index, f in enumerate(new)]
    batches = _batches(placed, max_batch)
    kept = batches if max_runs is None else batches[:max_runs]
    waiting = [source_file for batch in batches[len(kept) :] for source_file in batch.files]
    requested = [source_file for batch in kept for source_file in batch.files]
    requested_new = {f.partition_key for f in requested} - position.keys()

    if rebuild:
        # A rebuild that could not request everything goes on next tick, remembering what it requested.
        if waiting:
            already = {**cursor.requested, **{f.partition_key: version_mark(f.version) for f in requested}}
            next_cursor = SensorCursor(0, None, already, clock_ns=now_ns)
        else:
            # With a lookback, what every file stamped within it holds now is known: loaded, or requested.
            remembered = (
                [f for f in settled if f.changed_ns > horizon_ns - lookback_ns] if lookback_ns else []
            )
            next_cursor = _next_cursor(
                horizon_ns, None if settling else digest, remembered, now_ns, 0, lookback_ns
            )
    else:
        # Changed files left waiting are found again only while the horizon stays below them; new
        # ones are found again by their key, which is registered only once it is requested.
        waiting_changed = [f.changed_ns for f in waiting if f.partition_key in position]
        if waiting_changed:
            horizon_ns = max(cursor.horizon_ns, min(horizon_ns, min(waiting_changed) - 1))
        marks = {**cursor.requested, **{f.partition_key: version_mark(f.version) for f in requested}}
        still_after_ns = _known_after(horizon_ns, cursor.floor_ns, lookback_ns)
        remembered = [
            f
            for f in listing.files
            if f.changed_ns > still_after_ns and marks.get(f.partition_key) == version_mark(f.version)
        ]
        next_cursor = _next_cursor(
            horizon_ns,
            # Files still settling or waiting make the next tick look at the registered keys again.
            None if waiting or settling else digest,
            remembered,
            now_ns,
            cursor.floor_ns,
            lookback_ns,
        )
    return TickPlan(
        batches=kept,
        new_partition_keys=[f.partition_key for f in new if f.partition_key in requested_new],
        settling=settling,
        unsafe_names=listing.unsafe_names,
        waiting=waiting,
        cursor=next_cursor,
        rebuilt=rebuild,
    )


def version_mark(version: str) -> str:
    """A short mark of a version, as the cursor keeps it: 12 hex digits of its BLAKE2b hash."""
    return hashlib.blake2b(version.encode("utf-8", "surrogateescape"), digest_size=6).hexdigest()


def _known_after(horizon_ns: int, floor_ns: int, lookback_ns: int) -> int:
    """The stamp after which the cursor holds the version of every file requested or loaded."""
    return max(horizon_ns - lookback_ns, floor_ns) if lookback_ns else horizon_ns


def _next_cursor(
    horizon_ns: int,
    digest: str | None,
    remembered: list[SourceFile],
    now_ns: int,
    floor_ns: int,
    lookback_ns: int,
) -> SensorCursor:
    """The cursor that remembers the versions of `remembered`, keeping at most `MAX_REMEMBERED` of
    those stamped at or before the horizon (the newest): the floor is raised past the rest."""
    behind = sorted((f.changed_ns for f in remembered if f.changed_ns <= horizon_ns), reverse=True)
    if len(behind) > MAX_REMEMBERED:
        floor_ns = max(floor_ns, behind[MAX_REMEMBERED])
    if floor_ns <= horizon_ns - lookback_ns:  # the window has moved past it
        floor_ns = 0
    marks = {f.partition_key: version_mark(f.version) for f in remembered if f.changed_ns > floor_ns}
    return SensorCursor(horizon_ns, digest, marks, clock_ns=now_ns, floor_ns=floor_ns)

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

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, replace

from dagster_and_etl.ingest.run_batches import RunBatch, tick_runs
from dagster_and_etl.ingest.sensor_cursor import SensorCursor, known_after, remembering, version_mark
from dagster_and_etl.ingest.source import SkippedFile, SourceFile, SourceListing, settle_horizon


@dataclass(frozen=True)
class TickPlan:
    batches: list[RunBatch]  # in key order, new files oldest first after the registered ones
    new_partition_keys: list[str]  # to register, in this order, before the batches run
    settling: list[SourceFile]
    skipped: list[SkippedFile]
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
        if self.skipped:
            names = ", ".join(repr(skipped.name) for skipped in self.skipped[:3])
            more = ", ..." if len(self.skipped) > 3 else ""
            parts.append(f"{len(self.skipped)} file(s) skipped, the log says why ({names}{more})")
        return "; ".join(parts) + "."


@dataclass(frozen=True)
class RegisteredKeys:
    """The dynamic partition keys registered so far, read from the instance when a tick needs them."""

    all: Callable[[], Sequence[str]]  # every key, in the order registered
    among: Callable[[list[str]], Set[str]]  # which of these keys are registered: one query for a few


@dataclass(frozen=True)
class TickRules:
    """How a tick judges the files it finds and groups them into runs."""

    settle_ns: int = 0  # how long a file must go unchanged before it is due
    max_batch: int = 1  # the most files in one run
    max_batch_bytes: int | None = None  # the most bytes in one run, but for a larger file alone; None: any
    max_runs: int | None = None  # the most runs one tick requests; None: no limit
    include_existing: bool = True  # whether a first tick on a fresh instance loads what is already there
    lookback_ns: int = 0  # how long before the horizon a change may be stamped (`Source.lookback_ns`)


@dataclass(frozen=True)
class _Tick:
    """What every step of one tick's plan shares."""

    listing: SourceListing
    cursor: SensorCursor
    rules: TickRules
    now_ns: int
    rebuild: bool  # no cursor, or a clock set back: what is due is read from the load history
    horizon_ns: int  # every change at or before it is requested once this tick's plan is carried out
    digest: str

    def known_after(self, horizon_ns: int) -> int:
        return known_after(horizon_ns, self.cursor.floor_ns, self.rules.lookback_ns)

    def nothing_changed(self) -> bool:
        """The same names, nothing changed since the horizon, and every version the cursor holds as
        requested still the one there: the tick needs neither the registered keys nor the files."""
        cursor, listing = self.cursor, self.listing
        return (
            not self.rebuild
            and self.digest == cursor.names_digest
            and listing.latest_change_ns() <= cursor.horizon_ns
            and all(
                cursor.holds_request(f) for f in listing.changed_after(self.known_after(cursor.horizon_ns))
            )
        )

    def within_lookback(self, files: list[SourceFile]) -> list[SourceFile]:
        lookback_ns = self.rules.lookback_ns
        return [f for f in files if f.changed_ns > self.horizon_ns - lookback_ns] if lookback_ns else []

    def next_cursor(
        self, horizon_ns: int, digest: str | None, remembered: list[SourceFile], floor_ns: int
    ) -> SensorCursor:
        return remembering(remembered, horizon_ns, digest, self.now_ns, floor_ns, self.rules.lookback_ns)


def plan_tick(
    listing: SourceListing,
    cursor: SensorCursor,
    rules: TickRules,
    registered_keys: Sequence[str] | Callable[[], Sequence[str]] = (),
    loaded_versions: Mapping[str, str] | Callable[[], Mapping[str, str]] = dict,
    now_ns: int | None = None,
) -> TickPlan:
    """Which files to register and request, in which batches, which wait, and the cursor to store.

    `registered_keys` are the dynamic partition keys in the order they were registered, and
    `loaded_versions` the version of the file each partition holds; either may be a function that
    reads them. The keys are read only when the source's names or files changed since the last tick,
    the loaded versions only when the tick rebuilds. `now_ns` is the listing's clock unless given.
    """
    plan = _plan_tick(listing, cursor, rules, registered_keys, loaded_versions, now_ns)
    return replace(plan, cursor=replace(plan.cursor, clashing=tuple(listing.clashing)))


def _plan_tick(
    listing: SourceListing,
    cursor: SensorCursor,
    rules: TickRules,
    registered_keys: Sequence[str] | Callable[[], Sequence[str]],
    loaded_versions: Mapping[str, str] | Callable[[], Mapping[str, str]],
    now_ns: int | None,
) -> TickPlan:
    now_ns = listing.now_ns if now_ns is None else now_ns
    rebuild = cursor.is_fresh or now_ns < cursor.clock_ns
    settled_by_now = settle_horizon(now_ns, rules.settle_ns, listing.slack_ns)
    horizon_ns = settled_by_now if rebuild else max(cursor.horizon_ns, settled_by_now)
    tick = _Tick(listing, cursor, rules, now_ns, rebuild, horizon_ns, listing.names_digest())
    if tick.nothing_changed():
        remembered = listing.changed_after(tick.known_after(horizon_ns))
        cursor_now = tick.next_cursor(horizon_ns, tick.digest, remembered, cursor.floor_ns)
        return TickPlan([], [], [], listing.skipped, [], cursor_now)
    keys = registered_keys() if callable(registered_keys) else registered_keys
    position = {key: index for index, key in enumerate(keys)}
    settled = [f for f in listing.files if f.changed_ns <= horizon_ns]
    settling = [f for f in listing.files if f.changed_ns > horizon_ns]
    if cursor.horizon_ns == 0 and not rules.include_existing and not keys:
        return _registered_only(tick, settled, settling)
    # Keys whose files stop clashing (one of them removed, so the names differ and the tick looks): the
    # file left may never have been looked at, stamped behind the horizon, so the load history judges it.
    resolved = set(cursor.clashing) - set(listing.clashing)
    loaded: Mapping[str, str] = {}
    if rebuild or resolved:
        loaded = loaded_versions() if callable(loaded_versions) else loaded_versions
    if rebuild:
        due = not_loaded_nor_requested(settled, loaded, cursor)
    else:
        due = [f for f in settled if f.partition_key not in position or _changed_since(tick, f)]
        unclashed = [f for f in settled if f.partition_key in resolved and f not in due]
        due += not_loaded_nor_requested(unclashed, loaded, cursor) if resolved else []
    return _requested(tick, due, position, settled, settling)


def not_loaded_nor_requested(
    files: list[SourceFile], loaded: Mapping[str, str], cursor: SensorCursor
) -> list[SourceFile]:
    """The files whose version is neither the one the load history holds nor one the cursor holds as
    requested: what is due when the load history, not the horizon, is the judge."""
    return [f for f in files if loaded.get(f.partition_key) != f.version and not cursor.holds_request(f)]


def _changed_since(tick: _Tick, source_file: SourceFile) -> bool:
    """A registered file's version is due: stamped after what the cursor knows, and not requested."""
    known_ns = tick.known_after(tick.cursor.horizon_ns)
    return source_file.changed_ns > known_ns and not tick.cursor.holds_request(source_file)


def _registered_only(tick: _Tick, settled: list[SourceFile], settling: list[SourceFile]) -> TickPlan:
    """First enable on a fresh instance, told to leave what is there: it is registered, ready for a
    backfill, and nothing is requested."""
    existing = sorted(settled, key=lambda f: (f.mtime_ns, f.name))
    digest = None if settling else tick.digest
    return TickPlan(
        [],
        [f.partition_key for f in existing],
        settling,
        tick.listing.skipped,
        [],
        tick.next_cursor(tick.horizon_ns, digest, tick.within_lookback(settled), 0),
        registered_only=len(existing),
    )


def _requested(
    tick: _Tick,
    due: list[SourceFile],
    position: dict[str, int],
    settled: list[SourceFile],
    settling: list[SourceFile],
) -> TickPlan:
    """The due files in runs (registered keys in their order, then new ones oldest first), as many as
    the runs-per-tick limit lets through, and the cursor that remembers them."""
    rules = tick.rules
    runs = tick_runs(due, position, rules.max_batch, rules.max_runs, rules.max_batch_bytes)
    requested, waiting = runs.requested, runs.waiting
    if tick.rebuild:
        next_cursor = _rebuilt_cursor(tick, requested, waiting, settled, settling)
    else:
        next_cursor = _advanced_cursor(tick, requested, waiting, position, settling)
    return TickPlan(
        batches=runs.batches,
        new_partition_keys=runs.new_partition_keys,
        settling=settling,
        skipped=tick.listing.skipped,
        waiting=waiting,
        cursor=next_cursor,
        rebuilt=tick.rebuild,
    )


def _rebuilt_cursor(
    tick: _Tick,
    requested: list[SourceFile],
    waiting: list[SourceFile],
    settled: list[SourceFile],
    settling: list[SourceFile],
) -> SensorCursor:
    """A rebuild that could not request everything goes on next tick, remembering what it requested;
    one that did knows, with a lookback, what every file stamped within it holds: loaded, or requested."""
    if waiting:
        already = {**tick.cursor.requested, **{f.partition_key: version_mark(f.version) for f in requested}}
        return SensorCursor(0, None, already, clock_ns=tick.now_ns)
    digest = None if settling else tick.digest
    return tick.next_cursor(tick.horizon_ns, digest, tick.within_lookback(settled), 0)


def _advanced_cursor(
    tick: _Tick,
    requested: list[SourceFile],
    waiting: list[SourceFile],
    position: dict[str, int],
    settling: list[SourceFile],
) -> SensorCursor:
    """The horizon moved up, but not past a changed file left waiting, which is found again only while
    the horizon stays below it; a new one is found again by its key, registered only once requested."""
    cursor, horizon_ns = tick.cursor, tick.horizon_ns
    waiting_changed = [f.changed_ns for f in waiting if f.partition_key in position]
    if waiting_changed:
        horizon_ns = max(cursor.horizon_ns, min(horizon_ns, min(waiting_changed) - 1))
    marks = {**cursor.requested, **{f.partition_key: version_mark(f.version) for f in requested}}
    still_after_ns = tick.known_after(horizon_ns)
    remembered = [
        f
        for f in tick.listing.files
        if f.changed_ns > still_after_ns and marks.get(f.partition_key) == version_mark(f.version)
    ]
    # Files still settling or waiting make the next tick look at the registered keys again.
    digest = None if waiting or settling else tick.digest
    return tick.next_cursor(horizon_ns, digest, remembered, cursor.floor_ns)

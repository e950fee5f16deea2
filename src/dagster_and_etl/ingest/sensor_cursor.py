"""What `dynamic_sensor` keeps between ticks, stored by Dagster as the sensor's cursor (see sensor_plan.py
for how a tick uses it)."""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from dagster_and_etl.ingest.source import SourceFile

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
    # Notification mode: when the sensor last listed the whole prefix, by the host's clock; the next
    # listing, which finds what the queue missed, is due `SOURCE_RECONCILE_MINUTES` later.
    listed_ns: int = 0
    # Notification mode, while a reconciliation listing goes on over several ticks: the object key it has
    # listed up to ("" when it has just begun); None when none goes on.
    reconciling: str | None = None
    # Listing mode: the keys passed over last tick because more than one file gave them. Once one is
    # left, its file may be one never looked at (it was there all along, stamped behind the horizon), so
    # that tick judges every file by the load history, as after a reset.
    clashing: tuple[str, ...] = ()

    @property
    def is_fresh(self) -> bool:
        return self.horizon_ns == 0

    def holds_request(self, source_file: SourceFile) -> bool:
        """Whether this version of the file is among the versions the cursor holds as requested."""
        return self.requested.get(source_file.partition_key) == version_mark(source_file.version)

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
        if self.listed_ns:
            stored["listed_ns"] = self.listed_ns
        if self.reconciling is not None:
            stored["reconciling"] = self.reconciling
        if self.clashing:
            stored["clashing"] = list(self.clashing)
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
            listed_ns, reconciling = stored.get("listed_ns", 0), stored.get("reconciling")
            clashing = stored.get("clashing", [])
        except (ValueError, TypeError, AttributeError):
            return cls()
        if (
            not isinstance(horizon_ns, int)
            or not isinstance(clock_ns, int)
            or not isinstance(floor_ns, int)
            or not isinstance(listed_ns, int)
            or horizon_ns < 0
            or not isinstance(digest, str | None)
            or not isinstance(requested, dict)
            or not all(isinstance(v, str) for v in requested.values())
            or not isinstance(database, str | None)
            or not isinstance(problem, str | None)
            or not isinstance(reconciling, str | None)
            or not isinstance(clashing, list)
            or not all(isinstance(key, str) for key in clashing)
        ):
            return cls()
        return cls(
            horizon_ns,
            digest,
            requested,
            clock_ns,
            floor_ns,
            database,
            problem,
            listed_ns,
            reconciling,
            tuple(clashing),
        )


def version_mark(version: str) -> str:
    """A short mark of a version, as the cursor keeps it: 12 hex digits of its BLAKE2b hash."""
    return hashlib.blake2b(version.encode("utf-8", "surrogateescape"), digest_size=6).hexdigest()


def known_after(horizon_ns: int, floor_ns: int, lookback_ns: int) -> int:
    """The stamp after which a cursor holds the version of every file requested or loaded."""
    return max(horizon_ns - lookback_ns, floor_ns) if lookback_ns else horizon_ns


def remembering(
    remembered: list[SourceFile],
    horizon_ns: int,
    digest: str | None,
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

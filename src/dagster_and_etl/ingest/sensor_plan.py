"""What one tick of the directory sensor should do, decided from plain values.

The cursor holds a single time, the horizon: every file change at or before it has been dealt with. A
tick moves it up to "now less the settle window", so its size never grows with the folder. Files are
then requested when
- their key is not yet a registered partition (new files, whatever their mtime says), or
- they changed after the previous horizon (rewritten or replaced files).
Files that changed after the new horizon are still settling and wait for a later tick. The run key is
the file's version, so a lost or reset cursor asks again only for versions Dagster has already run
under the same key, and Dagster skips them.
"""

import json
from collections.abc import Collection
from dataclasses import dataclass

from dagster_and_etl.ingest.source_folder import FolderListing, SourceFile, UnsafeName

# File timestamps come from a coarse kernel clock and some filesystems keep whole seconds only, so a
# change can carry a time up to a second older than the moment it happened. The horizon stays that far
# behind the clock, and no change can land behind it unseen.
TIMESTAMP_SLACK_NS = 1_000_000_000


@dataclass(frozen=True)
class SensorCursor:
    horizon_ns: int = 0

    def serialize(self) -> str:
        return json.dumps({"horizon_ns": self.horizon_ns})

    @classmethod
    def parse(cls, text: str | None) -> "SensorCursor":
        """The cursor stored by an earlier tick; an empty or unreadable one starts from the beginning."""
        if not text:
            return cls()
        try:
            horizon_ns = json.loads(text)["horizon_ns"]
        except (ValueError, TypeError, KeyError):
            return cls()
        return cls(horizon_ns) if isinstance(horizon_ns, int) and horizon_ns >= 0 else cls()


@dataclass(frozen=True)
class TickPlan:
    to_request: list[SourceFile]  # oldest first
    new_partition_keys: list[str]  # keys of `to_request` not yet registered
    settling: list[SourceFile]
    unsafe_names: list[UnsafeName]
    cursor: SensorCursor

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


def plan_tick(
    listing: FolderListing,
    registered_keys: Collection[str],
    cursor: SensorCursor,
    now_ns: int,
    settle_ns: int,
) -> TickPlan:
    """Which files to request and register, which wait, and the cursor to store."""
    horizon_ns = max(cursor.horizon_ns, now_ns - settle_ns - TIMESTAMP_SLACK_NS)
    to_request: list[SourceFile] = []
    settling: list[SourceFile] = []
    for source_file in listing.files:
        if source_file.changed_ns > horizon_ns:
            settling.append(source_file)
        elif source_file.partition_key not in registered_keys or source_file.changed_ns > cursor.horizon_ns:
            to_request.append(source_file)
    to_request.sort(key=lambda source_file: (source_file.mtime_ns, source_file.name))
    return TickPlan(
        to_request=to_request,
        new_partition_keys=[
            source_file.partition_key
            for source_file in to_request
            if source_file.partition_key not in registered_keys
        ],
        settling=settling,
        unsafe_names=listing.unsafe_names,
        cursor=SensorCursor(horizon_ns),
    )

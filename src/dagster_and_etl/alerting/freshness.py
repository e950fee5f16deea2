"""When the event-driven table is overdue: a file has waited in the source longer than a set time
without its current version being loaded. It has no calendar, so lateness is measured per file."""

from collections.abc import Mapping
from dataclasses import dataclass

from dagster_and_etl.ingest.source import SourceFile, SourceListing


def waiting_files(unloaded: list[SourceFile], now_ns: int, limit_ns: int) -> list[SourceFile]:
    """The files among `unloaded` (see `not_loaded`) written more than `limit_ns` before `now_ns` (by the
    source's clock), oldest first. A file still being written is not late yet: it is measured from its
    last change."""
    late = [f for f in unloaded if f.changed_ns <= now_ns - limit_ns]
    return sorted(late, key=lambda source_file: (source_file.changed_ns, source_file.name))


def not_loaded(listing: SourceListing, loaded_versions: Mapping[str, str]) -> list[SourceFile]:
    """The files whose current version is not the one their partition holds."""
    return [f for f in listing.files if loaded_versions.get(f.partition_key) != f.version]


# The least time between two reports of the backlog (on the files_loaded_in_time check's results, whose
# page plots them): at most one a minute however often the sensor ticks, so the event log grows by at
# most a row a minute.
BACKLOG_REPORT_NS = 60 * 10**9


@dataclass(frozen=True)
class Backlog:
    """How far the event-driven table is behind its source: the files whose current version is not
    loaded, their bytes, and how long the oldest of them has waited."""

    files: int
    bytes: int
    oldest_seconds: int

    @classmethod
    def of(cls, waiting: list[SourceFile], now_ns: int) -> "Backlog":
        """The backlog of the files `not_loaded` found."""
        oldest_ns = min((f.changed_ns for f in waiting), default=now_ns)
        return cls(len(waiting), sum(f.size for f in waiting), max(0, (now_ns - oldest_ns) // 10**9))

    @property
    def figures(self) -> list[int]:
        return [self.files, self.bytes, self.oldest_seconds]


def backlog_report_due(backlog: Backlog, reported: list[int] | None, reported_ns: int, now_ns: int) -> bool:
    """Whether to report the backlog now: its figures differ from those last reported, and a minute has
    passed since (an empty backlog, once reported, is not reported again while it stays empty)."""
    return backlog.figures != reported and now_ns - reported_ns >= BACKLOG_REPORT_NS

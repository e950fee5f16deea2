"""What a load did with each partition it was given, and the file versions it went by."""

from dataclasses import dataclass, field
from pathlib import Path

from dagster_and_etl.ingest.load_errors import FileChangedError
from dagster_and_etl.ingest.source_file_scan import FileVersion, SourceFileError


@dataclass(frozen=True)
class PinnedVersion:
    """The version a complete local copy was made from (an S3 object's ETag and size): it cannot change."""

    token: str
    size: int
    mtime_ns: int


Version = FileVersion | PinnedVersion


@dataclass(frozen=True)
class LoadResult:
    row_count: int  # rows now in the table for the partition
    file_rows: int  # data rows counted in the file, independently of DuckDB
    version: Version  # the version of the file the partition holds
    loaded_by: str | None = None  # for a version loaded before: the run that loaded it


@dataclass
class LoadReport:
    """What a load did with each partition it was given."""

    loaded: dict[str, LoadResult] = field(default_factory=dict)  # loaded now
    unchanged: dict[str, LoadResult] = field(default_factory=dict)  # this version was loaded before
    failed: dict[str, SourceFileError] = field(default_factory=dict)  # bad files, nothing loaded
    # Files that kept changing on every attempt to load them: a later try may find them finished.
    changing: dict[str, FileChangedError] = field(default_factory=dict)
    # Files loaded once and since removed: the partition keeps its rows. The run that loaded them.
    removed: dict[str, str | None] = field(default_factory=dict)
    # Files never loaded that are not there (removed, or not arrived), by location: nothing to load,
    # nothing lost.
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def holding(self) -> dict[str, LoadResult]:
        """Every partition that now holds its file's current version."""
        return {**self.unchanged, **self.loaded}

    @property
    def settled(self) -> set[str]:
        """The partitions this load has nothing more to do for."""
        return self.loaded.keys() | self.failed.keys() | self.missing.keys() | self.changing.keys()

    def name_by_location(self, locations: dict[Path, str]) -> None:
        """Names each file by its location in the source, not the local copy that was read."""
        for errors in (self.failed, self.changing):
            for key, error in errors.items():
                location = locations.get(Path(error.path)) if isinstance(error.path, Path) else None
                if location is not None and location != str(error.path):
                    errors[key] = error.at(location)  # type: ignore[assignment]
        for key, path in self.missing.items():
            self.missing[key] = locations.get(Path(path), path)


def changed_files(versions: dict[Path, Version]) -> list[Path]:
    """The files read in place that are no longer the version they were before the load began."""
    changed = []
    for path, before in versions.items():
        if isinstance(before, PinnedVersion):  # a complete copy of one version: nothing writes to it
            continue
        try:
            if FileVersion.of(path) != before:
                changed.append(path)
        except FileNotFoundError:
            changed.append(path)
    return changed

"""When the event-driven table is overdue: a file has waited in the source longer than a set time
without its current version being loaded. It has no calendar, so lateness is measured per file."""

from collections.abc import Mapping

from dagster_and_etl.ingest.source import SourceFile, SourceListing


def waiting_files(
    listing: SourceListing, loaded_versions: Mapping[str, str], now_ns: int, limit_ns: int
) -> list[SourceFile]:
    """The files whose current version is not loaded although it was written more than `limit_ns`
    before `now_ns` (by the source's clock), oldest first. A file still being written is not late yet:
    it is measured from its last change."""
    late = [
        source_file
        for source_file in listing.files
        if source_file.changed_ns <= now_ns - limit_ns
        and loaded_versions.get(source_file.partition_key) != source_file.version
    ]
    return sorted(late, key=lambda source_file: (source_file.changed_ns, source_file.name))

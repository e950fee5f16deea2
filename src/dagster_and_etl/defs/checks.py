"""When each table is fresh, as asset checks the UI shows on the table's page.

- The daily table: yesterday's partition must be loaded by 07:30 UTC. The file lands at 05:00, the run
  starts at 05:15 and retries for about two hours; 07:30 leaves a margin after the last retry. Dagster's
  time-partition freshness check knows which partition is due when; `freshness_checks_sensor` (in
  sensors.py) runs it at each deadline, and again after the table is loaded while it is failing.
- The event-driven table has no calendar: it is overdue when a file has waited in the source more than
  FILE_OVERDUE_MINUTES (60) without its current version being loaded. `alert_sensor` evaluates this on
  each tick and reports the result; it may also be run by hand from the table's page.
"""

import hashlib
import warnings
from dataclasses import dataclass

import dagster as dg

from dagster_and_etl.alerting.freshness import Backlog, not_loaded, waiting_files
from dagster_and_etl.alerting.records import WaitingFile
from dagster_and_etl.defs import assets
from dagster_and_etl.defs.resources import FileFreshness, SourceFiles, StagingDatabase
from dagster_and_etl.ingest.duckdb_tables import DatabaseBusy, RawTable
from dagster_and_etl.ingest.sensor_cursor import version_mark
from dagster_and_etl.ingest.source import SourceUnavailable

DAILY_DEADLINE_CRON = "30 7 * * *"

# Dagster 1.13 marks this factory as superseded by `FreshnessPolicy`, whose policies are asset-level and
# in preview; it is kept because it knows partitions: it names the day that is late. Its warning is not
# shown on every load of the code location.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    daily_freshness_checks = dg.build_time_partition_freshness_checks(
        assets=[assets.duckdb_partition_table], deadline_cron=DAILY_DEADLINE_CRON, timezone="UTC"
    )

WAITING_FILES_CHECK = "files_loaded_in_time"
# How many waiting files a result lists by name.
FILES_LISTED = 20
WAITING_FILES_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("partition", "string"),
        dg.TableColumn("file", "string"),
        dg.TableColumn("waiting_minutes", "int"),
    ]
)


@dataclass(frozen=True)
class WaitingFiles:
    """The files of the event-driven source that waited too long, oldest first."""

    files: list[WaitingFile]
    limit_minutes: int
    backlog: Backlog  # every file not loaded at its current version, however long it has waited

    @property
    def passed(self) -> bool:
        return not self.files

    @property
    def signature(self) -> str:
        """Changes when the result does: passing, or which file versions wait."""
        marks = ",".join(sorted(file.mark for file in self.files))
        return "passed" if self.passed else hashlib.blake2b(marks.encode(), digest_size=8).hexdigest()

    @property
    def description(self) -> str:
        if self.passed:
            return f"No file has waited more than {self.limit_minutes} min without being loaded."
        oldest = self.files[0]
        return (
            f"{len(self.files)} file(s) waited more than {self.limit_minutes} min without being loaded;"
            f" the oldest, {oldest.location}, {oldest.waiting_minutes} min."
        )

    @property
    def metadata(self) -> dict[str, object]:
        return {
            "waiting_files": len(self.files),
            "limit_minutes": self.limit_minutes,
            "oldest_waiting_minutes": self.files[0].waiting_minutes if self.files else 0,
            # The whole backlog, late or not, which the check's page plots over time.
            "backlog_files": dg.MetadataValue.int(self.backlog.files),
            "backlog_bytes": dg.MetadataValue.int(self.backlog.bytes),
            "backlog_oldest_seconds": dg.MetadataValue.int(self.backlog.oldest_seconds),
            "files": dg.MetadataValue.table(
                records=[
                    dg.TableRecord(
                        {"partition": f.partition, "file": f.location, "waiting_minutes": f.waiting_minutes}
                    )
                    for f in self.files[:FILES_LISTED]
                ],
                schema=WAITING_FILES_SCHEMA,
            ),
        }

    def evaluation(self) -> dg.AssetCheckEvaluation:
        """The result as the sensor reports it, without a run."""
        return dg.AssetCheckEvaluation(
            asset_key=assets.duckdb_dynamic_partition_table.key,
            check_name=WAITING_FILES_CHECK,
            passed=self.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=self.description,
            metadata=self.metadata,
        )


def find_waiting_files(
    source_files: SourceFiles, database: StagingDatabase, freshness: FileFreshness
) -> WaitingFiles:
    """Lists the source and reads what is loaded; `SourceUnavailable` or `DatabaseBusy` when either
    cannot be read now."""
    source = source_files.source
    listing = source.list()
    loaded = database.loaded_versions(RawTable.DYNAMIC)
    limit = freshness.overdue_after_minutes
    unloaded = not_loaded(listing, loaded)  # read once, for the late files and the backlog
    late = waiting_files(unloaded, listing.now_ns, limit * 60 * 10**9)
    return WaitingFiles(
        [
            WaitingFile(
                partition=f.partition_key,
                location=source.location(f.name),
                waiting_minutes=int((listing.now_ns - f.changed_ns) // (60 * 10**9)),
                mark=version_mark(f.version),
                changed_ns=f.changed_ns,
            )
            for f in late
        ],
        limit,
        Backlog.of(unloaded, listing.now_ns),
    )


@dg.asset_check(
    asset=assets.duckdb_dynamic_partition_table,
    name=WAITING_FILES_CHECK,
    description="Fails while a file has waited in the source more than FILE_OVERDUE_MINUTES (60) without"
    " its current version being loaded. Evaluated by alert_sensor on each tick.",
)
def files_loaded_in_time(
    source_files: SourceFiles, database: StagingDatabase, freshness: FileFreshness
) -> dg.AssetCheckResult:
    try:
        waiting = find_waiting_files(source_files, database, freshness)
    except (SourceUnavailable, DatabaseBusy) as error:
        raise dg.Failure(description=str(error), allow_retries=True) from None
    return dg.AssetCheckResult(
        passed=waiting.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=waiting.description,
        metadata=waiting.metadata,
    )

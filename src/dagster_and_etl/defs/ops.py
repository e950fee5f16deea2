"""The op of `archive_job`: moving the files loaded long enough ago out of the landing zone."""

import dagster as dg

from dagster_and_etl.defs.assets import DUCKDB_WRITE_POOL
from dagster_and_etl.defs.resources import SourceFiles, StagingDatabase
from dagster_and_etl.ingest.archive import archive_loaded


@dg.op(
    # It reads the load history and records each move in the same DuckDB file the loads write.
    pool=DUCKDB_WRITE_POOL,
    out=dg.Out(int, description="How many files were moved"),
    description=(
        "Moves each file of SOURCE_DIR whose current version was loaded SOURCE_ARCHIVE_AFTER_HOURS ago or"
        " more to <SOURCE_ARCHIVE>/<today>/, and records where it went in archived_files."
    ),
)
def archive_loaded_files(
    context: dg.OpExecutionContext, source_files: SourceFiles, database: StagingDatabase
) -> dg.Output[int]:
    archive = source_files.archive_root
    if archive is None:
        context.log.info("SOURCE_ARCHIVE is not set: nothing is moved.")
        return dg.Output(0, metadata={"moved": 0})
    report = archive_loaded(
        source_files.source, archive, database.get_connection, source_files.archive_after_ns
    )
    for reason in report.not_moved:
        context.log.warning(f"Not archived: {reason}.")
    return dg.Output(
        len(report.moved),
        metadata={
            "moved": len(report.moved),
            "moved_bytes": sum(f.size for f in report.moved),
            "not_moved": len(report.not_moved),
            "archive": archive,
        },
    )

"""Two pipelines of the same shape: a source file asset, then the DuckDB table it is loaded into.

The daily pair runs on a schedule, one partition per calendar day; the dynamic pair runs when the sensor
finds a file, one partition per file. The table asset reads the file itself, from its partition key, so
nothing passes between the two through an IO manager.
"""

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from dagster_and_etl.defs.partitions import daily_partitions_def, dynamic_partitions_def
from dagster_and_etl.defs.resources import SourceFiles, StagingDatabase
from dagster_and_etl.ingest.duckdb_load import load_partitions
from dagster_and_etl.ingest.partition_keys import file_name_for_key
from dagster_and_etl.ingest.source import FileInfo, NoFile, Source, SourceUnavailable, settle_horizon
from dagster_and_etl.ingest.source_file_scan import SourceFileError, count_data_rows
from dagster_and_etl.ingest.source_folder import FolderSource
from dagster_and_etl.ingest.table_summary import table_facts
from dagster_and_etl.reporting.loads import (
    DAILY,
    EVENT_DRIVEN,
    LoadOutcome,
    Pipeline,
    check_results,
    failed_partition_observations,
    load_failure,
    materializations,
    missing_files,
)
from dagster_and_etl.reporting.source_files import DescribedFile, files_metadata
from dagster_and_etl.settings import SENSOR_MAX_BATCH
from dagster_and_etl.tags import PARENT_RUN_ID_TAG

# DuckDB lets one process write to a database file at a time: the loads queue for this pool, whose
# limit of 1 is set in the instance's dagster.yaml.
DUCKDB_WRITE_POOL = "duckdb_write"
# Who answers for these assets, as the UI shows it on each asset.
OWNERS = ["team:data-engineering"]
# A backfill of dynamic partitions from the UI ("Materialize all") runs in batches the size of the
# sensor's: one transaction per batch, so a cancel or a crash costs one batch, the UI shows progress, and
# other loads get the database between batches. Read when the code location loads.
DYNAMIC_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=SENSOR_MAX_BATCH.read())


def _source_unavailable(error: SourceUnavailable) -> dg.Failure:
    """The source cannot be reached at all (a bucket missing, credentials refused, an endpoint down):
    the run fails, to be retried, and nothing loaded is touched."""
    return dg.Failure(description=str(error), allow_retries=True)


def _file_infos(source: Source, partition_keys: list[str]) -> dict[str, FileInfo | NoFile]:
    try:
        return source.info(partition_keys)
    except SourceUnavailable as error:
        raise _source_unavailable(error) from None


def _arrived_files(
    source: Source, settle_ns: int, partition_keys: list[str], re_executed: bool
) -> dict[str, FileInfo | NoFile]:
    """The daily files, asked of the source at once, failing retryably while one has not arrived or is
    still being written. In a re-execution a file not there is left to the load, which knows whether
    it was loaded and has since been moved away (archived), or never arrived."""
    found = _file_infos(source, partition_keys)
    arrived: dict[str, FileInfo | NoFile] = {}
    for key in partition_keys:
        info = found[key]
        location = info.location if isinstance(info, FileInfo) else source.expected_location(key)
        if isinstance(info, NoFile) and info.missing and re_executed:
            arrived[key] = info
            continue
        if isinstance(info, NoFile) and info.missing:
            raise dg.Failure(
                description=f"{file_name_for_key(key)} has not arrived in {source}.",
                metadata={"path": dg.MetadataValue.path(location)},
            )
        if isinstance(info, NoFile):
            raise dg.Failure(
                description=f"{location} cannot be loaded: it is {info.problem}.",
                metadata={"path": dg.MetadataValue.path(location)},
                allow_retries=False,
            )
        if settle_ns and info.changed_ns > settle_horizon(info.now_ns, settle_ns, source.slack_ns):
            raise dg.Failure(
                description=f"{location} is still being written: it changed less than"
                f" {settle_ns / 1e9:g} s ago (SENSOR_SETTLE_SECONDS). It is loaded once it has settled.",
                metadata={"path": dg.MetadataValue.path(location)},
            )
        arrived[key] = info
    return arrived


def _described(source: Source, key: str, info: FileInfo | NoFile) -> DescribedFile:
    """A partition's file, its data rows counted when it is local; a file in S3 is counted when loaded."""
    if isinstance(info, NoFile):
        return DescribedFile(key, source.expected_location(key), note=info.problem)
    described = DescribedFile(key, info.location, info.size, info.mtime_ns)
    if not isinstance(source, FolderSource):
        return dataclasses.replace(described, note="counted when loaded")
    try:
        return dataclasses.replace(described, data_rows=count_data_rows(Path(info.location)))
    except SourceFileError as error:
        return dataclasses.replace(described, note=f"bad file: {error.problem}")
    except FileNotFoundError:
        return dataclasses.replace(described, note="missing")
    except OSError as error:  # listed but not readable: its load fails it, by itself
        return dataclasses.replace(described, note=f"cannot be read: {error.strerror}")


def _describe_source_files(
    source_files: SourceFiles, partition_keys: list[str], pipeline: Pipeline, re_executed: bool
) -> dg.MaterializeResult:
    """What landed for each partition. A file's contents are judged when it is loaded into its table,
    where each partition succeeds or fails by itself; an awaited file (a day's) fails the run, to be
    retried, while it has not arrived or is still being written."""
    source = source_files.source
    keys = [source_files.checked_key(key) for key in partition_keys]
    found: dict[str, FileInfo | NoFile] = (
        _arrived_files(source, source_files.settle_ns, keys, re_executed)
        if pipeline.awaits_files
        else _file_infos(source, keys)
    )
    return dg.MaterializeResult(
        metadata=files_metadata([_described(source, key, found[key]) for key in keys])
    )


def _load_checks(asset_name: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "share_price_is_positive", asset=asset_name, description="Every loaded share_price is > 0."
        ),
        dg.AssetCheckSpec(
            "row_count_matches_file",
            asset=asset_name,
            description="Each partition loaded holds as many rows as its file has data rows.",
        ),
    ]


def _is_re_execution(context: dg.AssetExecutionContext) -> bool:
    return bool(context.run.parent_run_id or context.run.tags.get(PARENT_RUN_ID_TAG))


def _load(
    context: dg.AssetExecutionContext,
    source_files: SourceFiles,
    database: StagingDatabase,
    pipeline: Pipeline,
    keys: list[str],
) -> LoadOutcome:
    """Loads the partitions' files into the pipeline's table, and reads what the report tells of it."""
    source, run_id = source_files.source, context.run.run_id
    if pipeline.awaits_files:
        _arrived_files(source, source_files.settle_ns, keys, _is_re_execution(context))
    try:
        # Fetched before the database is opened: other loads wait for it only while this one writes.
        with source.local_copies(keys) as copies, database.get_connection() as conn:
            report = load_partitions(conn, pipeline.table, copies, run_id)
            facts = table_facts(conn, pipeline.table, list(report.holding))
    except SourceUnavailable as error:
        raise _source_unavailable(error) from None
    locations = {key: copy.location for key, copy in copies.items()}
    return LoadOutcome(
        report, locations, f"{database.path.stem}.main.{pipeline.table.value}", facts, len(keys)
    )


def _load_partitions(
    context: dg.AssetExecutionContext,
    source_files: SourceFiles,
    database: StagingDatabase,
    pipeline: Pipeline,
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckResult]:
    """Each partition reported by itself: a materialization for each that holds its file's current
    version, then the checks, then a failure naming the bad files, whose partitions keep their rows."""
    keys = [source_files.checked_key(key) for key in context.partition_keys]
    outcome = _load(context, source_files, database, pipeline, keys)
    yield from materializations(context.asset_key, outcome)
    for warning in missing_files(outcome, pipeline, str(source_files.source), _is_re_execution(context)):
        context.log.warning(warning)  # taken away on purpose, as a bad file may be, before the re-execution
    yield from check_results(outcome)
    yield from failed_partition_observations(context.asset_key, outcome)
    if (failure := load_failure(outcome)) is not None:
        raise failure


@dg.asset(
    partitions_def=daily_partitions_def,
    group_name="scheduled_etl",
    kinds={"csv"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=OWNERS,
)
def import_partition_file(
    context: dg.AssetExecutionContext, source_files: SourceFiles
) -> dg.MaterializeResult:
    """The day's source file, `<SOURCE_DIR>/<date>.csv`, once it has arrived and stopped changing."""
    return _describe_source_files(source_files, context.partition_keys, DAILY, _is_re_execution(context))


@dg.asset(
    partitions_def=daily_partitions_def,
    deps=[import_partition_file],
    group_name="scheduled_etl",
    kinds={"duckdb"},
    pool=DUCKDB_WRITE_POOL,
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=OWNERS,
    check_specs=_load_checks("duckdb_partition_table"),
    output_required=False,  # each partition is reported by its own materialization
)
def duckdb_partition_table(
    context: dg.AssetExecutionContext, source_files: SourceFiles, database: StagingDatabase
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckResult]:
    """Table `raw_partition_data`: each day's file, its rows replaced when a new version of it is loaded."""
    yield from _load_partitions(context, source_files, database, DAILY)


@dg.asset(
    partitions_def=dynamic_partitions_def,
    group_name="event_driven_etl",
    kinds={"csv"},
    backfill_policy=DYNAMIC_BACKFILL_POLICY,
    owners=OWNERS,
)
def import_dynamic_partition_file(
    context: dg.AssetExecutionContext, source_files: SourceFiles
) -> dg.MaterializeResult:
    """A file that landed in the source folder, `<SOURCE_DIR>/<key>.csv`."""
    return _describe_source_files(
        source_files, context.partition_keys, EVENT_DRIVEN, _is_re_execution(context)
    )


@dg.asset(
    partitions_def=dynamic_partitions_def,
    deps=[import_dynamic_partition_file],
    group_name="event_driven_etl",
    kinds={"duckdb"},
    pool=DUCKDB_WRITE_POOL,
    backfill_policy=DYNAMIC_BACKFILL_POLICY,
    owners=OWNERS,
    check_specs=_load_checks("duckdb_dynamic_partition_table"),
    output_required=False,  # each partition is reported by its own materialization
)
def duckdb_dynamic_partition_table(
    context: dg.AssetExecutionContext, source_files: SourceFiles, database: StagingDatabase
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckResult]:
    """Table `raw_dynamic_partition_data`: each file's rows, replaced when the file changes."""
    yield from _load_partitions(context, source_files, database, EVENT_DRIVEN)

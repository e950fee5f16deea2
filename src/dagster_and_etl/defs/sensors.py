import dagster as dg

from dagster_and_etl.defs import jobs
from dagster_and_etl.defs.partitions import dynamic_partitions_def
from dagster_and_etl.defs.resources import DatabaseBusy, SourceFolder, StagingDatabase
from dagster_and_etl.ingest.duckdb_load import RawTable, loaded_versions
from dagster_and_etl.ingest.sensor_plan import RunBatch, SensorCursor, plan_tick
from dagster_and_etl.ingest.source import SourceUnavailable

# The tags the daemon puts on the runs a sensor launches.
RUN_KEY_TAG, SENSOR_NAME_TAG = "dagster/run_key", "dagster/sensor_name"
ENDED_UNLOADED = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def _run_request(batch: RunBatch, run_key: str) -> dg.RunRequest:
    if batch.first_key == batch.last_key:
        return dg.RunRequest(run_key=run_key, partition_key=batch.first_key)
    return dg.RunRequest(
        run_key=run_key,
        tags={
            "dagster/asset_partition_range_start": batch.first_key,
            "dagster/asset_partition_range_end": batch.last_key,
        },
    )


def _run_key_to_retry(instance: dg.DagsterInstance, sensor_name: str, run_key: str) -> str:
    """For a rebuild: the batch's run key, or, when a run under that key failed or was cancelled, a new
    one (`<run key>~2`, `~3`, ...), as the daemon never starts a run key twice."""
    candidate, attempt = run_key, 1
    while True:
        runs = instance.get_runs(
            dg.RunsFilter(tags={RUN_KEY_TAG: candidate, SENSOR_NAME_TAG: sensor_name}), limit=1
        )
        if not runs or runs[0].status not in ENDED_UNLOADED:
            return candidate
        attempt += 1
        candidate = f"{run_key}~{attempt}"


def _loaded_versions(duckdb: StagingDatabase) -> dict[str, str]:
    """The file version each dynamic partition holds, from the load history; `DatabaseBusy` if a load
    holds the database."""
    with duckdb.read_now() as conn:
        if conn is None:
            return {}
        return {key: version for key, (version, _) in loaded_versions(conn, RawTable.DYNAMIC).items()}


@dg.sensor(
    target=jobs.import_dynamic_partition_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Watches SOURCE_DIR (a folder or an S3 prefix) for new or modified CSV files, registers each new"
        " one as a dynamic partition and requests runs that load them in batches, each file version once."
    ),
)
def dynamic_sensor(
    context: dg.SensorEvaluationContext, source_folder: SourceFolder, duckdb: StagingDatabase
) -> dg.SensorResult:
    source = source_folder.source
    try:
        listing = source.list()
    except SourceUnavailable as unavailable:
        # The tick fails with the cause, shown on the sensor's page; the next tick tries again.
        raise dg.Failure(str(unavailable)) from None
    cursor = SensorCursor.parse(context.cursor)
    try:
        plan = plan_tick(
            listing,
            registered_keys=lambda: context.instance.get_dynamic_partitions(dynamic_partitions_def.name),
            cursor=cursor,
            now_ns=listing.now_ns,
            settle_ns=source_folder.settle_ns,
            max_batch=source_folder.batch_size,
            max_runs=source_folder.runs_per_tick,
            loaded_versions=lambda: _loaded_versions(duckdb),
            include_existing=source_folder.include_existing,
            lookback_ns=source.lookback_ns,
        )
    except DatabaseBusy as busy:
        # Without a cursor, what is loaded is read from the load history; guessing could load twice.
        return dg.SensorResult(
            skip_reason=f"No cursor: waiting to read the load history. {busy} Trying again next tick.",
            cursor=context.cursor,
        )
    for unsafe in plan.unsafe_names:
        context.log.warning(f"Skipped {unsafe.name!r} in {source}: {unsafe.problem}.")
    if plan.rebuilt:
        context.log.info(f"No cursor: {len(plan.to_request)} file(s) not loaded at their current version.")
    if plan.waiting:
        context.log.info(f"{len(plan.waiting)} file(s) wait for the next tick: runs-per-tick limit reached.")
    registrations = (
        [dynamic_partitions_def.build_add_request(plan.new_partition_keys)] if plan.new_partition_keys else []
    )
    if not plan.batches:
        return dg.SensorResult(
            skip_reason=plan.skip_reason(str(source)),
            dynamic_partitions_requests=registrations,
            cursor=plan.cursor.serialize(),
        )
    run_keys = [batch.run_key for batch in plan.batches]
    if plan.rebuilt:
        # Files of a run that failed or was cancelled are not loaded, and are due again.
        run_keys = [_run_key_to_retry(context.instance, "dynamic_sensor", key) for key in run_keys]
    return dg.SensorResult(
        run_requests=[_run_request(batch, key) for batch, key in zip(plan.batches, run_keys, strict=True)],
        dynamic_partitions_requests=registrations,
        cursor=plan.cursor.serialize(),
    )

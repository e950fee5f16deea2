"""The sensors: `dynamic_sensor`, which loads files as they land, and the two that watch the pipelines,
`freshness_checks_sensor` and `alert_sensor`.

Reading `dynamic_sensor` in the lesson's four steps (docs/from-the-lesson.md maps each line):

1. **A sensor for the job.** `@dg.sensor(target=jobs.import_dynamic_partition_job)`, as in the lesson,
   stopped until someone turns it on, ticking every 10 seconds (`SENSOR_INTERVAL_SECONDS`). It takes the
   resources `source_files` (where files land: `SOURCE_DIR`, a folder or an S3 prefix), `database` (the
   DuckDB file the loads write) and `sensor_tuning` (batch size, runs per tick, the first tick's policy).
2. **What was already processed.** `SensorCursor.parse(context.cursor)` (ingest/sensor_cursor.py). The
   lesson keeps every file name in the cursor; here it is a horizon, the time up to which every change
   was requested, so it stays small however many files there are. Which files are known is read from the
   partitions registered in the instance, and only on a tick where something in the folder changed.
3. **What is new.** `source.list()` lists the folder or prefix once (ingest/source_folder.py,
   ingest/source_bucket.py); `plan_tick` decides, without touching Dagster, which files are new or
   changed since the cursor, which are still being written and wait, and how they are grouped into runs
   of up to `SENSOR_MAX_BATCH` files.
4. **Run the job for them.** The `SensorResult` carries one `RunRequest` per batch (a partition key, or a
   range of keys), a run key made from the files' versions so the same version is never loaded twice,
   the request that registers the new partition keys, and the new cursor; or, with nothing to do, a skip
   reason saying why.

The daemon applies all of it after the tick: it adds the partitions, launches each new run key once and
stores the cursor. `dagster_and_etl.testing.SensorDaemon` does the same in a test.
"""

import dataclasses
import warnings

import dagster as dg

from dagster_and_etl.alerting.events import (
    FRESH,
    latest_run_failure_id,
    overdue_partition,
    retries_given_up,
    run_failures_after,
)
from dagster_and_etl.alerting.messages import (
    overdue_partition_alert,
    run_failure_alert,
    waiting_files_alert,
)
from dagster_and_etl.alerting.outbox import (
    MAX_PENDING,
    MAX_RETRYING,
    AlertCursor,
    deliver,
)
from dagster_and_etl.alerting.records import Alert, OverduePartition
from dagster_and_etl.alerting.webhook import post_alert, webhook_name, webhook_problem
from dagster_and_etl.defs import assets, checks, jobs
from dagster_and_etl.defs.partitions import daily_partitions_def, dynamic_partitions_def
from dagster_and_etl.defs.resources import (
    AlertWebhook,
    DatabaseBusy,
    FileFreshness,
    SensorTuning,
    SourceFiles,
    StagingDatabase,
)
from dagster_and_etl.ingest.duckdb_tables import RawTable
from dagster_and_etl.ingest.lost_loads import (
    database_stamp,
    latest_recorded_load,
    lost_load_problem,
    runs_in_flight,
)
from dagster_and_etl.ingest.sensor_cursor import SensorCursor
from dagster_and_etl.ingest.sensor_plan import RunBatch, plan_tick
from dagster_and_etl.ingest.source import SourceUnavailable
from dagster_and_etl.settings import ALERT_INTERVAL_SECONDS, SENSOR_INTERVAL_SECONDS
from dagster_and_etl.tags import RANGE_END_TAG, RANGE_START_TAG, RUN_KEY_TAG, SENSOR_NAME_TAG

# The tags the daemon puts on the runs a sensor launches.


def _run_request(batch: RunBatch, run_key: str) -> dg.RunRequest:
    if batch.first_key == batch.last_key:
        return dg.RunRequest(run_key=run_key, partition_key=batch.first_key)
    return dg.RunRequest(
        run_key=run_key,
        tags={
            RANGE_START_TAG: batch.first_key,
            RANGE_END_TAG: batch.last_key,
        },
    )


def _run_key_to_retry(instance: dg.DagsterInstance, sensor_name: str, run_key: str) -> str:
    """For a rebuild: the batch's run key, or a new one (`<run key>~2`, `~3`, ...) when a run under that
    key has ended, as the daemon never starts a run key twice.

    A rebuild requests only files whose current version the load history does not hold, so a run that
    ended under the same key did not leave them loaded: it failed, was cancelled, or loaded into a
    database since lost, emptied or restored from an older backup. A run still queued or under way keeps
    its key, and the daemon does not start it twice."""
    candidate, attempt = run_key, 1
    while True:
        runs = instance.get_runs(
            dg.RunsFilter(tags={RUN_KEY_TAG: candidate, SENSOR_NAME_TAG: sensor_name}), limit=1
        )
        if not runs or not runs[0].is_finished:
            return candidate
        attempt += 1
        candidate = f"{run_key}~{attempt}"


def _database_check(
    context: dg.SensorEvaluationContext, database: StagingDatabase, cursor: SensorCursor, rebuilt: bool
) -> tuple[str | None, str | None]:
    """The database's stamp and, once found, why it does not hold what Dagster recorded as loaded,
    to keep in the cursor. Looked at only when the file changed and no run of this sensor still loads;
    a rebuild has just read the load history itself, so the next tick looks afresh."""
    if rebuilt:
        return None, None
    stamp = database_stamp(database.path)
    if cursor.database_problem is not None or stamp == cursor.database:
        return cursor.database, cursor.database_problem
    if runs_in_flight(context.instance, "dynamic_sensor"):
        return cursor.database, None
    recorded = latest_recorded_load(context.instance, assets.duckdb_dynamic_partition_table.key)
    if recorded is None:  # nothing loaded yet: nothing the database could lack
        return None, None
    try:
        loaded = database.loaded_versions(RawTable.DYNAMIC, [recorded.partition_key])
    except DatabaseBusy:
        return cursor.database, None
    return stamp, lost_load_problem(recorded, loaded, database.path)


@dg.sensor(
    target=jobs.import_dynamic_partition_job,
    # How often the daemon ticks a sensor is part of its definition, so these two are read when the code
    # location loads, not at each tick like the other settings.
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS.read(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Watches SOURCE_DIR (a folder or an S3 prefix) for new or modified CSV files, registers each new"
        " one as a dynamic partition and requests runs that load them in batches, each file version once."
    ),
)
def dynamic_sensor(
    context: dg.SensorEvaluationContext,
    source_files: SourceFiles,
    database: StagingDatabase,
    sensor_tuning: SensorTuning,
) -> dg.SensorResult:
    source = source_files.source
    try:
        listing = source.list()
    except SourceUnavailable as unavailable:
        # The tick fails with the cause, shown on the sensor's page; the next tick tries again.
        raise dg.Failure(str(unavailable)) from None
    cursor = SensorCursor.parse(context.cursor)
    try:
        plan = plan_tick(
            listing,
            cursor,
            sensor_tuning.rules(source_files),
            registered_keys=lambda: context.instance.get_dynamic_partitions(dynamic_partitions_def.name),
            loaded_versions=lambda: database.loaded_versions(RawTable.DYNAMIC),
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
    stamp, problem = _database_check(context, database, cursor, plan.rebuilt)
    next_cursor = dataclasses.replace(plan.cursor, database=stamp, database_problem=problem).serialize()
    if problem is not None:
        context.log.warning(problem + ".")
    registrations = (
        [dynamic_partitions_def.build_add_request(plan.new_partition_keys)] if plan.new_partition_keys else []
    )
    if not plan.batches:
        reason = plan.skip_reason(str(source))
        return dg.SensorResult(
            skip_reason=reason if problem is None else f"{problem}. {reason}",
            dynamic_partitions_requests=registrations,
            cursor=next_cursor,
        )
    run_keys = [batch.run_key for batch in plan.batches]
    if plan.rebuilt:
        # Files of a run that ended without leaving them in the load history are due again.
        run_keys = [_run_key_to_retry(context.instance, "dynamic_sensor", key) for key in run_keys]
    return dg.SensorResult(
        run_requests=[_run_request(batch, key) for batch, key in zip(plan.batches, run_keys, strict=True)],
        dynamic_partitions_requests=registrations,
        cursor=next_cursor,
    )


# Runs the daily table's freshness check at each deadline (07:30 UTC); while it fails, again only once
# the table has been loaded since, which turns it green when the late day is in.
with warnings.catch_warnings():  # superseded, as the checks it runs are (see checks.py)
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    freshness_checks_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=checks.daily_freshness_checks,
        name="freshness_checks_sensor",
        default_status=dg.DefaultSensorStatus.STOPPED,
    )

DAILY_FRESHNESS_CHECKS = [spec.key for spec in checks.daily_freshness_checks[0].check_specs]


def _waiting_files_alerts(
    cursor: AlertCursor,
    source_files: SourceFiles,
    database: StagingDatabase,
    freshness: FileFreshness,
    ui_url: str,
) -> tuple[list[Alert], list[dg.AssetCheckEvaluation], str]:
    """Evaluates the event-driven table's freshness: the result to report when it changed, and an alert
    for the file versions newly found waiting too long."""
    try:
        waiting = checks.find_waiting_files(source_files, database, freshness)
    except (SourceUnavailable, DatabaseBusy) as error:
        return [], [], f"Waiting files not checked this tick: {error}"
    reports = []
    if waiting.signature != cursor.waiting_reported:
        reports.append(waiting.evaluation())
        cursor.waiting_reported = waiting.signature
    new = cursor.newly_waiting(waiting.files)
    table = assets.duckdb_dynamic_partition_table.key.to_user_string()
    alerts = [waiting_files_alert(table, new, waiting.limit_minutes, ui_url)] if new else []
    return alerts, reports, waiting.description


def _overdue_partition_alerts(
    context: dg.SensorEvaluationContext, cursor: AlertCursor, source_files: SourceFiles, ui_url: str
) -> list[Alert]:
    """An alert for each freshness check whose latest result found a partition overdue not yet announced."""
    alerts = []
    for check_key in DAILY_FRESHNESS_CHECKS:
        name = check_key.to_user_string()
        overdue = overdue_partition(
            context.instance, check_key, daily_partitions_def, source_files.source.location
        )
        if overdue == FRESH:
            cursor.overdue_partitions.pop(name, None)
        elif (
            isinstance(overdue, OverduePartition) and cursor.overdue_partitions.get(name) != overdue.partition
        ):
            cursor.overdue_partitions[name] = overdue.partition
            alerts.append(overdue_partition_alert(overdue, ui_url))
    return alerts


@dg.sensor(
    minimum_interval_seconds=ALERT_INTERVAL_SECONDS.read(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Posts an alert to ALERT_WEBHOOK_URL when a run fails for good (a bad file held back, a daily file"
        " that never came), when the daily table is overdue, or when a file has waited in the source"
        " longer than FILE_OVERDUE_MINUTES; each once, kept and sent again while the webhook is down."
        " Also evaluates the event-driven table's files_loaded_in_time check on every tick."
    ),
)
def alert_sensor(
    context: dg.SensorEvaluationContext,
    alerts: AlertWebhook,
    source_files: SourceFiles,
    database: StagingDatabase,
    freshness: FileFreshness,
) -> dg.SensorResult:
    url = alerts.webhook_url
    if url is not None and (problem := webhook_problem(url)) is not None:
        # The tick fails, and the cursor stays, until the setting is mended: nothing is lost meanwhile.
        raise dg.Failure(f"ALERT_WEBHOOK_URL cannot be used: {problem}.")
    cursor = AlertCursor.parse(context.cursor)
    ui_url = alerts.dagster_ui_url

    found, reports, waiting_note = _waiting_files_alerts(cursor, source_files, database, freshness, ui_url)
    if cursor.failures_after is None:  # the first tick: failures from now on
        cursor.failures_after = latest_run_failure_id(context.instance)
    else:
        given_up, still_retrying = retries_given_up(context.instance, cursor.retrying)
        failures, cursor.failures_after, retrying = run_failures_after(
            context.instance, cursor.failures_after
        )
        cursor.retrying = [*still_retrying, *retrying][-MAX_RETRYING:]
        found += [run_failure_alert(failure, ui_url) for failure in [*given_up, *failures]]
    found += _overdue_partition_alerts(context, cursor, source_files, ui_url)

    if url is None:
        # Off: what happens now is not sent later either, when alerts are turned on.
        unsent = len(found) + len(cursor.pending)
        cursor.pending.clear()
        off = "Alerts are off: ALERT_WEBHOOK_URL is not set"
        return dg.SensorResult(
            skip_reason=f"{off}{f' ({unsent} not sent)' if unsent else ''}. {waiting_note}",
            cursor=cursor.serialize(),
            asset_events=reports,
        )

    webhook, timeout = webhook_name(url), alerts.timeout
    said = []
    dropped = cursor.queue(found)
    if dropped:
        said.append(
            f"{dropped} alert(s) dropped, the oldest: more than {MAX_PENDING} waited for the webhook."
        )
        context.log.warning(said[-1])
    delivery = deliver(cursor, lambda text: post_alert(url, text, timeout))
    if delivery.sent:
        said.append(f"{len(delivery.sent)} alert(s) sent to {webhook}.")
        context.log.info(said[-1])
    if delivery.problem is not None:
        said.append(
            f"The webhook at {webhook} {delivery.problem}: {len(cursor.pending)} alert(s) kept, to be sent"
            " on a later tick."
        )
        context.log.warning(said[-1])
    if cursor.pending and delivery.problem is None:
        said.append(f"{len(cursor.pending)} alert(s) left for the next tick, which sends on.")
    if not said:
        said.append("Nothing to report.")
    return dg.SensorResult(
        skip_reason=" ".join([*said, waiting_note]), cursor=cursor.serialize(), asset_events=reports
    )

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
   of up to `SENSOR_MAX_BATCH` files. With `SOURCE_QUEUE_URL` set (notification mode), a tick reads the
   bucket's event notifications from that queue instead of listing the prefix, and lists it only on
   its first tick and every `SOURCE_RECONCILE_MINUTES` (ingest/source_tick.py).
4. **Run the job for them.** The `SensorResult` carries one `RunRequest` per batch (a partition key, or a
   range of keys), a run key made from the files' versions so the same version is never loaded twice,
   the request that registers the new partition keys, and the new cursor; or, with nothing to do, a skip
   reason saying why.

The daemon applies all of it after the tick: it adds the partitions, launches each new run key once and
stores the cursor. `dagster_and_etl.testing.SensorDaemon` does the same in a test.
"""

import dataclasses
import time
import warnings

import dagster as dg

from dagster_and_etl.alerting.events import FRESH, overdue_partition
from dagster_and_etl.alerting.freshness import backlog_report_due
from dagster_and_etl.alerting.messages import overdue_partition_alert, waiting_files_alert
from dagster_and_etl.alerting.outbox import AlertCursor
from dagster_and_etl.alerting.records import Alert, OverduePartition
from dagster_and_etl.alerting.tick import alerts_off, failure_alerts, send
from dagster_and_etl.alerting.webhook import webhook_problem
from dagster_and_etl.defs import assets, checks, jobs
from dagster_and_etl.defs.partitions import daily_partitions_def, dynamic_partitions_def
from dagster_and_etl.defs.resources import (
    AlertWebhook,
    FileFreshness,
    SensorTuning,
    SourceFiles,
    StagingDatabase,
)
from dagster_and_etl.ingest.duckdb_tables import DatabaseBusy, RawTable
from dagster_and_etl.ingest.lost_loads import database_check
from dagster_and_etl.ingest.sensor_cursor import SensorCursor
from dagster_and_etl.ingest.sensor_plan import RegisteredKeys
from dagster_and_etl.ingest.source import SourceUnavailable
from dagster_and_etl.ingest.source_tick import WatchedSource, plan_source_tick
from dagster_and_etl.reporting.file_sensor import run_key_to_retry, tick_notes, tick_result
from dagster_and_etl.settings import ALERT_INTERVAL_SECONDS, SENSOR_INTERVAL_SECONDS


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
    cursor = SensorCursor.parse(context.cursor)
    watched = WatchedSource(source, source_files.queue, source_files.reconcile_ns)
    try:
        tick = plan_source_tick(
            watched,
            cursor,
            sensor_tuning.rules(source_files),
            registered=_registered_keys(context.instance),
            loaded_versions=lambda keys: database.loaded_versions(RawTable.DYNAMIC, keys),
            now_ns=time.time_ns(),
        )
    except SourceUnavailable as unavailable:
        # The tick fails with the cause, shown on the sensor's page; the next tick tries again.
        raise dg.Failure(str(unavailable)) from None
    except DatabaseBusy as busy:
        # What is loaded is read from the load history, not guessed: guessing could load twice.
        return dg.SensorResult(
            skip_reason=f"Waiting to read the load history. {busy} Trying again next tick.",
            cursor=context.cursor,
        )
    plan = tick.plan
    for message in tick.poison:
        context.log.warning(
            f"Message {message.message_id} in {watched.queue} is not an S3 event notification"
            f" ({message.notification.problem}): it is deleted."
        )
    for level, note in tick_notes(plan, str(source)):
        getattr(context.log, level)(note)
    stamp, problem = (None, None) if plan.rebuilt else _database_check(context, database, cursor)
    if problem is not None:
        context.log.warning(problem + ".")
    run_keys = [batch.run_key for batch in plan.batches]
    if plan.rebuilt:
        # Files of a run that ended without leaving them in the load history are due again.
        run_keys = [run_key_to_retry(context.instance, "dynamic_sensor", key) for key in run_keys]
    next_cursor = dataclasses.replace(plan.cursor, database=stamp, database_problem=problem)
    return tick_result(plan, dynamic_partitions_def, run_keys, next_cursor.serialize(), problem, str(source))


def _registered_keys(instance: dg.DagsterInstance) -> RegisteredKeys:
    name = dynamic_partitions_def.name
    return RegisteredKeys(
        all=lambda: instance.get_dynamic_partitions(name),
        # The instance's own batched membership query (not in Dagster's public API, which checks one key
        # at a time with has_dynamic_partition).
        among=lambda keys: instance.get_existing_dynamic_partitions(name, keys),
    )


def _database_check(
    context: dg.SensorEvaluationContext, database: StagingDatabase, cursor: SensorCursor
) -> tuple[str | None, str | None]:
    """Whether the database still holds the last load Dagster recorded (a rebuild has just read the
    load history itself, so the tick after it looks afresh)."""
    return database_check(
        context.instance,
        cursor,
        assets.duckdb_dynamic_partition_table.key,
        database.path,
        lambda keys: database.loaded_versions(RawTable.DYNAMIC, keys),
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
    """Evaluates the event-driven table's freshness: the result to report when it changed or when its
    backlog figures did (at most once a minute), and an alert for the file versions newly found waiting
    too long."""
    try:
        waiting = checks.find_waiting_files(source_files, database, freshness)
    except (SourceUnavailable, DatabaseBusy) as error:
        return [], [], f"Waiting files not checked this tick: {error}"
    reports = []
    now_ns = time.time_ns()
    backlog_due = backlog_report_due(
        waiting.backlog, cursor.backlog_reported, cursor.backlog_reported_ns, now_ns
    )
    if waiting.signature != cursor.waiting_reported or backlog_due:
        reports.append(waiting.evaluation())
        cursor.waiting_reported = waiting.signature
        cursor.backlog_reported, cursor.backlog_reported_ns = waiting.backlog.figures, now_ns
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
            context.instance, check_key, daily_partitions_def, source_files.source.expected_location
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
    found += failure_alerts(context.instance, cursor, ui_url)
    found += _overdue_partition_alerts(context, cursor, source_files, ui_url)
    said = (
        [alerts_off(cursor, found)] if url is None else send(cursor, found, url, alerts.timeout, context.log)
    )
    return dg.SensorResult(
        skip_reason=" ".join([*said, waiting_note]), cursor=cursor.serialize(), asset_events=reports
    )

"""What the alert sensor reads from the Dagster instance: runs that failed for good, and freshness checks
that found a partition overdue. Each is turned into the facts an alert states (see `messages`)."""

import datetime as dt
import time
from collections.abc import Callable

import dagster as dg

from dagster_and_etl.alerting.messages import FailedFile, OverduePartition, RunFailure

# The tag Dagster sets on a failed run when run retries are on: "true" if the run will be retried.
WILL_RETRY_TAG = "dagster/will_retry"
FAILURE_REASON_TAG = "dagster/failure_reason"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG, RANGE_END_TAG = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
ASSET_JOB_PREFIX = "__ASSET_JOB"
# Dagster tags a failed run with WILL_RETRY_TAG just after storing its failure: a failure younger than
# this without the tag is read again next tick, once the tag is there.
RETRY_TAG_GRACE_SECONDS = 60
FAILURES_PER_TICK = 100


def latest_run_failure_id(instance: dg.DagsterInstance) -> int:
    """Where a new alert sensor starts reading: after every failure so far."""
    records = instance.fetch_run_status_changes(dg.DagsterEventType.RUN_FAILURE, limit=1).records
    return records[0].storage_id if records else 0


def run_failures_after(
    instance: dg.DagsterInstance, after_id: int, limit: int = FAILURES_PER_TICK
) -> tuple[list[RunFailure], int]:
    """The runs that failed for good since `after_id`, and the storage id to read from next time.

    A run that Dagster will retry (run retries on, retries left) is left out: its retry is the run that
    either succeeds, and nothing is said, or fails for good, and is reported. Retries within a run (the
    jobs' retry policies) never end a run, so only a run's final failure is seen here at all.
    """
    records = instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(dg.DagsterEventType.RUN_FAILURE, after_storage_id=after_id),
        limit=limit,
        ascending=True,
    ).records
    failures, last_id = [], after_id
    for record in records:
        run = instance.get_run_by_id(record.run_id)
        if run is not None:
            will_retry = run.tags.get(WILL_RETRY_TAG)
            if (
                will_retry is None
                and instance.run_retries_enabled
                and time.time() - record.timestamp < RETRY_TAG_GRACE_SECONDS
            ):
                break
            if will_retry != "true":
                failures.append(describe_failed_run(instance, run))
        last_id = record.storage_id
    return failures, last_id


def _job_name(run: dg.DagsterRun) -> str:
    if run.job_name.startswith(ASSET_JOB_PREFIX) and run.asset_selection:
        assets = sorted(key.to_user_string() for key in run.asset_selection)
        return f"materialization of {', '.join(assets)}"
    return run.job_name


def _partitions(run: dg.DagsterRun) -> list[str]:
    if PARTITION_TAG in run.tags:
        return [run.tags[PARTITION_TAG]]
    start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
    if start is None or end is None:
        return []
    return [start] if start == end else [f"{start} … {end}"]


def _text(value: object) -> object:
    return getattr(value, "value", value)


def describe_failed_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> RunFailure:
    """The facts of a failed run from its first step failure: the bad files it held back when it names
    them, else the error in one line, without the exception's message, which may quote a file."""
    step_failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    base = {"run_id": run.run_id, "job": _job_name(run), "partitions": _partitions(run)}
    if not step_failures:
        reason = run.tags.get(FAILURE_REASON_TAG)
        cause = f" ({reason.lower().replace('_', ' ')})" if reason else ""
        return RunFailure(**base, error=f"the run failed before any of its steps did{cause}; see the run")
    failure = step_failures[0].get_dagster_event().step_failure_data
    step = step_failures[0].get_dagster_event().step_key
    user = failure.user_failure_data
    if user is None:
        error_class = failure.error.cls_name if failure.error else "an error"
        return RunFailure(**base, error=f"step {step} raised {error_class}; see the run for its message")
    metadata = user.metadata
    files = _text(metadata.get("failed_partitions")) or []
    location = _text(metadata.get("path"))
    if files:
        return RunFailure(
            **base,
            error=str(files[0].get("summary", "")),
            location=str(location) if location else None,
            files=tuple(
                FailedFile(entry["partition"], entry["path"], entry.get("summary", "see the run"))
                for entry in files
            ),
            failed_files=int(_text(metadata.get("failed_partition_count", len(files)))),
        )
    return RunFailure(
        **base,
        error=f"step {step}: {user.description or user.label}",
        location=str(location) if location else None,
    )


def overdue_partition(
    instance: dg.DagsterInstance,
    check_key: dg.AssetCheckKey,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    location_of: Callable[[str], str],
) -> OverduePartition | None:
    """The partition a time-partition freshness check last found overdue, if its latest result failed."""
    summary = instance.event_log_storage.get_asset_check_summary_records([check_key])[check_key]
    record = summary.last_completed_check_execution_record
    evaluation = record.event.asset_check_evaluation if record and record.event else None
    if evaluation is None or evaluation.passed:
        return None
    deadline_value = evaluation.metadata.get("dagster/latest_cron_tick_timestamp")
    if deadline_value is None:
        return None
    deadline = dt.datetime.fromtimestamp(float(_text(deadline_value)), tz=dt.UTC)
    # The partition expected by the deadline is the last whose window had ended by then.
    window_at_deadline = partitions_def.time_window_for_partition_key(
        partitions_def.get_partition_key_for_timestamp(deadline.timestamp())
    )
    partition = partitions_def.get_partition_key_for_timestamp(window_at_deadline.start.timestamp() - 1)
    return OverduePartition(
        asset=check_key.asset_key.to_user_string(),
        check=check_key.name,
        partition=partition,
        deadline=deadline,
        location=location_of(partition),
    )

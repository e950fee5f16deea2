"""What the alert sensor reads from the Dagster instance: runs that failed for good, and freshness checks
that found a partition overdue. Each is turned into the facts an alert states (see `messages`)."""

import datetime as dt
import time
from collections.abc import Callable

import dagster as dg

from dagster_and_etl.alerting.records import FailedFile, OverduePartition, RunFailure
from dagster_and_etl.tags import (
    AUTO_RETRY_RUN_ID_TAG,
    FAILURE_REASON_TAG,
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    WILL_RETRY_TAG,
)

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
) -> tuple[list[RunFailure], int, list[str]]:
    """The runs that failed for good since `after_id`, the storage id to read from next time, and the
    ids of the failed runs that Dagster is to retry.

    A run that Dagster will retry (run retries on, retries left) is not reported: its retry is the run
    that either succeeds, and nothing is said, or fails for good, and is reported. Until the retry is
    launched, `retries_given_up` looks at it again. Retries within a run (the jobs' retry policies) never
    end a run, so only a run's final failure is seen here at all.
    """
    records = instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(dg.DagsterEventType.RUN_FAILURE, after_storage_id=after_id),
        limit=limit,
        ascending=True,
    ).records
    failures, last_id, retrying = [], after_id, []
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
            if will_retry == "true":
                retrying.append(run.run_id)
            else:
                failures.append(describe_failed_run(instance, run))
        last_id = record.storage_id
    return failures, last_id, retrying


def retries_given_up(instance: dg.DagsterInstance, run_ids: list[str]) -> tuple[list[RunFailure], list[str]]:
    """Of failed runs Dagster was to retry: those whose retry could not be launched after all (now
    failures for good), and those still waiting for their retry to be launched. A run whose retry was
    launched is done with: the retry reports itself."""
    given_up, waiting = [], []
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        if run is None or AUTO_RETRY_RUN_ID_TAG in run.tags:
            continue
        if run.tags.get(WILL_RETRY_TAG) == "true":
            waiting.append(run_id)
        else:
            given_up.append(describe_failed_run(instance, run))
    return given_up, waiting


def _job_name(run: dg.DagsterRun) -> str:
    """The job, or for a run launched from the UI or by a sensor without a job, what it was for."""
    if not run.job_name.startswith(ASSET_JOB_PREFIX):
        return run.job_name
    if run.asset_selection:
        return "materialization of " + ", ".join(sorted(k.to_user_string() for k in run.asset_selection))
    if run.asset_check_selection:
        return "check " + ", ".join(sorted(k.to_user_string() for k in run.asset_check_selection))
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
    them, else the error in one line, without the exception's message, which may quote a file. A failure
    it cannot make sense of is still reported, with a pointer to the run."""
    try:
        return _describe_failed_run(instance, run)
    except Exception as error:
        return RunFailure(
            run_id=run.run_id,
            job=run.job_name,
            partitions=[],
            error=f"the failure could not be summed up here ({type(error).__name__}); see the run",
        )


def _failed_files(entries: object) -> tuple[FailedFile, ...]:
    """The bad files a failure's `failed_partitions` metadata names, as the loads write it."""
    if not isinstance(entries, list):
        return ()
    return tuple(
        FailedFile(str(entry["partition"]), str(entry["path"]), str(entry.get("summary", "see the run")))
        for entry in entries
        if isinstance(entry, dict) and "partition" in entry and "path" in entry
    )


def _describe_failed_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> RunFailure:
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
    files = _failed_files(_text(metadata.get("failed_partitions")))
    location = _text(metadata.get("path"))
    if files:
        count = _text(metadata.get("failed_partition_count"))
        return RunFailure(
            **base,
            error=files[0].summary,
            location=str(location) if location else None,
            files=files,
            failed_files=count if isinstance(count, int) else len(files),
        )
    return RunFailure(
        **base,
        error=f"step {step}: {user.description or user.label}",
        location=str(location) if location else None,
    )


FRESH = "fresh"


def overdue_partition(
    instance: dg.DagsterInstance,
    check_key: dg.AssetCheckKey,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    location_of: Callable[[str], str],
) -> OverduePartition | str | None:
    """The partition a time-partition freshness check's latest result found overdue; `FRESH` when that
    result passed; None when there is no result to go by (never run, or its run failed)."""
    summary = instance.event_log_storage.get_asset_check_summary_records([check_key])[check_key]
    record = summary.last_completed_check_execution_record
    evaluation = record.event.asset_check_evaluation if record and record.event else None
    if evaluation is None:
        return None
    if evaluation.passed:
        return FRESH
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

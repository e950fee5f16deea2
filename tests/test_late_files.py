"""A scheduled run whose file is late retries by itself, loads the file when it comes, or gives up."""

from pathlib import Path

import dagster as dg
import duckdb

from dagster_and_etl.defs import jobs
from dagster_and_etl.defs.jobs import LATE_FILE_RETRY_POLICY
from dagster_and_etl.sample_data import sample_csv
from tests.support import arriving_after_the_first_failure, wait_until_settled

DAY = "2018-01-22"


def job_with_retries(defs: dg.Definitions, policy: dg.RetryPolicy) -> dg.JobDefinition:
    """The daily pipeline with a quicker retry policy, so a test does not wait hours."""
    job = dg.define_asset_job(
        "late_file_test_job", selection=jobs.import_partition_job.selection, op_retry_policy=policy
    )
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def(job.name)


def retry_events(result: dg.ExecuteInProcessResult) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]


def test_daily_job_retries_a_late_file_with_backoff_for_about_two_hours(defs) -> None:
    job = defs.resolve_job_def("import_partition_job")
    assert job._op_retry_policy == LATE_FILE_RETRY_POLICY
    delays = [
        LATE_FILE_RETRY_POLICY.calculate_delay(n) for n in range(1, LATE_FILE_RETRY_POLICY.max_retries + 1)
    ]
    assert delays == sorted(delays) and delays[0] == 60  # backing off, the first retry a minute later
    minutes = sum(delays) / 60
    # The lesson's case: due at 05:00, run at 05:15, the file comes at 05:45; still loaded on a retry.
    assert 90 <= minutes <= 150


def test_late_file_is_loaded_by_a_retry_once_it_arrives(
    defs, instance, source_dir: Path, duckdb_path: Path
) -> None:
    job = job_with_retries(defs, dg.RetryPolicy(max_retries=10, delay=1))
    with arriving_after_the_first_failure(instance, source_dir, f"{DAY}.csv", sample_csv(seed=3)):
        result = job.execute_in_process(partition_key=DAY, instance=instance, raise_on_error=False)

    assert result.success
    assert len(retry_events(result)) >= 1
    error, first_failure = retry_events(result)[0].event_specific_data.error, ""
    while error is not None:  # the policy's retry wraps the asset's failure
        first_failure, error = first_failure + error.message, error.cause
    assert f"{DAY}.csv has not arrived in {source_dir}" in first_failure
    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw_partition_data").fetchone() == (10,)


def test_file_that_never_arrives_fails_for_good_after_the_retries(defs, instance, source_dir: Path) -> None:
    job = job_with_retries(defs, dg.RetryPolicy(max_retries=2, delay=0.2))

    result = job.execute_in_process(partition_key=DAY, instance=instance, raise_on_error=False)

    assert not result.success
    assert len(retry_events(result)) == 2
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "import_partition_file"
    assert failure.step_failure_data.user_failure_data.description == (
        f"{DAY}.csv has not arrived in {source_dir}."
    )


def test_daily_file_still_being_written_is_never_loaded_in_part(
    defs, instance, source_dir: Path, duckdb_path: Path, monkeypatch
) -> None:
    # A settle window far longer than any run takes: however slow the machine, the part-written file
    # is still within it when the run looks.
    monkeypatch.setenv("SENSOR_SETTLE_SECONDS", "3600")
    job = job_with_retries(defs, dg.RetryPolicy(max_retries=1, delay=0))
    lines = sample_csv(seed=3).split("\n")
    path = source_dir / f"{DAY}.csv"
    path.write_text("\n".join(lines[:4]) + "\n")  # 3 of 10 rows, cut at a line end: a transfer under way

    early = job.execute_in_process(partition_key=DAY, instance=instance, raise_on_error=False)

    assert not early.success
    assert len(retry_events(early)) == 1  # retryable: a later try finds the whole file
    (failure,) = early.get_step_failure_events()
    assert failure.step_failure_data.user_failure_data.description.startswith(
        f"{path} is still being written"
    )
    assert not duckdb_path.exists()

    path.write_text("\n".join(lines))  # the transfer completes
    monkeypatch.setenv("SENSOR_SETTLE_SECONDS", "1")
    wait_until_settled(source_dir, settle_ns=1_000_000_000)
    done = job.execute_in_process(partition_key=DAY, instance=instance, raise_on_error=False)

    assert done.success
    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw_partition_data").fetchone() == (10,)

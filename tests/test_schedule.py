"""`asset_partitioned_schedule`: every morning at 05:15 UTC it asks for one run loading the day before."""

from datetime import UTC, datetime

import dagster as dg
import pytest

from dagster_and_etl.defs.partitions import daily_partitions_def
from dagster_and_etl.defs.schedules import asset_partitioned_schedule


@pytest.fixture
def schedule(defs: dg.Definitions) -> dg.ScheduleDefinition:
    """The schedule as Dagster runs it: built from a job over assets, it is resolved by the Definitions."""
    return defs.resolve_schedule_def(asset_partitioned_schedule.name)


@pytest.mark.parametrize(
    ("tick", "partition_key"),
    [
        (datetime(2018, 1, 23, 5, 15, tzinfo=UTC), "2018-01-22"),
        (datetime(2018, 1, 24, 5, 15, tzinfo=UTC), "2018-01-23"),
    ],
)
def test_a_tick_requests_one_run_for_the_previous_day(schedule, instance, tick, partition_key):
    with dg.build_schedule_context(scheduled_execution_time=tick, instance=instance) as context:
        data = schedule.evaluate_tick(context)

    assert [request.partition_key for request in data.run_requests] == [partition_key]
    assert data.run_requests[0].job_name == "import_partition_job"


def test_it_runs_daily_at_05_15_utc_on_the_daily_job_and_starts_stopped(schedule):
    assert schedule.name == "asset_partitioned_schedule"
    assert schedule.cron_schedule == "15 5 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == "import_partition_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_daily_partitions_start_at_2018_01_22(defs):
    job = defs.resolve_job_def("import_partition_job")

    assert job.partitions_def == daily_partitions_def
    assert daily_partitions_def.get_first_partition_key() == "2018-01-22"

import dagster as dg

from dagster_and_etl.defs import jobs

# Each day's file lands at 05:00 the next morning; the run follows at 05:15 and loads that day.
asset_partitioned_schedule = dg.build_schedule_from_partitioned_job(
    jobs.import_partition_job,
    name="asset_partitioned_schedule",
    hour_of_day=5,
    minute_of_hour=15,
    description="Loads yesterday's file every day at 05:15, after it lands at 05:00.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

# Every hour, at a quarter to: a file leaves SOURCE_DIR within the hour after its window ends.
archive_schedule = dg.ScheduleDefinition(
    name="archive_schedule",
    job=jobs.archive_job,
    cron_schedule="45 * * * *",
    description="Moves loaded files out of SOURCE_DIR every hour (with SOURCE_ARCHIVE set).",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

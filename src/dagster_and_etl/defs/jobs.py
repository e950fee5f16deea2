import dagster as dg

from dagster_and_etl.defs import assets, checks, ops

# A day's file is due at 05:00 and the scheduled run starts at 05:15. If the file has not arrived, the
# run tries again 1, 4, 11, 26, 57 and 120 minutes later: a file up to two hours late is still loaded
# with no one stepping in, and after that the run fails for good. A bad file fails at once, unretried.
LATE_FILE_RETRY_POLICY = dg.RetryPolicy(max_retries=6, delay=60, backoff=dg.Backoff.EXPONENTIAL)

# Both jobs run their two steps, the file then its load, one after the other in the run's own process.
# Dagster's default executor would start a process for each step: that doubles what a run costs (see
# BENCHMARKS.md) and gains nothing here, where the steps never run side by side and the pool
# `duckdb_write` holds back a load in either executor.

import_partition_job = dg.define_asset_job(
    name="import_partition_job",
    # The table's load checks run with its loads; its freshness check is run by freshness_checks_sensor.
    selection=dg.AssetSelection.assets(assets.import_partition_file, assets.duckdb_partition_table)
    - dg.AssetSelection.checks(*checks.daily_freshness_checks),
    description="Loads one day's source file into raw_partition_data once it has arrived and settled.",
    op_retry_policy=LATE_FILE_RETRY_POLICY,
    executor_def=dg.in_process_executor,
)

# A file the sensor requested is there and settled: what can still go wrong for a while is the database
# held by another process or a file changing under its load. Those are tried again 3 times, waiting
# 30 s, 1.5 min and 3.5 min between; a bad file fails at once, unretried, and holds back only itself.
TRANSIENT_FAILURE_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL)

import_dynamic_partition_job = dg.define_asset_job(
    name="import_dynamic_partition_job",
    # The table's load checks run with its loads; the waiting-files check is the alert sensor's.
    selection=dg.AssetSelection.assets(
        assets.import_dynamic_partition_file, assets.duckdb_dynamic_partition_table
    )
    - dg.AssetSelection.checks(checks.files_loaded_in_time),
    description="Loads landed source files into raw_dynamic_partition_data, each version once.",
    op_retry_policy=TRANSIENT_FAILURE_RETRY_POLICY,
    executor_def=dg.in_process_executor,
)


@dg.job(
    description="Moves the source files loaded SOURCE_ARCHIVE_AFTER_HOURS ago or more to SOURCE_ARCHIVE.",
    executor_def=dg.in_process_executor,
)
def archive_job() -> None:
    ops.archive_loaded_files()

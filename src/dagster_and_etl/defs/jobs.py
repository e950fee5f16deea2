import dagster as dg

from dagster_and_etl.defs import assets

# A day's file is due at 05:00 and the scheduled run starts at 05:15. If the file has not arrived, the
# run tries again 1, 4, 11, 26, 57 and 120 minutes later: a file up to two hours late is still loaded
# with no one stepping in, and after that the run fails for good. A bad file fails at once, unretried.
LATE_FILE_RETRY_POLICY = dg.RetryPolicy(max_retries=6, delay=60, backoff=dg.Backoff.EXPONENTIAL)

import_partition_job = dg.define_asset_job(
    name="import_partition_job",
    selection=[assets.import_partition_file, assets.duckdb_partition_table],
    description="Checks one day's source file and loads it into raw_partition_data.",
    op_retry_policy=LATE_FILE_RETRY_POLICY,
)

import_dynamic_partition_job = dg.define_asset_job(
    name="import_dynamic_partition_job",
    selection=[assets.import_dynamic_partition_file, assets.duckdb_dynamic_partition_table],
    description="Checks a landed source file and loads it into raw_dynamic_partition_data.",
)

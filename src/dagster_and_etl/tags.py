"""The Dagster run tags the project reads or writes, each spelled once. Dagster sets and reads them
itself; it keeps their names in a private module (`dagster._core.storage.tags`), so they are named here."""

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"
PARENT_RUN_ID_TAG = "dagster/parent_run_id"
ROOT_RUN_ID_TAG = "dagster/root_run_id"
# Set on a failed run that Dagster's run retries will launch again; it turns "false" if launching fails.
WILL_RETRY_TAG = "dagster/will_retry"
AUTO_RETRY_RUN_ID_TAG = "dagster/auto_retry_run_id"
FAILURE_REASON_TAG = "dagster/failure_reason"

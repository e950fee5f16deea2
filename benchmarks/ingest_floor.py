"""Dagster's floor for benchmark 1: a code location that asks Dagster for what the project's ingest asks
and does nothing else.

`floor_sensor` lists SOURCE_DIR and plans its tick with the project's own `plan_tick` and settings
(SENSOR_SETTLE_SECONDS, SENSOR_MAX_BATCH, SENSOR_MAX_RUNS_PER_TICK, SENSOR_INCLUDE_EXISTING_FILES), so it
registers the same dynamic partitions in the same order and requests the same runs over the same key
ranges, at the same minimum interval, as `dynamic_sensor`. Each run materializes two assets that do
nothing: a file asset returning `dg.MaterializeResult()`, and a table asset in the pool `duckdb_write`
yielding one `dg.AssetMaterialization` per partition, as the project's table asset does. No resources, no
metadata, no checks, no DuckDB: what is left is Dagster's own cost of the same partitions and runs.

Loaded by `benchmarks.ingest` through a workspace file of its own (location `ingest_floor`).
"""

import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from dagster_and_etl.ingest.sensor_cursor import SensorCursor
from dagster_and_etl.ingest.sensor_plan import TickRules, plan_tick
from dagster_and_etl.ingest.source_folder import list_source_files
from dagster_and_etl.reporting.file_sensor import run_request
from dagster_and_etl.settings import (
    SENSOR_INCLUDE_EXISTING_FILES,
    SENSOR_MAX_BATCH,
    SENSOR_MAX_RUNS_PER_TICK,
    SENSOR_SETTLE_SECONDS,
    SOURCE_DIR,
)

LOCATION_NAME = "ingest_floor"
SENSOR_NAME = "floor_sensor"
# The same name as the project's: a fresh instance each run, so the two never meet.
partitions_def = dg.DynamicPartitionsDefinition(name="dynamic_partition")
# As the project's dynamic assets have it (it shapes backfills from the UI only, not the sensor's runs).
backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=SENSOR_MAX_BATCH.read())


@dg.asset(partitions_def=partitions_def, backfill_policy=backfill_policy)
def floor_file() -> dg.MaterializeResult:
    return dg.MaterializeResult()


@dg.asset(
    partitions_def=partitions_def,
    deps=[floor_file],
    pool="duckdb_write",
    backfill_policy=backfill_policy,
    output_required=False,
)
def floor_table(context: dg.AssetExecutionContext) -> Iterator[dg.AssetMaterialization]:
    for key in context.partition_keys:
        yield dg.AssetMaterialization(asset_key=context.asset_key, partition=key)


floor_job = dg.define_asset_job(name="floor_job", selection=[floor_file, floor_table])


@dg.sensor(target=floor_job, minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.STOPPED)
def floor_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    now_ns = time.time_ns()
    plan = plan_tick(
        list_source_files(Path(SOURCE_DIR.read())),
        SensorCursor.parse(context.cursor),
        TickRules(
            settle_ns=int(SENSOR_SETTLE_SECONDS.read() * 1e9),
            max_batch=SENSOR_MAX_BATCH.read(),
            max_runs=SENSOR_MAX_RUNS_PER_TICK.read(),
            include_existing=SENSOR_INCLUDE_EXISTING_FILES.read(),
        ),
        registered_keys=lambda: context.instance.get_dynamic_partitions(partitions_def.name),
        loaded_versions=dict,  # nothing is ever loaded; the project's reads an empty load history here
        now_ns=now_ns,
    )
    registrations = (
        [partitions_def.build_add_request(plan.new_partition_keys)] if plan.new_partition_keys else []
    )
    if not plan.batches:
        return dg.SensorResult(
            skip_reason="nothing to request",
            dynamic_partitions_requests=registrations,
            cursor=plan.cursor.serialize(),
        )
    return dg.SensorResult(
        run_requests=[run_request(batch, batch.run_key) for batch in plan.batches],  # as the project's
        dynamic_partitions_requests=registrations,
        cursor=plan.cursor.serialize(),
    )


defs = dg.Definitions(assets=[floor_file, floor_table], jobs=[floor_job], sensors=[floor_sensor])

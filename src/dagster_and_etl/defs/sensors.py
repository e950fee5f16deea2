import time

import dagster as dg

from dagster_and_etl.defs import jobs
from dagster_and_etl.defs.partitions import dynamic_partitions_def
from dagster_and_etl.defs.resources import SourceFolder
from dagster_and_etl.ingest.sensor_plan import SensorCursor, plan_tick
from dagster_and_etl.ingest.source_folder import list_source_files


@dg.sensor(
    target=jobs.import_dynamic_partition_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Watches SOURCE_DIR for new or modified CSV files, registers each as a dynamic partition"
        " and requests one run per file version."
    ),
)
def dynamic_sensor(context: dg.SensorEvaluationContext, source_folder: SourceFolder) -> dg.SensorResult:
    folder = source_folder.path
    if not folder.is_dir():
        raise dg.Failure(f"SOURCE_DIR {folder} does not exist or is not a folder.")
    now_ns = time.time_ns()  # before listing: a file written during the listing is judged next tick
    listing = list_source_files(folder)
    plan = plan_tick(
        listing,
        registered_keys=set(context.instance.get_dynamic_partitions(dynamic_partitions_def.name)),
        cursor=SensorCursor.parse(context.cursor),
        now_ns=now_ns,
        settle_ns=source_folder.settle_ns,
    )
    for unsafe in plan.unsafe_names:
        context.log.warning(f"Skipped {unsafe.name!r} in {folder}: {unsafe.problem}.")
    if not plan.to_request:
        return dg.SensorResult(skip_reason=plan.skip_reason(str(folder)), cursor=plan.cursor.serialize())
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=source_file.version, partition_key=source_file.partition_key)
            for source_file in plan.to_request
        ],
        dynamic_partitions_requests=(
            [dynamic_partitions_def.build_add_request(plan.new_partition_keys)]
            if plan.new_partition_keys
            else []
        ),
        cursor=plan.cursor.serialize(),
    )

"""What a tick of `dynamic_sensor` tells Dagster: the partitions to register and the runs to request, each
under its run key, with the cursor to store; or, with nothing to request, why."""

from collections.abc import Iterator

import dagster as dg

from dagster_and_etl.ingest.run_batches import RunBatch
from dagster_and_etl.ingest.sensor_plan import TickPlan
from dagster_and_etl.tags import RANGE_END_TAG, RANGE_START_TAG, RUN_KEY_TAG, SENSOR_NAME_TAG


def run_request(batch: RunBatch, run_key: str) -> dg.RunRequest:
    """A run of one partition, or of a range of them, named by Dagster's range tags."""
    if batch.first_key == batch.last_key:
        return dg.RunRequest(run_key=run_key, partition_key=batch.first_key)
    return dg.RunRequest(
        run_key=run_key, tags={RANGE_START_TAG: batch.first_key, RANGE_END_TAG: batch.last_key}
    )


def run_key_to_retry(instance: dg.DagsterInstance, sensor_name: str, run_key: str) -> str:
    """For a rebuild: the batch's run key, or a new one (`<run key>~2`, `~3`, ...) when a run under that
    key has ended, as the daemon never starts a run key twice.

    A rebuild requests only files whose current version the load history does not hold, so a run that
    ended under the same key did not leave them loaded: it failed, was cancelled, or loaded into a
    database since lost, emptied or restored from an older backup. A run still queued or under way keeps
    its key, and the daemon does not start it twice."""
    candidate, attempt = run_key, 1
    while True:
        runs = instance.get_runs(
            dg.RunsFilter(tags={RUN_KEY_TAG: candidate, SENSOR_NAME_TAG: sensor_name}), limit=1
        )
        if not runs or not runs[0].is_finished:
            return candidate
        attempt += 1
        candidate = f"{run_key}~{attempt}"


def tick_notes(plan: TickPlan, source: str) -> Iterator[tuple[str, str]]:
    """What the tick logs, as (level, message): names passed over, a rebuild, files left waiting."""
    for skipped in plan.skipped:
        yield "warning", f"Skipped {skipped.name!r} in {source}: {skipped.problem}."
    if plan.rebuilt:
        yield "info", f"No cursor: {len(plan.to_request)} file(s) not loaded at their current version."
    if plan.waiting:
        yield "info", f"{len(plan.waiting)} file(s) wait for the next tick: runs-per-tick limit reached."


def tick_result(
    plan: TickPlan,
    partitions_def: dg.DynamicPartitionsDefinition,
    run_keys: list[str],
    cursor: str,
    note: str | None,
    source: str,
) -> dg.SensorResult:
    """The tick's result: its runs under `run_keys` (one per batch), or why there are none, `note`
    first; with the new keys to register before the runs, and the cursor."""
    registrations = (
        [partitions_def.build_add_request(plan.new_partition_keys)] if plan.new_partition_keys else []
    )
    if not plan.batches:
        reason = plan.skip_reason(source)
        return dg.SensorResult(
            skip_reason=reason if note is None else f"{note}. {reason}",
            dynamic_partitions_requests=registrations,
            cursor=cursor,
        )
    return dg.SensorResult(
        run_requests=[run_request(batch, key) for batch, key in zip(plan.batches, run_keys, strict=True)],
        dynamic_partitions_requests=registrations,
        cursor=cursor,
    )

"""Ticking `dynamic_sensor` in a test the way the Dagster daemon ticks it under `dagster dev`.

`dg.build_sensor_context` evaluates one tick and nothing more. The daemon does three things after each
tick, and a test of several ticks needs them too, or its second tick does not behave like production:
it adds the partitions the tick asked for (and records the asset events it reported), it never launches
a run key twice, and it runs what was launched. `SensorDaemon` does all three, in process:

    with dg.instance_for_test() as instance:
        daemon = SensorDaemon(instance)
        tick = daemon.tick()            # evaluate, register partitions, launch and run new run keys
        assert tick.partition_keys == ["2018-01-22"]
        assert daemon.tick().launched == []   # nothing new: nothing requested, or only known run keys
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from dagster_and_etl.tags import (
    PARENT_RUN_ID_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    ROOT_RUN_ID_TAG,
    RUN_KEY_TAG,
    SENSOR_NAME_TAG,
)


@dataclass
class Tick:
    """One evaluation of the sensor and what the daemon made of it."""

    result: dg.SensorResult
    launched: list[dg.RunRequest]  # requests whose run key was new: these runs were launched
    duplicates: list[dg.RunRequest]  # requests whose run key had been launched before: skipped
    runs: list[dg.ExecuteInProcessResult]  # the launched runs, executed (empty with execute=False)
    partition_keys: list[str] = field(default_factory=list)  # every partition the launched runs cover

    @property
    def skip_reason(self) -> str | None:
        return self.result.skip_reason.skip_message if self.result.skip_reason else None


def _definitions() -> dg.Definitions:
    from dagster_and_etl.definitions import defs

    return defs()


class SensorDaemon:
    """Evaluates a sensor tick after tick as the daemon does; see the module's docstring.

    `instance` is a Dagster instance (`dg.instance_for_test()`); `defs` the project's definitions,
    loaded when not given. Run keys already launched are read from the instance's runs, so a new
    `SensorDaemon` over the same instance (a restarted `dagster dev`) still never launches one twice.
    """

    def __init__(
        self,
        instance: dg.DagsterInstance,
        defs: dg.Definitions | None = None,
        sensor_name: str = "dynamic_sensor",
        cursor: str | None = None,
    ) -> None:
        self.instance = instance
        self.defs = defs if defs is not None else _definitions()
        self.sensor = self.defs.resolve_sensor_def(sensor_name)
        self.cursor = cursor
        self.ticks: list[Tick] = []

    def evaluate(self) -> dg.SensorResult:
        """One evaluation of the sensor with the current cursor, as `dg.build_sensor_context` gives it."""
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources=self.defs.resources,
            definitions=self.defs,
            sensor_name=self.sensor.name,
        )
        result = self.sensor(context)
        if not isinstance(result, dg.SensorResult):
            raise TypeError(f"{self.sensor.name} returned {type(result).__name__}, not a SensorResult")
        return result

    def tick(self, execute: bool = True) -> Tick:
        """Evaluates the sensor, applies its partition requests and cursor, launches the requests whose run
        key is new and, unless `execute` is false, runs them in process, one after another."""
        result = self.evaluate()
        for event in result.asset_events:  # a check result or materialization reported without a run
            self.instance.report_runless_asset_event(event)
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(
                    request.partitions_def_name, list(request.partition_keys)
                )
            else:
                for key in request.partition_keys:
                    self.instance.delete_dynamic_partition(request.partitions_def_name, key)
        self.cursor = result.cursor
        launched, duplicates = [], []
        for request in result.run_requests or []:
            (duplicates if self.was_launched(request.run_key) else launched).append(request)
        runs = [self.run(request) for request in launched] if execute else []
        tick = Tick(result, launched, duplicates, runs, [k for r in launched for k in self.keys_of(r)])
        self.ticks.append(tick)
        return tick

    def run_until_idle(self, max_ticks: int = 20) -> list[Tick]:
        """Ticks until a tick launches nothing; fails if that takes more than `max_ticks` ticks."""
        ticks = []
        for _ in range(max_ticks):
            ticks.append(self.tick())
            if not ticks[-1].launched:
                return ticks
        raise AssertionError(f"{self.sensor.name} still launched runs after {max_ticks} ticks")

    def was_launched(self, run_key: str | None) -> bool:
        if run_key is None:
            return False
        return bool(
            self.instance.get_run_ids(
                dg.RunsFilter(tags={RUN_KEY_TAG: run_key, SENSOR_NAME_TAG: self.sensor.name}), limit=1
            )
        )

    def run(self, request: dg.RunRequest, re_executing: str | None = None) -> dg.ExecuteInProcessResult:
        """Runs one request's job in process, tagged as the daemon tags it; a failed run is returned.

        `re_executing`: the id of a run this one re-executes, tagged as the UI's "Re-execute" tags it."""
        job = self.defs.resolve_job_def(request.job_name or self.sensor.job_name)
        tags = {**request.tags, SENSOR_NAME_TAG: self.sensor.name}
        if request.run_key is not None:
            tags[RUN_KEY_TAG] = request.run_key
        if re_executing is not None:
            tags.update({PARENT_RUN_ID_TAG: re_executing, ROOT_RUN_ID_TAG: re_executing})
        return job.execute_in_process(
            instance=self.instance, partition_key=request.partition_key, tags=tags, raise_on_error=False
        )

    def keys_of(self, request: dg.RunRequest) -> list[str]:
        """The partition keys a request covers, expanding a key range in the order keys were registered."""
        if request.partition_key is not None:
            return [request.partition_key]
        start, end = request.tags.get(RANGE_START_TAG), request.tags.get(RANGE_END_TAG)
        if start is None or end is None:
            return []
        job = self.defs.resolve_job_def(request.job_name or self.sensor.job_name)
        partitions_def = job.partitions_def
        assert partitions_def is not None
        keys = list(partitions_def.get_partition_keys(dynamic_partitions_store=self.instance))
        return keys[keys.index(start) : keys.index(end) + 1]


def wait_until_settled(folder: Path | str, settle_seconds: float = 0) -> None:
    """Waits until every file in `folder` has gone unchanged for `settle_seconds` and the one second
    that file timestamps are trusted to within, so that a tick sees the files as settled, not still being
    written. A test that ticks the sensor right after writing files calls this first."""
    from dagster_and_etl.ingest.source import settle_horizon
    from dagster_and_etl.ingest.source_folder import TIMESTAMP_SLACK_NS, list_source_files

    latest = max((f.changed_ns for f in list_source_files(Path(folder)).files), default=0)
    while latest > settle_horizon(time.time_ns(), int(settle_seconds * 1e9), TIMESTAMP_SLACK_NS):
        time.sleep(0.05)


def launched_partition_keys(ticks: list[Tick]) -> list[str]:
    """Every partition key the ticks' launched runs covered, in the order they were launched."""
    return [key for tick in ticks for key in tick.partition_keys]


__all__ = ["SensorDaemon", "Tick", "launched_partition_keys", "wait_until_settled"]

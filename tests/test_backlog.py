"""How far the event-driven table is behind: `alert_sensor` reports the files in the source not loaded at
their current version, their bytes and the oldest one's wait, as numbers on the `files_loaded_in_time`
check's result, whose page plots them over time; when the check's result changes, or when the numbers
do, at most once a minute."""

import time

import dagster as dg
import pytest
import time_machine

from dagster_and_etl.sample_data import sample_csv
from dagster_and_etl.testing import SensorDaemon
from tests.landing import BucketLanding, FolderLanding
from tests.support import reported_backlog


def test_the_backlog_rises_while_the_sensor_is_stopped_and_falls_to_zero_once_loaded(
    landing: FolderLanding | BucketLanding,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")  # the three files load in one run
    alerts = SensorDaemon(instance, defs, sensor_name="alert_sensor")
    alerts.tick()
    assert reported_backlog(instance) == [(0, 0, 0)]  # a first point for the plot: nothing waits
    texts = {name: sample_csv(seed=seed) for seed, name in enumerate(["a.csv", "b.csv", "c.csv"])}
    size = {name: len(text.encode()) for name, text in texts.items()}
    landing.write("a.csv", texts["a.csv"])
    landing.write("b.csv", texts["b.csv"])
    start = time.time()

    with time_machine.travel(start + 61, tick=False):
        alerts.tick()
    landing.write("c.csv", texts["c.csv"])  # by the real clock: a bucket's server stamps it so too
    with time_machine.travel(start + 62, tick=False):
        alerts.tick()  # the figures changed, but within the minute: not reported yet
    first = reported_backlog(instance)[1:]
    assert [(files, size_) for files, size_, _ in first] == [(2, size["a.csv"] + size["b.csv"])]

    with time_machine.travel(start + 122, tick=False):
        alerts.tick()
    rising = reported_backlog(instance)[2:]
    assert [(files, size_) for files, size_, _ in rising] == [(3, sum(size.values()))]
    assert rising[0][2] >= first[0][2]  # the oldest file has waited longer

    landing.wait_until_settled()
    SensorDaemon(instance, defs).run_until_idle()  # dynamic_sensor started: all three loaded
    with time_machine.travel(start + 183, tick=False):
        alerts.tick()
    with time_machine.travel(start + 244, tick=False):
        alerts.tick()  # a minute later, still nothing waits: nothing more to report

    assert reported_backlog(instance)[3:] == [(0, 0, 0)]

"""Alerts to a chat webhook: a real HTTP server on loopback receives what `alert_sensor` posts.

Every tick is evaluated as the daemon evaluates it (`SensorDaemon`), with the cursor carried from tick to
tick and the asset check results it reports stored in the instance; the runs are real runs of the jobs.
"""

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import time_machine

from dagster_and_etl.defs import assets
from dagster_and_etl.defs.checks import WAITING_FILES_CHECK
from dagster_and_etl.sample_data import sample_csv
from dagster_and_etl.testing import SensorDaemon
from tests.landing import BucketLanding, FolderLanding
from tests.support import (
    arriving_after_the_first_failure,
    run_daily,
    wait_until_settled,
    with_bad_value,
    write_source_file,
)
from tests.test_late_files import job_with_retries
from tests.webhook import Webhook

SECRET = "9999.4242"  # a value in a bad file: it must never appear in an alert
FRESHNESS_CHECK = dg.AssetCheckKey(assets.duckdb_partition_table.key, "freshness_check")
WAITING_CHECK = dg.AssetCheckKey(assets.duckdb_dynamic_partition_table.key, WAITING_FILES_CHECK)


@pytest.fixture
def alerts_on(monkeypatch: pytest.MonkeyPatch, webhook: Webhook) -> Webhook:
    monkeypatch.setenv("ALERT_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("DAGSTER_UI_URL", "http://dagster.example:3000")
    return webhook


@pytest.fixture
def alert_sensor(instance: dg.DagsterInstance, defs: dg.Definitions) -> SensorDaemon:
    """The alert sensor, started: its first tick reads failures from then on."""
    daemon = SensorDaemon(instance, defs, sensor_name="alert_sensor")
    daemon.tick()
    return daemon


def drop_bad_file(landing: FolderLanding | BucketLanding) -> str:
    """Two good files and one whose line 3 has a number DuckDB cannot read as a date; the bad file's
    location."""
    landing.write("good-a.csv", seed=1)
    landing.write("good-b.csv", seed=2)
    bad = landing.write("bad-c.csv", with_bad_value(3, line=3, column=0, value=SECRET))
    landing.wait_until_settled()
    return bad


@pytest.fixture
def failed_load(
    source_dir: Path, instance: dg.DagsterInstance, defs: dg.Definitions, alert_sensor: SensorDaemon
) -> str:
    """With the alert sensor started: a bad file dropped in a folder and the file sensor's runs done,
    one of them failed. The bad file's location."""
    bad = drop_bad_file(FolderLanding(source_dir))
    SensorDaemon(instance, defs).run_until_idle()
    return bad


def latest_result(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> dg.AssetCheckEvaluation | None:
    summary = instance.event_log_storage.get_asset_check_summary_records([key])[key]
    record = summary.last_completed_check_execution_record
    return record.event.asset_check_evaluation if record and record.event else None


@pytest.mark.parametrize("batch", ["1", "500"])
def test_a_bad_file_held_back_gives_one_alert_naming_its_partition_file_and_line(
    landing: FolderLanding | BucketLanding,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    alerts_on: Webhook,
    alert_sensor: SensorDaemon,
    monkeypatch: pytest.MonkeyPatch,
    batch: str,
) -> None:
    monkeypatch.setenv("SENSOR_MAX_BATCH", batch)
    bad = drop_bad_file(landing)
    ticks = SensorDaemon(instance, defs).run_until_idle()
    failed = [run for tick in ticks for run in tick.runs if not run.success]
    assert len(failed) == 1

    for _ in range(3):
        alert_sensor.tick()

    assert len(alerts_on.received) == 1
    (text,) = alerts_on.texts
    assert text.splitlines() == [
        "import_dynamic_partition_job failed: 1 file(s) could not be loaded and are held back",
        f"Partition: bad-c · File: {bad}",
        "Error: 1 bad line(s): line 3, column date (CAST)",
        f"Run: http://dagster.example:3000/runs/{failed[0].run_id}",
    ]
    assert SECRET not in str(alerts_on.received)


def test_a_bad_header_is_named_without_quoting_the_file(
    source_dir: Path, instance: dg.DagsterInstance, defs: dg.Definitions, alerts_on: Webhook, alert_sensor
) -> None:
    write_source_file(source_dir, "odd.csv", f'"date","{SECRET}"\n"2018/01/22","1"\n')
    wait_until_settled(source_dir)
    SensorDaemon(instance, defs).run_until_idle()
    alert_sensor.tick()

    (text,) = alerts_on.texts
    assert "Error: its first line is not the expected header" in text
    assert SECRET not in text


def test_a_late_daily_file_that_arrives_during_the_retries_sends_nothing(
    source_dir: Path, instance: dg.DagsterInstance, defs: dg.Definitions, alerts_on: Webhook, alert_sensor
) -> None:
    job = job_with_retries(defs, dg.RetryPolicy(max_retries=10, delay=1))
    with arriving_after_the_first_failure(instance, source_dir, "2018-01-22.csv", sample_csv(seed=3)):
        result = job.execute_in_process(partition_key="2018-01-22", instance=instance, raise_on_error=False)
    assert result.success
    assert [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]

    tick = alert_sensor.tick()
    assert alerts_on.requests == 0
    assert tick.skip_reason is not None and tick.skip_reason.startswith("Nothing to report.")


def test_a_daily_file_that_never_arrives_alerts_once_and_is_overdue_at_0730(
    source_dir: Path,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    alerts_on: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FILE_OVERDUE_MINUTES", "100000")  # the event-driven table is not watched here
    # Days after today, so that files written now are older than the test's clock.
    today = dt.datetime.now(dt.UTC).date()
    morning = today + dt.timedelta(days=3)
    due, day_before = morning - dt.timedelta(days=1), morning - dt.timedelta(days=2)
    write_source_file(source_dir, f"{day_before}.csv", seed=1)
    alert_daemon = SensorDaemon(instance, defs, sensor_name="alert_sensor")
    freshness = defs.resolve_sensor_def("freshness_checks_sensor")

    def check_freshness() -> dg.RunRequest | dg.SkipReason:
        """One tick of freshness_checks_sensor, and the run it asks for, as the daemon would."""
        request = freshness(dg.build_sensor_context(instance=instance, definitions=defs))
        if isinstance(request, dg.RunRequest):
            keys = set(request.asset_check_keys or [])
            job = defs.resolve_implicit_job_def_def_for_assets([key.asset_key for key in keys])
            job.get_subset(asset_check_selection=keys, asset_selection=set()).execute_in_process(
                instance=instance
            )
        return request

    def at(hour: int, minute: int) -> time_machine.travel:
        return time_machine.travel(dt.datetime.combine(morning, dt.time(hour, minute), tzinfo=dt.UTC))

    with at(5, 15):
        alert_daemon.tick()
        assert run_daily(defs, instance, day_before.isoformat()).success
        assert isinstance(check_freshness(), dg.RunRequest)  # first evaluation: fresh until 07:30
        assert latest_result(instance, FRESHNESS_CHECK).passed
        job = job_with_retries(defs, dg.RetryPolicy(max_retries=2, delay=0.1))
        assert not job.execute_in_process(
            partition_key=due.isoformat(), instance=instance, raise_on_error=False
        ).success
        alert_daemon.tick()
    (failure,) = alerts_on.texts
    assert failure.splitlines()[:4] == [
        f"late_file_test_job failed for partition {due}",
        f"Partition: {due}",
        f"File: {source_dir / f'{due}.csv'}",
        f"Error: step import_partition_file: {due}.csv has not arrived in {source_dir}.",
    ]

    with at(7, 29):
        assert isinstance(check_freshness(), dg.SkipReason)  # not due yet
        alert_daemon.tick()
    assert latest_result(instance, FRESHNESS_CHECK).passed
    assert len(alerts_on.received) == 1

    with at(7, 31):
        assert isinstance(check_freshness(), dg.RunRequest)
        alert_daemon.tick()
        alert_daemon.tick()
    result = latest_result(instance, FRESHNESS_CHECK)
    assert result is not None and not result.passed
    assert f"We expected partition {due}" in (result.description or "")
    assert len(alerts_on.received) == 2
    assert alerts_on.texts[1].splitlines() == [
        f"duckdb_partition_table is overdue: partition {due} was not loaded by {morning} 07:30 UTC",
        f"Partition: {due} · File: {source_dir / f'{due}.csv'}",
        "Error: freshness check freshness_check failed",
        "Asset: http://dagster.example:3000/assets/duckdb_partition_table?view=checks",
    ]


@pytest.mark.parametrize("down", ["port closed", "HTTP 500"])
def test_an_alert_waits_while_the_webhook_is_down_and_is_sent_once_across_a_restart(
    instance: dg.DagsterInstance, alerts_on: Webhook, alert_sensor: SensorDaemon, failed_load: str, down: str
) -> None:
    if down == "port closed":
        alerts_on.stop()
    else:
        alerts_on.answer = "error"

    for _ in range(3):
        reason = alert_sensor.tick().skip_reason or ""
        assert "1 alert(s) kept" in reason
        assert ("could not be reached" if down == "port closed" else "answered HTTP 500") in reason
        assert "secret-token" not in reason  # the webhook's path is its secret: never shown
    assert alerts_on.received == []

    # dagster dev restarts: the code is loaded again, the cursor read back from the instance.
    restarted = SensorDaemon(instance, cursor=alert_sensor.cursor, sensor_name="alert_sensor")
    if down == "port closed":
        alerts_on.start()
    alerts_on.answer = "ok"
    assert restarted.tick().skip_reason.startswith("1 alert(s) sent to http://127.0.0.1:")
    again = SensorDaemon(instance, cursor=restarted.cursor, sensor_name="alert_sensor")
    again.tick()
    again.tick()
    assert len(alerts_on.received) == 1
    assert "bad-c" in alerts_on.texts[0]


def test_a_webhook_that_hangs_ends_the_tick_at_its_timeout_and_is_logged(
    source_dir: Path,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    alerts_on: Webhook,
    alert_sensor: SensorDaemon,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK_TIMEOUT_SECONDS", "1")
    drop_bad_file(FolderLanding(source_dir))
    write_source_file(source_dir, "bad-d.csv", "")  # a second failed run: two alerts wait
    wait_until_settled(source_dir)
    SensorDaemon(instance, defs).run_until_idle()
    alerts_on.answer = "hang"

    capfd.readouterr()
    tick = alert_sensor.tick()

    # The tick ended while the webhook still held the request: it did not wait for an answer.
    assert alerts_on.hanging.is_set() and not alerts_on.release.is_set()
    assert alerts_on.requests == 1  # one attempt a tick, however many alerts wait
    assert "did not answer within 1 s: 2 alert(s) kept" in (tick.skip_reason or "")
    logged = capfd.readouterr().err  # the tick's log, as the sensor's page shows it under dagster dev
    assert "WARNING - The webhook at http://127.0.0.1:" in logged
    assert "did not answer within 1 s: 2 alert(s) kept" in logged

    alerts_on.release.set()
    alerts_on.answer = "ok"
    alert_sensor.tick()
    assert len(alerts_on.received) == 2


def test_without_a_webhook_url_alerts_are_off_and_say_so(
    source_dir: Path,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    webhook: Webhook,
) -> None:
    alert_daemon = SensorDaemon(instance, defs, sensor_name="alert_sensor")
    alert_daemon.tick()
    drop_bad_file(FolderLanding(source_dir))
    SensorDaemon(instance, defs).run_until_idle()

    reason = alert_daemon.tick().skip_reason or ""
    assert reason.startswith("Alerts are off: ALERT_WEBHOOK_URL is not set (1 not sent).")
    assert webhook.requests == 0


def test_a_webhook_url_that_is_not_http_fails_the_tick_without_losing_the_alert(
    alerts_on: Webhook, alert_sensor: SensorDaemon, failed_load: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "hooks.example.com/T000/B000/xyz")
    with pytest.raises(dg.Failure, match="ALERT_WEBHOOK_URL cannot be used: it is not an http"):
        alert_sensor.tick()

    monkeypatch.setenv("ALERT_WEBHOOK_URL", alerts_on.url)
    alert_sensor.tick()
    assert len(alerts_on.received) == 1


@dataclass
class RetriedRun:
    instance: dg.DagsterInstance
    alert_sensor: SensorDaemon
    job: dg.JobDefinition
    run_id: str


@pytest.fixture
def retried_run(defs: dg.Definitions, alerts_on: Webhook) -> Iterator[RetriedRun]:
    """An instance with Dagster's run retries on (one retry), the alert sensor started on it, and a daily
    run whose file has not arrived, failed, that Dagster says it will retry: no alert for it."""
    with dg.instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 1}}) as instance:
        alert_daemon = SensorDaemon(instance, defs, sensor_name="alert_sensor")
        alert_daemon.tick()
        job = job_with_retries(defs, dg.RetryPolicy(max_retries=0))
        first = job.execute_in_process(partition_key="2018-01-22", instance=instance, raise_on_error=False)
        assert instance.get_run_by_id(first.run_id).tags["dagster/will_retry"] == "true"
        alert_daemon.tick()
        assert alerts_on.requests == 0
        yield RetriedRun(instance, alert_daemon, job, first.run_id)


def test_a_run_that_dagster_will_retry_alerts_nothing_and_one_with_no_retry_left_does(
    source_dir: Path, retried_run: RetriedRun, alerts_on: Webhook
) -> None:
    instance, alert_daemon, job = retried_run.instance, retried_run.alert_sensor, retried_run.job
    # Its retry finds the file, and succeeds: nothing was, or is, sent about the failure before.
    write_source_file(source_dir, "2018-01-22.csv", seed=1)
    retry = {"dagster/parent_run_id": retried_run.run_id, "dagster/root_run_id": retried_run.run_id}
    assert job.execute_in_process(partition_key="2018-01-22", instance=instance, tags=retry).success
    alert_daemon.tick()
    assert alerts_on.requests == 0

    # A run with no retry left fails for good: that is said, once.
    no_retry = {"dagster/max_retries": "0"}
    last = job.execute_in_process(
        partition_key="2018-01-23", instance=instance, raise_on_error=False, tags=no_retry
    )
    assert instance.get_run_by_id(last.run_id).tags["dagster/will_retry"] == "false"
    alert_daemon.tick()
    alert_daemon.tick()
    (text,) = alerts_on.texts
    assert last.run_id in text and "2018-01-23" in text


def test_a_file_waiting_too_long_turns_the_event_driven_table_overdue_once_until_loaded(
    landing: FolderLanding | BucketLanding,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    alerts_on: Webhook,
    alert_sensor: SensorDaemon,
) -> None:
    landing.write("vendor-b.csv", seed=2)
    landing.wait_until_settled()
    SensorDaemon(instance, defs).run_until_idle()  # vendor-b is loaded
    waiting = landing.write("vendor-a.csv", seed=1)  # and vendor-a is not, for two hours
    two_hours_on = time.time() + 2 * 3600 + 30

    with time_machine.travel(two_hours_on):
        alert_sensor.tick()
        result = latest_result(instance, WAITING_CHECK)
        assert result is not None and not result.passed
        assert result.metadata["waiting_files"].value == 1
        (listed,) = result.metadata["files"].value.records
        assert listed.data == {"partition": "vendor-a", "file": str(waiting), "waiting_minutes": 120}
        (text,) = alerts_on.texts
        assert text.splitlines() == [
            "duckdb_dynamic_partition_table is overdue: 1 file(s) waited more than 60 min without being"
            " loaded",
            f"Partition: vendor-a · File: {waiting} (waiting 120 min)",
            "Error: not loaded at its current version within 60 min (FILE_OVERDUE_MINUTES); is"
            " dynamic_sensor running, and did its runs succeed?",
            "Asset: http://dagster.example:3000/assets/duckdb_dynamic_partition_table?view=checks",
        ]

        alert_sensor.tick()  # still waiting: said once
        assert len(alerts_on.received) == 1

        SensorDaemon(instance, defs).run_until_idle()
        alert_sensor.tick()
        result = latest_result(instance, WAITING_CHECK)
        assert result is not None and result.passed
        assert len(alerts_on.received) == 1


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://alice:S3CRETPW@127.0.0.1:{port}/hooks/tok", "user name or password"),
        ("http://127.0.0.1:{port}/hooks/secret-token x", "spaces or control characters"),
        ("http://127.0.0.1:+{port}/hooks/secret-token", "port"),
        ("ftp://127.0.0.1:{port}/hooks/secret-token", "not an http"),
    ],
)
def test_a_webhook_url_that_cannot_work_fails_the_tick_without_repeating_its_secret(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    problem: str,
) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK_URL", url.format(port=webhook.port))
    with pytest.raises(dg.Failure) as failed:
        SensorDaemon(instance, defs, sensor_name="alert_sensor").tick()
    message = str(failed.value)
    assert problem in message
    assert "S3CRETPW" not in message and "hooks/tok" not in message and "secret-token" not in message
    assert webhook.requests == 0


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ("redirect", "answered HTTP 301 (a redirect: set the URL it points to)"),
        ("garbage", "could not be reached (BadStatusLine)"),
        ("drip", "did not answer within 1 s"),
    ],
)
def test_a_webhook_that_redirects_or_answers_badly_keeps_the_alert(
    alerts_on: Webhook,
    alert_sensor: SensorDaemon,
    failed_load: str,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    said: str,
) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK_TIMEOUT_SECONDS", "1")
    alerts_on.answer = answer

    reason = alert_sensor.tick().skip_reason or ""
    assert f"{said}: 1 alert(s) kept" in reason
    if answer == "drip":  # the tick gave up while the answer was still coming, a byte at a time
        assert alerts_on.hanging.is_set() and not alerts_on.release.is_set()
    assert alerts_on.received == [] and alerts_on.requests == 1  # no GET to the redirect's target

    alerts_on.release.set()
    alerts_on.answer = "ok"
    alert_sensor.tick()
    assert len(alerts_on.received) == 1


def test_a_failure_with_metadata_of_another_shape_is_still_reported(
    instance: dg.DagsterInstance, alerts_on: Webhook, alert_sensor: SensorDaemon
) -> None:
    @dg.op
    def odd_failure() -> None:
        raise dg.Failure("odd", metadata={"failed_partitions": {"not": "a list"}, "path": "/x.csv"})

    @dg.op
    def odder_failure() -> None:
        raise dg.Failure("odder", metadata={"failed_partitions": ["a.csv", {"file": "b.csv"}]})

    for op in (odd_failure, odder_failure):
        result = (
            dg.GraphDefinition(name=f"{op.name}_job", node_defs=[op])
            .to_job()
            .execute_in_process(instance=instance, raise_on_error=False)
        )
        assert not result.success
    alert_sensor.tick()
    assert [text.splitlines()[0] for text in alerts_on.texts] == [
        "odd_failure_job failed",
        "odder_failure_job failed",
    ]
    assert "Error: step odd_failure: odd" in alerts_on.texts[0]


def test_a_retry_that_dagster_could_not_launch_is_reported_as_a_failure_for_good(
    retried_run: RetriedRun, alerts_on: Webhook
) -> None:
    # The retry daemon marks the run so when it cannot launch the retry.
    retried_run.instance.add_run_tags(retried_run.run_id, {"dagster/will_retry": "false"})
    retried_run.alert_sensor.tick()
    retried_run.alert_sensor.tick()
    (text,) = alerts_on.texts
    assert retried_run.run_id in text


def test_more_files_waiting_than_the_cursor_remembers_are_announced_once(
    source_dir: Path, instance: dg.DagsterInstance, alerts_on: Webhook, alert_sensor: SensorDaemon
) -> None:
    for index in range(1003):
        (source_dir / f"f{index:05d}.csv").write_text(sample_csv(seed=index, rows=1))
    with time_machine.travel(time.time() + 3 * 3600):
        for _ in range(3):
            alert_sensor.tick()
    (text,) = alerts_on.texts
    assert text.startswith("duckdb_dynamic_partition_table is overdue: 1003 file(s) waited more than")
    assert len(alert_sensor.cursor or "") < 20_000

"""`dynamic_sensor` in notification mode (`SOURCE_QUEUE_URL`), ticked as the daemon ticks it: a bucket on
moto's server sends its event notifications to a queue, and the sensor reads the queue instead of listing
the prefix, except on its first tick and for the reconciliation listing."""

import json
import time

import dagster as dg
import pytest

from dagster_and_etl.ingest import source_bucket, source_tick
from dagster_and_etl.testing import SensorDaemon, launched_partition_keys
from tests.landing import S3Server
from tests.support import holding_database, rows_per_partition, sample_csv
from tests.test_exactly_once import loads_per_version
from tests.test_s3_notifications import NotifiedBucket


@pytest.fixture(name="notified")
def notified_fixture(s3_settings: S3Server, monkeypatch: pytest.MonkeyPatch) -> NotifiedBucket:
    """A bucket whose notifications go to a queue, with SOURCE_DIR and SOURCE_QUEUE_URL pointing at them;
    the reconciliation listing off unless a test turns it on."""
    notified = NotifiedBucket(s3_settings)
    monkeypatch.setenv("SOURCE_DIR", notified.landing.uri)
    monkeypatch.setenv("SOURCE_QUEUE_URL", notified.queue_url)
    monkeypatch.setenv("SOURCE_RECONCILE_MINUTES", "0")
    # A message whose version a tick requested comes back after a second, not two minutes, to be deleted.
    monkeypatch.setattr(source_tick, "VISIBILITY_SECONDS", 1)
    return notified


@pytest.fixture
def daemon(instance: dg.DagsterInstance, defs: dg.Definitions) -> SensorDaemon:
    return SensorDaemon(instance, defs)


def first_listing(daemon: SensorDaemon) -> None:
    """The sensor's first tick: a listing of the empty prefix, as in listing mode."""
    assert daemon.tick().launched == []
    assert json.loads(daemon.cursor or "{}").get("listed_ns")


def land(notified: NotifiedBucket, texts: dict[str, str | None]) -> None:
    """Puts objects (sample rows where the text is None) and waits until they have settled."""
    for name, text in texts.items():
        notified.landing.write(name, text)
    notified.landing.wait_until_settled()


def queued(notified: NotifiedBucket) -> int:
    """How many messages the queue holds, visible or not."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = notified.sqs.get_queue_attributes(QueueUrl=notified.queue_url, AttributeNames=names)
    return sum(int(found["Attributes"][name]) for name in names)


def lose_events(notified: NotifiedBucket) -> None:
    """Deletes every message the queue holds, as a queue that loses events would."""
    notified.queue.delete([m.receipt_handle for m in notified.receive_all()])


def reconcile(daemon: SensorDaemon, monkeypatch: pytest.MonkeyPatch, ticks: int) -> list[tuple[list, str]]:
    """With the reconciliation listing due (the last listing an hour ago), `ticks` ticks: what each
    launched, and where its cursor says the listing has got to (None once it is done)."""
    monkeypatch.setenv("SOURCE_RECONCILE_MINUTES", "60")
    daemon.cursor = json.dumps({**json.loads(daemon.cursor or "{}"), "listed_ns": 1})
    seen = []
    for _ in range(ticks):
        keys = daemon.tick().partition_keys
        seen.append((keys, json.loads(daemon.cursor or "{}").get("reconciling")))
    return seen


def drain(notified: NotifiedBucket, daemon: SensorDaemon) -> None:
    """Once the messages left hidden for the versions requested are back, ticks find each dealt with and
    delete it, requesting nothing, until the queue is empty."""
    for _ in range(20):
        time.sleep(source_tick.VISIBILITY_SECONDS + 0.1)
        assert daemon.tick().launched == []
        if queued(notified) == 0:
            return
    raise AssertionError(f"{queued(notified)} message(s) still queued after 20 ticks")


def test_objects_announced_by_the_queue_are_loaded_once_per_version(
    notified: NotifiedBucket, daemon: SensorDaemon, duckdb_path
) -> None:
    first_listing(daemon)
    land(notified, {"a.csv": None, "b.csv": sample_csv(seed=2)})

    assert sorted(launched_partition_keys(daemon.run_until_idle())) == ["a", "b"]

    # `a` rewritten, `b` put again with the same bytes: only `a`'s new version is due.
    land(notified, {"a.csv": sample_csv(seed=7, rows=3), "b.csv": sample_csv(seed=2)})
    assert launched_partition_keys(daemon.run_until_idle()) == ["a"]
    assert rows_per_partition(duckdb_path) == {"a": 3, "b": 10}
    assert set(loads_per_version(duckdb_path).values()) == {1}
    drain(notified, daemon)


def test_duplicate_and_late_events_load_nothing_twice_nor_an_old_version(
    notified: NotifiedBucket, daemon: SensorDaemon, duckdb_path
) -> None:
    first_listing(daemon)
    land(notified, {"a.csv": sample_csv(seed=1)})
    land(notified, {"a.csv": sample_csv(seed=2, rows=4)})
    # The first version's event once more, after the second's: late, and a duplicate.
    notified.sqs.send_message(QueueUrl=notified.queue_url, MessageBody=notified.created_event(["a.csv"]))

    ticks = daemon.run_until_idle()

    assert launched_partition_keys(ticks) == ["a"]  # the current version, once
    assert rows_per_partition(duckdb_path) == {"a": 4}
    assert set(loads_per_version(duckdb_path).values()) == {1}
    drain(notified, daemon)


def test_a_deleted_object_changes_nothing_loaded(
    notified: NotifiedBucket, daemon: SensorDaemon, duckdb_path
) -> None:
    first_listing(daemon)
    land(notified, {"a.csv": None, "b.csv": None})
    daemon.run_until_idle()
    notified.landing.delete("a.csv")
    land(notified, {"c.csv": None})  # created after the removal

    assert launched_partition_keys(daemon.run_until_idle()) == ["c"]
    assert rows_per_partition(duckdb_path) == {"a": 10, "b": 10, "c": 10}
    drain(notified, daemon)


def test_messages_back_for_versions_requested_are_deleted_while_a_load_holds_the_database(
    notified: NotifiedBucket, daemon: SensorDaemon, duckdb_path
) -> None:
    first_listing(daemon)
    land(notified, {"a.csv": None})
    assert launched_partition_keys(daemon.run_until_idle()) == ["a"]
    with holding_database(duckdb_path):
        # The cursor says `a`'s version is requested: no need to read the load history to delete it.
        drain(notified, daemon)


def test_an_object_the_queue_lost_is_found_by_the_reconciliation_listing_and_nothing_twice(
    notified: NotifiedBucket, daemon: SensorDaemon, duckdb_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_listing(daemon)
    land(notified, {"announced.csv": None})
    assert launched_partition_keys(daemon.run_until_idle()) == ["announced"]
    land(notified, {"lost.csv": None})
    lose_events(notified)

    assert launched_partition_keys(daemon.run_until_idle()) == []  # the queue is read, not the prefix
    assert rows_per_partition(duckdb_path) == {"announced": 10}

    monkeypatch.setenv("SOURCE_RECONCILE_MINUTES", "0.001")  # a listing is due 60 ms after the last
    time.sleep(0.1)
    ticks = daemon.run_until_idle()

    # The listing finds the lost object; the one loaded from its notification is not requested again.
    assert launched_partition_keys(ticks) == ["lost"]
    assert rows_per_partition(duckdb_path) == {"announced": 10, "lost": 10}
    assert set(loads_per_version(duckdb_path).values()) == {1}


def test_a_reconciliation_lists_a_part_of_the_prefix_each_tick_until_the_end(
    notified: NotifiedBucket, daemon: SensorDaemon, duckdb_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prefix longer than a tick may list: the reconciliation goes on where the last tick stopped, in
    key order, finds the objects whose events were lost wherever they lie, and loads nothing twice."""
    monkeypatch.setattr(source_bucket, "PAGE_SIZE", 3)
    monkeypatch.setattr(source_tick, "LIST_SECONDS", 0)  # one page a tick
    monkeypatch.delenv("SENSOR_MAX_BATCH")  # the project's batches: the first three load in one run
    first_listing(daemon)
    land(notified, dict.fromkeys(["k0.csv", "k1.csv", "k2.csv"]))
    assert sorted(launched_partition_keys(daemon.run_until_idle())) == ["k0", "k1", "k2"]
    drain(notified, daemon)
    # Two objects, and one in a subfolder (not the source's), whose events the queue loses.
    land(notified, {"lost-a.csv": None, "lost-b.csv": None, "sub/x.csv": None})
    lose_events(notified)

    parts = reconcile(daemon, monkeypatch, ticks=3)

    # Three entries a page, and a part ends before the last page's file whose key may have another name
    # on the next page (`k2.csv.gz`, say): k0 k1 (k2) | k2 lost-a (lost-b) | lost-b sub/, the subfolder
    # ending the listing.
    prefix = notified.landing.prefix
    assert parts == [([], f"{prefix}k1.csv"), (["lost-a"], f"{prefix}lost-a.csv"), (["lost-b"], None)]
    assert daemon.tick().launched == []  # the queue is read again, and the next listing is an hour away
    assert rows_per_partition(duckdb_path) == dict.fromkeys(["k0", "k1", "k2", "lost-a", "lost-b"], 10)
    assert set(loads_per_version(duckdb_path).values()) == {1}


def test_a_reconciliation_cut_by_the_runs_per_tick_limit_lists_the_waiting_files_again(
    notified: NotifiedBucket, daemon: SensorDaemon, duckdb_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three lost objects on one page, one run a tick: each tick requests the next, and the listing ends
    only once none waits."""
    monkeypatch.setenv("SENSOR_MAX_RUNS_PER_TICK", "1")
    first_listing(daemon)
    land(notified, {"lost-a.csv": None, "lost-b.csv": None, "lost-c.csv": None})
    lose_events(notified)

    requested, listing = zip(*reconcile(daemon, monkeypatch, ticks=3), strict=True)

    assert sorted(key for keys in requested for key in keys) == ["lost-a", "lost-b", "lost-c"]
    assert [len(keys) for keys in requested] == [1, 1, 1]
    assert listing[-1] is None and all(marker is not None for marker in listing[:-1])
    assert rows_per_partition(duckdb_path) == dict.fromkeys(["lost-a", "lost-b", "lost-c"], 10)
    assert set(loads_per_version(duckdb_path).values()) == {1}


def test_a_reset_cursor_lists_once_and_requests_nothing_already_loaded(
    notified: NotifiedBucket, daemon: SensorDaemon, duckdb_path
) -> None:
    first_listing(daemon)
    land(notified, {"a.csv": None, "b.csv": None})
    daemon.run_until_idle()

    daemon.cursor = None  # `dagster sensor cursor dynamic_sensor --delete`
    land(notified, {"c.csv": None})  # lands while the cursor is gone

    ticks = daemon.run_until_idle()
    assert launched_partition_keys(ticks) == ["c"]
    assert set(loads_per_version(duckdb_path).values()) == {1}
    drain(notified, daemon)  # `c`'s message finds it requested by the listing


def test_a_tick_whose_result_was_never_stored_loses_nothing_and_loads_nothing_twice(
    notified: NotifiedBucket,
    daemon: SensorDaemon,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    duckdb_path,
) -> None:
    first_listing(daemon)
    land(notified, {"a.csv": None})
    # The daemon stops after evaluating a tick, before storing its result: no run, no cursor kept.
    assert daemon.evaluate().run_requests
    land(notified, {"b.csv": None})

    restarted = SensorDaemon(instance, defs, cursor=daemon.cursor)
    ticks = []
    # `a` is found again only by its message, which comes back after its visibility timeout.
    while len(launched_partition_keys(ticks)) < 2:
        ticks.append(restarted.tick())
        assert len(ticks) < 60, "a's message never came back"

    assert sorted(launched_partition_keys(ticks)) == ["a", "b"]
    assert rows_per_partition(duckdb_path) == {"a": 10, "b": 10}
    assert set(loads_per_version(duckdb_path).values()) == {1}
    drain(notified, restarted)


def test_a_thousand_and_five_events_are_read_over_many_calls_in_one_tick(
    notified: NotifiedBucket, daemon: SensorDaemon, duckdb_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")  # the project's limits: up to 10,000 messages a tick
    monkeypatch.setattr(source_tick, "VISIBILITY_SECONDS", 10)  # longer than receiving them all takes
    first_listing(daemon)
    names = [f"k{index}.csv" for index in range(5)]
    land(notified, dict.fromkeys(names))
    # 1,000 more events for the same five objects, five to a message, as a busy bucket's duplicates:
    # 1,005 events in 205 messages, which SQS hands out at most 10 a call. (More messages than that
    # make moto's server, which counts every message for each call, too slow for the suite.)
    body = notified.created_event(names)
    for _ in range(20):
        entries = [{"Id": str(index), "MessageBody": body} for index in range(10)]
        notified.sqs.send_message_batch(QueueUrl=notified.queue_url, Entries=entries)

    tick = daemon.tick()

    assert sorted(tick.partition_keys) == [name.removesuffix(".csv") for name in names]
    assert len(tick.launched) == 1  # one run for the five
    assert rows_per_partition(duckdb_path) == {name.removesuffix(".csv"): 10 for name in names}
    drain(notified, daemon)  # the 205 messages come back, and are deleted over many calls


def test_a_message_that_is_not_a_notification_is_logged_and_deleted(
    notified: NotifiedBucket, daemon: SensorDaemon, capfd: pytest.CaptureFixture
) -> None:
    first_listing(daemon)
    message_id = notified.sqs.send_message(QueueUrl=notified.queue_url, MessageBody="hello")["MessageId"]
    land(notified, {"a.csv": None})

    tick = daemon.tick()

    assert tick.partition_keys == ["a"]
    logged = capfd.readouterr().err  # the sensor's log, as the daemon would keep it with the tick
    assert f"Message {message_id} in {notified.queue_url} is not an S3 event notification" in logged
    drain(notified, daemon)


def test_a_missing_queue_fails_the_tick_naming_it_and_deletes_nothing(
    notified: NotifiedBucket, daemon: SensorDaemon, monkeypatch: pytest.MonkeyPatch, s3_settings: S3Server
) -> None:
    first_listing(daemon)
    cursor = daemon.cursor
    missing = f"{s3_settings.endpoint_url}/123456789012/no-such-queue"
    monkeypatch.setenv("SOURCE_QUEUE_URL", missing)

    with pytest.raises(dg.Failure) as raised:
        daemon.tick()

    assert raised.value.description == f"Cannot read the queue {missing}: the queue does not exist."
    assert daemon.cursor == cursor


def test_a_missing_queue_fails_the_first_tick_before_it_lists(
    notified: NotifiedBucket, daemon: SensorDaemon, monkeypatch: pytest.MonkeyPatch, s3_settings: S3Server
) -> None:
    """The tick that turns the sensor on already says the queue is wrong, and registers nothing."""
    missing = f"{s3_settings.endpoint_url}/123456789012/no-such-queue"
    monkeypatch.setenv("SOURCE_QUEUE_URL", missing)
    land(notified, {"a.csv": None})

    with pytest.raises(dg.Failure) as raised:
        daemon.tick()

    assert raised.value.description == f"Cannot read the queue {missing}: the queue does not exist."
    assert daemon.cursor is None and daemon.instance.get_dynamic_partitions("dynamic_partition") == []

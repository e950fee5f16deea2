"""Notification mode's planning (`ingest/notification_plan.py`) on real messages: a bucket on moto's server
notifies a queue, and the planner reads the objects' current versions from the bucket. The load history is
given as plain values, as the sensor reads it from DuckDB."""

import pytest

from dagster_and_etl.ingest.notification_plan import BucketView, NotifiedTick, plan_notified
from dagster_and_etl.ingest.sensor_cursor import SensorCursor, version_mark
from dagster_and_etl.ingest.sensor_plan import RegisteredKeys, TickRules
from dagster_and_etl.ingest.source_bucket import BucketSource
from tests.landing import S3Server
from tests.test_s3_notifications import PREFIX, NotifiedBucket

SECOND = 1_000_000_000


@pytest.fixture
def notified(s3_server: S3Server) -> NotifiedBucket:
    notified = NotifiedBucket(s3_server)
    notified.receive_all()  # S3's test event, sent when the notification was set up
    return notified


def view(notified: NotifiedBucket) -> BucketView:
    landing = notified.landing
    source = BucketSource(landing.bucket, PREFIX, lambda: landing.s3)
    return BucketView(source.bucket, source.prefix, source.slack_ns, source.info)


class Registered:
    """Registered keys as the instance gives them, noting each time the planner read all of them."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys, self.read_all = keys, 0

    def all(self) -> tuple[str, ...]:
        self.read_all += 1
        return self.keys

    def among(self, keys: list[str]) -> set[str]:
        return set(keys) & set(self.keys)


def plan(
    notified: NotifiedBucket,
    cursor: SensorCursor | None = None,
    rules: TickRules | None = None,
    registered: tuple[str, ...] | Registered = (),
    loaded: dict[str, str] | None = None,
) -> tuple[NotifiedTick, list]:
    notified.landing.wait_until_settled()  # by the bucket's clock, past the slack of its whole seconds
    messages = notified.receive_all(hidden_seconds=60)
    known = registered if isinstance(registered, Registered) else Registered(registered)
    tick = plan_notified(
        messages,
        view(notified),
        cursor or SensorCursor(horizon_ns=1),
        rules or TickRules(),
        RegisteredKeys(known.all, known.among),
        lambda keys: {key: version for key, version in (loaded or {}).items() if key in keys},
    )
    return tick, messages


def requested(tick: NotifiedTick) -> list[str]:
    return [f.partition_key for f in tick.plan.to_request]


def test_new_objects_are_registered_and_requested_and_their_messages_kept_hidden(
    notified: NotifiedBucket,
) -> None:
    notified.landing.write("b.csv", seed=1)
    notified.landing.wait_until_settled()  # S3 stamps whole seconds: `a` a second later than `b`
    notified.landing.write("a.csv", seed=2)

    tick, messages = plan(notified, rules=TickRules(max_batch=500), registered=("x",))

    assert requested(tick) == ["b", "a"]  # new keys after the registered ones, oldest first
    assert tick.plan.new_partition_keys == ["b", "a"]
    assert [batch.partition_keys for batch in tick.plan.batches] == [["b", "a"]]
    # The messages that requested `a` and `b` stay hidden until Dagster has stored the requests; S3's
    # test event, long received, is not among them.
    assert tick.delete == tick.release == []
    assert len(messages) == 2


def test_new_objects_alone_never_read_every_registered_key_but_a_rewrite_does(
    notified: NotifiedBucket,
) -> None:
    """A bucket with many partitions registered: a tick that finds only new objects asks about its own
    keys; one that finds a registered key rewritten reads the order its batch must follow."""
    registered = Registered(tuple(f"old-{index}" for index in range(1_000)))
    notified.landing.write("new.csv", seed=1)

    tick, _ = plan(notified, rules=TickRules(max_batch=500), registered=registered)

    assert requested(tick) == ["new"] and tick.plan.new_partition_keys == ["new"]
    assert registered.read_all == 0
    notified.landing.write("old-7.csv", seed=2)
    notified.landing.write("old-8.csv", seed=3)
    notified.landing.write("old-10.csv", seed=4)

    tick, _ = plan(notified, rules=TickRules(max_batch=500), registered=registered)

    assert registered.read_all == 1
    # In the order registered: 7 and 8 are neighbours, 10 is not, so two runs.
    assert [batch.partition_keys for batch in tick.plan.batches] == [["old-7", "old-8"], ["old-10"]]
    assert tick.plan.new_partition_keys == []


def test_the_version_requested_is_the_one_in_the_bucket_whatever_order_the_events_came_in(
    notified: NotifiedBucket,
) -> None:
    notified.landing.write("a.csv", seed=1)
    notified.landing.write("a.csv", seed=2)  # two events for one key; the first names a version gone
    current = view(notified).info(["a"])["a"]

    tick, messages = plan(notified)

    assert len(messages) == 2 and [f.version for f in tick.plan.to_request] == [current.version]
    assert tick.plan.cursor.requested == {"a": version_mark(current.version)}
    assert tick.delete == tick.release == []  # both name the version requested: kept hidden for now


def test_a_duplicate_event_for_a_version_requested_or_loaded_requests_nothing(
    notified: NotifiedBucket,
) -> None:
    notified.landing.write("a.csv", seed=1)
    first, _ = plan(notified)
    version = first.plan.to_request[0].version

    notified.sqs.send_message(QueueUrl=notified.queue_url, MessageBody=notified.created_event(["a.csv"]))
    under_way, messages = plan(notified, cursor=first.plan.cursor, registered=("a",))
    assert requested(under_way) == [] and under_way.delete == [messages[0].receipt_handle]
    assert under_way.plan.cursor.requested == {"a": version_mark(version)}  # still under way

    # Loaded since: a version requested by an earlier tick and not by the cursor is found in the load
    # history, and its mark let go.
    notified.sqs.send_message(QueueUrl=notified.queue_url, MessageBody=notified.created_event(["a.csv"]))
    forgotten = SensorCursor(horizon_ns=1)
    loaded, messages = plan(notified, cursor=forgotten, registered=("a",), loaded={"a": version})
    assert requested(loaded) == [] and loaded.delete == [messages[0].receipt_handle]
    assert loaded.plan.cursor.requested == {}  # loaded: nothing to remember


def test_a_removal_or_another_prefixs_object_is_deleted_and_changes_nothing(
    notified: NotifiedBucket,
) -> None:
    notified.landing.write("a.csv", seed=1)
    notified.landing.delete("a.csv")
    notified.landing.s3.put_object(Bucket=notified.landing.bucket, Key="elsewhere/b.csv", Body=b"x")
    notified.landing.write("sub/c.csv", seed=1)

    tick, messages = plan(notified)

    assert len(messages) == 4 and requested(tick) == [] and tick.plan.new_partition_keys == []
    assert sorted(tick.delete) == sorted(m.receipt_handle for m in messages) and tick.release == []


def test_an_object_still_settling_or_left_waiting_keeps_its_message_for_a_later_tick(
    notified: NotifiedBucket,
) -> None:
    for name in ("a.csv", "b.csv", "c.csv"):
        notified.landing.write(name, seed=1)

    settling, messages = plan(notified, rules=TickRules(settle_ns=3600 * SECOND))
    assert requested(settling) == [] and len(settling.plan.settling) == 3 and settling.delete == []
    assert sorted(settling.release) == sorted(m.receipt_handle for m in messages)

    notified.queue.delete([m.receipt_handle for m in messages])
    for name in ("a.csv", "b.csv", "c.csv"):
        notified.landing.write(name, seed=2)
    limited, messages = plan(notified, rules=TickRules(max_batch=1, max_runs=1))
    (first,) = limited.plan.batches
    assert [f.partition_key for f in limited.plan.waiting] == sorted({"a", "b", "c"} - {first.first_key})
    by_key = {m.notification.events[0].key: m.receipt_handle for m in messages}
    assert limited.delete == []  # the first key's message stays hidden: its version is requested
    assert sorted(limited.release) == sorted(
        h for k, h in by_key.items() if k != PREFIX + first.first_key + ".csv"
    )


def test_a_message_that_is_not_a_notification_is_deleted_and_reported(notified: NotifiedBucket) -> None:
    notified.sqs.send_message(QueueUrl=notified.queue_url, MessageBody="hello")

    tick, (message,) = plan(notified)

    assert tick.poison == [message] and tick.delete == [message.receipt_handle]

"""A bucket's event notifications read from SQS (`ingest/s3_events.py`, `ingest/notification_queue.py`),
on moto's server over HTTP, which delivers the bucket's notifications to the queue as S3 does."""

import json
import time
import uuid

import boto3
import dagster as dg
import pytest
from botocore.config import Config

from dagster_and_etl.defs.resources import SourceFiles
from dagster_and_etl.ingest.notification_queue import NotificationQueue
from dagster_and_etl.ingest.s3_events import ObjectEvent, parse_message, source_key
from dagster_and_etl.ingest.source import SourceUnavailable
from tests.dagster_dev_process import free_port, wait_for
from tests.landing import BucketLanding, S3Server, _client_credentials
from tests.test_s3_source import iam_authentication

PREFIX = "landing/"


class NotifiedBucket:
    """A bucket of the test's own whose creations and removals are sent to a queue of its own."""

    def __init__(self, server: S3Server) -> None:
        self.landing = BucketLanding(server, f"test-{uuid.uuid4().hex[:16]}", PREFIX)
        self.sqs = boto3.client("sqs", endpoint_url=server.endpoint_url, **_client_credentials())
        self.queue_url = self.sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:16]}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        self.landing.s3.put_bucket_notification_configuration(
            Bucket=self.landing.bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": arn["Attributes"]["QueueArn"],
                        "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    }
                ]
            },
        )
        self.queue = NotificationQueue(self.queue_url, lambda: self.sqs)

    def receive_all(self, hidden_seconds: int = 30) -> list:
        return self.queue.receive(10_000, hidden_seconds, time.monotonic() + 60)

    def created_event(self, names: list[str]) -> str:
        """The body of an S3 notification announcing objects of the prefix, as S3 sends it: for a
        duplicate or late event sent by hand."""
        records = [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": self.landing.bucket}, "object": {"key": PREFIX + name}},
            }
            for name in names
        ]
        return json.dumps({"Records": records})

    def events(self) -> list[ObjectEvent]:
        return [event for message in self.receive_all() for event in message.notification.events]


@pytest.fixture
def notified(s3_server: S3Server) -> NotifiedBucket:
    return NotifiedBucket(s3_server)


def test_the_queue_hears_of_objects_created_and_removed_with_their_keys_decoded(
    notified: NotifiedBucket,
) -> None:
    notified.landing.write("vendor a+b.csv")  # a space and a plus: S3 sends `vendor+a%2Bb.csv`
    notified.landing.delete("vendor a+b.csv")

    events = notified.events()

    key = f"{PREFIX}vendor a+b.csv"
    bucket = notified.landing.bucket
    assert events == [ObjectEvent(bucket, key, created=True), ObjectEvent(bucket, key, created=False)]
    assert [source_key(event, bucket, PREFIX) for event in events] == ["vendor a+b"] * 2


def test_s3s_test_event_is_a_notification_with_no_events(notified: NotifiedBucket) -> None:
    """Setting up the bucket's notification sent S3's test event: nothing to do, and not a problem."""
    (message,) = notified.receive_all()
    assert message.notification.events == () and message.notification.problem is None
    assert parse_message('{"Service": "Amazon S3", "Event": "s3:TestEvent"}') == message.notification


def test_more_messages_than_one_call_returns_are_read_over_many_calls_oldest_first(
    notified: NotifiedBucket,
) -> None:
    notified.receive_all()  # the test event
    names = [f"2018-02-{day:02d}.csv" for day in range(1, 26)]
    for name in names:
        notified.landing.write(name)

    messages = notified.receive_all()

    assert len(messages) == 25  # SQS returns at most 10 a call
    assert sorted(event.key for m in messages for event in m.notification.events) == [
        PREFIX + n for n in names
    ]
    assert [m.sent_ms for m in messages] == sorted(m.sent_ms for m in messages)


def test_a_deleted_message_does_not_come_back_and_one_not_deleted_does(notified: NotifiedBucket) -> None:
    notified.receive_all()  # the test event, hidden for 30 s
    notified.landing.write("kept.csv")
    notified.landing.write("deleted.csv")
    kept, deleted = notified.receive_all(hidden_seconds=1)  # back after a second unless deleted

    notified.queue.delete([deleted.receipt_handle])

    again = wait_for(lambda: notified.receive_all(), 60, "the message not deleted to come back")
    assert [message.message_id for message in again] == [kept.message_id]
    assert again[0].notification.events[0].key == f"{PREFIX}kept.csv"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("hello", "the body is not JSON"),
        ('{"greeting": "hello"}', "the body is JSON, but has no S3 event records"),
        ('{"Records": [{"eventSource": "aws:sqs"}]}', "the body holds a record that is not an S3 event"),
        (
            '{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}',
            "the body holds an ObjectCreated:Put record without a bucket name and object key",
        ),
    ],
)
def test_a_message_that_is_not_an_s3_notification_says_why(
    notified: NotifiedBucket, body: str, problem: str
) -> None:
    notified.receive_all()  # the test event
    notified.sqs.send_message(QueueUrl=notified.queue_url, MessageBody=body)

    (message,) = notified.receive_all()

    assert message.notification.events == () and message.notification.problem == problem


def test_an_sns_envelope_is_opened_and_events_other_than_creation_and_removal_are_left_out() -> None:
    records = [
        {"eventSource": "aws:s3", "eventName": name, "s3": {"bucket": {"name": "b"}, "object": {"key": k}}}
        for name, k in [("ObjectCreated:Put", "in/a.csv"), ("ObjectRestore:Completed", "in/b.csv")]
    ]
    envelope = {"Type": "Notification", "Message": json.dumps({"Records": records})}

    notification = parse_message(json.dumps(envelope))

    assert notification.events == (ObjectEvent("b", "in/a.csv", created=True),)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("in/a.csv", "a"),
        ("in/sub/a.csv", None),  # a subfolder
        ("in/a.txt", None),  # another suffix
        ("in/.a.csv", None),  # a hidden file
        ("inbox/a.csv", None),  # another prefix
        ("other/a.csv", None),
    ],
)
def test_only_the_sources_own_objects_have_a_partition_key(key: str, expected: str | None) -> None:
    assert source_key(ObjectEvent("b", key, created=True), "b", "in/") == expected
    assert source_key(ObjectEvent("other-bucket", key, created=True), "b", "in/") is None


def test_a_missing_queue_fails_with_one_line_naming_it_and_the_cause(s3_server: S3Server) -> None:
    sqs = boto3.client("sqs", endpoint_url=s3_server.endpoint_url, **_client_credentials())
    url = f"{s3_server.endpoint_url}/123456789012/no-such-queue"
    queue = NotificationQueue(url, lambda: sqs)

    with pytest.raises(SourceUnavailable) as raised:
        queue.receive(10, 30, time.monotonic() + 60)

    assert str(raised.value) == f"Cannot read the queue {url}: the queue does not exist."


def test_an_unreachable_endpoint_fails_with_one_line_naming_the_queue(s3_server: S3Server) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    sqs = boto3.client(
        "sqs", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}), **_client_credentials()
    )
    url = f"{endpoint}/123456789012/landing-events"

    with pytest.raises(SourceUnavailable) as raised:
        NotificationQueue(url, lambda: sqs).receive(10, 30, time.monotonic() + 60)

    message = str(raised.value)
    assert message.startswith(f"Cannot read the queue {url}: the queue cannot be reached: ")
    assert "\n" not in message


def test_refused_credentials_fail_with_one_line_naming_the_queue(
    notified: NotifiedBucket, s3_server: S3Server
) -> None:
    with iam_authentication(s3_server), pytest.raises(SourceUnavailable) as raised:
        notified.queue.receive(10, 30, time.monotonic() + 60)

    refused = f"Cannot read the queue {notified.queue_url}: access was refused; check the credentials and"
    assert str(raised.value).startswith(refused)  # the code that follows is the server's own


def test_a_queue_whose_region_nothing_names_is_refused_before_any_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")  # no profile with a region either
    url = "http://127.0.0.1:9/123456789012/landing-events"
    files = SourceFiles(source_dir="s3://landing/incoming/", queue_url=url)

    with pytest.raises(dg.Failure, match=f"SOURCE_QUEUE_URL {url} names no region: set AWS_REGION"):
        _ = files.queue
    # An AWS queue's URL names its region.
    aws = "https://sqs.eu-west-1.amazonaws.com/123456789012/landing-events"
    assert SourceFiles(source_dir="s3://landing/incoming/", queue_url=aws).queue is not None

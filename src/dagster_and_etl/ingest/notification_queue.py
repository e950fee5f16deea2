"""The SQS queue that receives a bucket's event notifications (`SOURCE_QUEUE_URL`), read by the sensor.

A message received is hidden from other readers for a while (its visibility timeout) and comes back unless
it is deleted: the sensor deletes a message only once what it announced is held durably, so a tick that
fails, or a daemon that stops between receiving and deleting, loses nothing. SQS hands out at most 10
messages a call and may hand one out twice; the sensor is built for both.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dagster_and_etl.ingest.aws_errors import aws_cause, error_code, is_aws_error
from dagster_and_etl.ingest.s3_events import Notification, parse_message
from dagster_and_etl.ingest.source import SourceUnavailable

MAX_PER_CALL = 10  # SQS's own limit, for receiving and for deleting
QUEUE_MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


@dataclass(frozen=True)
class QueuedMessage:
    message_id: str
    receipt_handle: str  # what deletes this receipt of the message
    sent_ms: int  # when the message entered the queue, by SQS's clock
    notification: Notification


@dataclass(frozen=True)
class NotificationQueue:
    url: str
    client: Callable[[], Any]  # makes a boto3 SQS client

    def __str__(self) -> str:
        return self.url

    def _unavailable(self, doing: str, error: Exception) -> SourceUnavailable:
        missing = error_code(error) in QUEUE_MISSING
        cause = "the queue does not exist" if missing else aws_cause(error, "queue")
        return SourceUnavailable(f"Cannot {doing} the queue {self.url}: {cause}.")

    @contextmanager
    def _calling(self, doing: str) -> Iterator[None]:
        """An AWS error in the block fails the tick as `SourceUnavailable`, naming the queue and the cause."""
        try:
            yield
        except Exception as error:
            if is_aws_error(error):
                raise self._unavailable(doing, error) from error
            raise

    def check(self) -> None:
        """Fails, naming the queue and the cause, unless it can be reached: before a first listing, so a
        queue that is missing or refused fails the tick that turns the sensor on, not the one after."""
        with self._calling("read"):
            self.client().get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])

    def receive(self, most: int, hidden_seconds: int, deadline: float) -> list[QueuedMessage]:
        """Up to `most` messages, each hidden from other readers for `hidden_seconds`, oldest first;
        fewer once the queue answers with none or `deadline` (`time.monotonic()`) has passed."""
        sqs = self.client()
        received: dict[str, QueuedMessage] = {}
        while len(received) < most and time.monotonic() < deadline:
            with self._calling("read"):
                answer = sqs.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=min(MAX_PER_CALL, most - len(received)),
                    VisibilityTimeout=hidden_seconds,
                    WaitTimeSeconds=0 if received else 1,  # a long poll finds a message SQS holds elsewhere
                    MessageSystemAttributeNames=["SentTimestamp"],
                )
            messages = [_message(message) for message in answer.get("Messages", [])]
            # A message received earlier in this loop is back (its visibility timeout was shorter than
            # the loop): the queue has gone round. Its newest receipt is the one that deletes it.
            went_round = any(message.message_id in received for message in messages)
            received.update((message.message_id, message) for message in messages)
            if not messages or went_round:
                break
        return sorted(received.values(), key=lambda message: (message.sent_ms, message.message_id))

    def delete(self, receipt_handles: list[str]) -> None:
        """Deletes the messages received with these handles. A handle SQS no longer takes (its message
        came back and was received again meanwhile) is left: that receipt will be deleted instead."""
        self._batches("delete messages from", "delete_message_batch", receipt_handles, {})

    def release(self, receipt_handles: list[str]) -> None:
        """Makes the messages received with these handles visible again at once, for the next tick."""
        self._batches(
            "release messages to",
            "change_message_visibility_batch",
            receipt_handles,
            {"VisibilityTimeout": 0},
        )

    def _batches(self, doing: str, call: str, receipt_handles: list[str], extra: dict[str, Any]) -> None:
        """One of SQS's batch calls over the handles, at most 10 a call. Entries it refuses (a handle no
        longer valid) are left: what they name comes back, and is judged again."""
        if not receipt_handles:
            return
        sqs = self.client()
        for start in range(0, len(receipt_handles), MAX_PER_CALL):
            chunk = receipt_handles[start : start + MAX_PER_CALL]
            entries = [
                {"Id": str(index), "ReceiptHandle": handle, **extra} for index, handle in enumerate(chunk)
            ]
            with self._calling(doing):
                getattr(sqs, call)(QueueUrl=self.url, Entries=entries)


def _message(message: dict[str, Any]) -> QueuedMessage:
    sent = message.get("Attributes", {}).get("SentTimestamp", "0")
    return QueuedMessage(
        message["MessageId"], message["ReceiptHandle"], int(sent), parse_message(message.get("Body", ""))
    )


def queue_region(queue_url: str) -> str | None:
    """The region of a queue: the one an AWS queue's URL names, else boto3's own (AWS_DEFAULT_REGION,
    the profile), else AWS_REGION; None when none says."""
    import boto3  # here, for a bucket only, as dagster-aws is

    named = re.match(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com/", queue_url)
    return named[1] if named else boto3.session.Session().region_name or os.environ.get("AWS_REGION")


def sqs_client(region: str) -> Any:
    """boto3's SQS client, configured as the bucket's S3 client is (AWS_ENDPOINT_URL, the credential
    chain): dagster-aws has a resource for S3 but none for SQS."""
    import boto3

    return boto3.session.Session().client("sqs", region_name=region)

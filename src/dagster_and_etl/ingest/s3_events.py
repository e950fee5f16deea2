"""S3 event notifications, as an SQS queue hands them over: which source objects were created or removed.

A message's body is one of:
- a notification of S3: `{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
  "s3": {"bucket": {"name": ...}, "object": {"key": ..., "sequencer": ...}}}, ...]}`, the key URL-encoded
  with `+` for a space;
- S3's test event, `{"Event": "s3:TestEvent", ...}`, sent once when a bucket's notification is set up;
- either of them wrapped by SNS (`{"Type": "Notification", "Message": "<the same as text>"}`), when the
  bucket notifies a topic that the queue subscribes to.
Anything else is not an S3 notification, and says why. A notification only says which object to look at:
what version is there now is read from the bucket, as events arrive late, twice and out of order.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass

from dagster_and_etl.ingest.partition_keys import key_for_file_name


@dataclass(frozen=True)
class ObjectEvent:
    """One record of a notification: an object created (or overwritten) or removed."""

    bucket: str
    key: str  # decoded: as the object is named in the bucket
    created: bool  # ObjectCreated:*; False for ObjectRemoved:*


@dataclass(frozen=True)
class Notification:
    """What one message says: its object events (none for S3's test event), or why it is not an S3
    notification at all (`problem`)."""

    events: tuple[ObjectEvent, ...] = ()
    problem: str | None = None


def _record(record: object) -> ObjectEvent | str | None:
    """The event of one record; None for an S3 event that is neither a creation nor a removal (a
    restore, a tag); a string saying what is wrong with a record that is not an S3 event."""
    if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
        return "a record that is not an S3 event"
    name = str(record.get("eventName", ""))
    kind = name.removeprefix("s3:").split(":")[0]
    if kind not in ("ObjectCreated", "ObjectRemoved"):
        return None
    try:
        bucket = record["s3"]["bucket"]["name"]
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
    except (KeyError, TypeError):
        return f"an {name} record without a bucket name and object key"
    return ObjectEvent(str(bucket), key, created=kind == "ObjectCreated")


def _unwrapped(body: object) -> object:
    """The notification inside an SNS envelope; the body itself otherwise."""
    if isinstance(body, dict) and body.get("Type") == "Notification" and isinstance(body.get("Message"), str):
        try:
            return json.loads(body["Message"])
        except ValueError:
            return None
    return body


def parse_message(text: str) -> Notification:
    """The notification a message's body carries."""
    try:
        body = _unwrapped(json.loads(text))
    except ValueError:
        return Notification(problem="the body is not JSON")
    if isinstance(body, dict) and body.get("Event") == "s3:TestEvent":
        return Notification()
    records = body.get("Records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        return Notification(problem="the body is JSON, but has no S3 event records")
    events = []
    for record in records:
        found = _record(record)
        if isinstance(found, str):
            return Notification(problem=f"the body holds {found}")
        if found is not None:
            events.append(found)
    return Notification(tuple(events))


def source_key(event: ObjectEvent, bucket: str, prefix: str) -> str | None:
    """The partition key an event's object stands for in the source `s3://<bucket>/<prefix>`, or None
    for an object the source does not take: another bucket or prefix, a subfolder, another suffix."""
    if event.bucket != bucket or not event.key.startswith(prefix):
        return None
    name = event.key[len(prefix) :]
    return None if "/" in name else key_for_file_name(name)

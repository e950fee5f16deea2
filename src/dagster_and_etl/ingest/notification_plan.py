"""What one tick in notification mode does with the messages it received (`SOURCE_QUEUE_URL`).

A message only says which objects to look at: events arrive late, twice and out of order, so each
object's current version is read from the bucket, and judged as a listing tick judges a file
(sensor_plan.py): due once settled, unless that version is loaded or already requested; due files are
batched the same way, new keys after the registered ones, oldest first.

Each message then goes one of three ways:
- deleted at once, when nothing it names is left to do: every object it names is loaded at its current
  version, held as requested by the cursor this tick began with (stored by Dagster, so durable), gone (a
  removal changes nothing loaded), or not one of the source's; and a message that is not an S3
  notification at all, which is reported and never blocks the queue;
- made visible again at once, when it names an object still settling or left waiting by the runs-per-tick
  limit: the next tick looks again;
- left hidden, when it names a version this tick requests: Dagster stores the request with this tick's
  result, after the tick. When the message comes back, at the end of its visibility timeout, the cursor
  holds that version as requested (or the load history as loaded) and it is deleted; if the result was
  never stored, the version is requested again. No receipt is kept anywhere: the queue holds the state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from dagster_and_etl.ingest.notification_queue import QueuedMessage
from dagster_and_etl.ingest.run_batches import tick_runs
from dagster_and_etl.ingest.s3_events import source_key
from dagster_and_etl.ingest.sensor_cursor import MAX_REMEMBERED, SensorCursor, version_mark
from dagster_and_etl.ingest.sensor_plan import RegisteredKeys, TickPlan, TickRules, not_loaded_nor_requested
from dagster_and_etl.ingest.source import FileInfo, NoFile, SkippedFile, SourceFile, settle_horizon


@dataclass(frozen=True)
class NotifiedTick:
    plan: TickPlan  # the runs to request and the keys to register, as a listing tick's
    delete: list[str]  # receipts of the messages with nothing left to do, poison included
    release: list[str]  # receipts of the messages naming an object still settling or left waiting
    poison: list[QueuedMessage]  # messages that are not S3 notifications (deleted too)


@dataclass(frozen=True)
class BucketView:
    """What the planner needs of the bucket: where the source is, and each key's object as it is now."""

    bucket: str
    prefix: str
    slack_ns: int
    info: Callable[[list[str]], dict[str, FileInfo | NoFile]]


def announced_keys(messages: list[QueuedMessage], view: BucketView) -> dict[str, list[str]]:
    """The source's partition keys each message names, by receipt handle, in the order announced."""
    return {
        message.receipt_handle: list(
            dict.fromkeys(
                key
                for event in message.notification.events
                if (key := source_key(event, view.bucket, view.prefix)) is not None
            )
        )
        for message in messages
        if message.notification.problem is None
    }


@dataclass(frozen=True)
class CurrentFiles:
    """The objects some keys name now, as source files; the bucket's clock when it was asked; the files
    passed over, with why (two objects giving one key, say); and the keys that have more than one."""

    files: list[SourceFile]
    now_ns: int
    skipped: list[SkippedFile]
    clashing: tuple[str, ...]

    @classmethod
    def of(cls, infos: Mapping[str, FileInfo | NoFile]) -> CurrentFiles:
        found = {key: info for key, info in infos.items() if isinstance(info, FileInfo)}
        return cls(
            [
                SourceFile(f.name, key, f.size, f.mtime_ns, f.changed_ns, f.version)
                for key, f in found.items()
            ],
            max((info.now_ns for info in found.values()), default=0),
            [
                SkippedFile(name, f"it is {info.problem}")
                for info in infos.values()
                if isinstance(info, NoFile)
                for name in info.names
            ],
            tuple(key for key, info in infos.items() if isinstance(info, NoFile) and info.names),
        )


def plan_notified(
    messages: list[QueuedMessage],
    view: BucketView,
    cursor: SensorCursor,
    rules: TickRules,
    registered: RegisteredKeys,
    loaded_versions: Callable[[list[str]], Mapping[str, str]],
) -> NotifiedTick:
    """The runs, registrations and cursor of a tick that received `messages`, and what becomes of each.
    Keys that had two files at once are looked at again on every tick, news or not, until one file is
    gone: each tick names the pair, as a listing does, while their messages are deleted rather than kept
    coming back for days (a queue may send a message received too often to its dead-letter queue)."""
    keys_of = announced_keys(messages, view)
    keys = list(dict.fromkeys([*(key for keys in keys_of.values() for key in keys), *cursor.clashing]))
    current = CurrentFiles.of(view.info(keys) if keys else {})
    plan = judge_files(
        current.files, current.now_ns, view.slack_ns, cursor, rules, registered, loaded_versions
    )
    plan = replace(plan, skipped=current.skipped, cursor=replace(plan.cursor, clashing=current.clashing))
    open_keys = {f.partition_key for f in [*plan.settling, *plan.waiting]}
    requested_now = {f.partition_key for f in plan.to_request}
    delete, release = [], []
    for message in messages:
        named = set(keys_of.get(message.receipt_handle, ()))
        if named & open_keys:
            release.append(message.receipt_handle)
        elif not named & requested_now:
            delete.append(message.receipt_handle)
    poison = [m for m in messages if m.notification.problem is not None]
    return NotifiedTick(plan, delete, release, poison)


def judge_files(
    files: list[SourceFile],
    now_ns: int,
    slack_ns: int,
    cursor: SensorCursor,
    rules: TickRules,
    registered: RegisteredKeys,
    loaded_versions: Callable[[list[str]], Mapping[str, str]],
) -> TickPlan:
    """Files some objects' news named, or a part of a listing found, as a tick plans them: settled ones
    due unless loaded at that version or held as requested, batched and cut by the runs-per-tick limit."""
    horizon_ns = settle_horizon(now_ns, rules.settle_ns, slack_ns)
    settled = [f for f in files if f.changed_ns <= horizon_ns]
    # The load history is read only for versions the cursor does not hold as requested: a message back
    # from its visibility timeout is then dealt with while a load holds the database.
    unheld = [f.partition_key for f in settled if not cursor.holds_request(f)]
    loaded = loaded_versions(unheld) if unheld else {}
    due = not_loaded_nor_requested(settled, loaded, cursor)
    position = _positions(due, registered)
    runs = tick_runs(due, position, rules.max_batch, rules.max_runs, rules.max_batch_bytes)
    return TickPlan(
        batches=runs.batches,
        new_partition_keys=runs.new_partition_keys,
        settling=[f for f in files if f.changed_ns > horizon_ns],
        skipped=[],
        waiting=runs.waiting,
        cursor=replace(cursor, requested=requested_marks(cursor, runs.requested, loaded)),
    )


def _positions(due: list[SourceFile], registered: RegisteredKeys) -> dict[str, int]:
    """Where each registered key stands in the order of registration, which batches follow: read whole
    only when a due file's key is registered (a rewrite). New files, the usual news, are batched after
    every registered key whatever that order is, so a tick that finds only new ones asks the instance
    about its own few keys, not about every partition a large bucket has registered."""
    if not due or not registered.among([f.partition_key for f in due]):
        return {}
    return {key: index for index, key in enumerate(registered.all())}


def requested_marks(
    cursor: SensorCursor, requested: list[SourceFile], loaded: Mapping[str, str]
) -> dict[str, str]:
    """The versions requested and not known loaded, newest last, at most `MAX_REMEMBERED` of them: a
    duplicate event for one of them requests nothing while its run is queued or under way."""
    marks = {
        key: mark
        for key, mark in cursor.requested.items()
        if key not in loaded or version_mark(loaded[key]) != mark
    }
    for source_file in requested:
        marks.pop(source_file.partition_key, None)
        marks[source_file.partition_key] = version_mark(source_file.version)
    return dict(list(marks.items())[-MAX_REMEMBERED:])

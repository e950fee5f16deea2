"""What one tick of `dynamic_sensor` reads of its source: a listing of the folder or prefix, or, in
notification mode (`SOURCE_QUEUE_URL`), the messages the bucket's queue received since the last tick.

In notification mode a tick receives, for at most `RECEIVE_SECONDS`, and plans what the messages name
(notification_plan.py says which messages are deleted at once, which made visible again for the next
tick, and which stay hidden until Dagster has stored this tick's requests).

The prefix is still listed whole on the first tick on a fresh instance or after a cursor reset, as in
listing mode. Then every `SOURCE_RECONCILE_MINUTES` a reconciliation lists it again, to find what the queue
lost: a part of the prefix each tick, as many pages as `LIST_SECONDS` allow, in key order, until the end,
so a bucket of any size fits in ticks of bounded time. Each part is judged against the load history, as a
rebuild is, and the queue waits meanwhile (its messages are read once the listing is done; those naming
versions the listing requested then request nothing).
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from dagster_and_etl.ingest.duckdb_tables import DatabaseBusy
from dagster_and_etl.ingest.notification_plan import BucketView, judge_files, plan_notified, requested_marks
from dagster_and_etl.ingest.notification_queue import NotificationQueue, QueuedMessage
from dagster_and_etl.ingest.sensor_cursor import SensorCursor
from dagster_and_etl.ingest.sensor_plan import RegisteredKeys, TickPlan, TickRules, plan_tick
from dagster_and_etl.ingest.source import Source
from dagster_and_etl.ingest.source_bucket import BucketSource

# How long a received message stays hidden from other readers: one whose version the tick requested comes
# back after this and is deleted then, and so does one received by a tick that failed or by a daemon that
# stopped. Long enough for Dagster to store the tick's result; short enough to keep few messages in flight.
VISIBILITY_SECONDS = 120
# How long a tick receives messages, well within Dagster's 60 s for a tick: the HEAD requests that read
# each object's version, and the tick's result, come after.
RECEIVE_SECONDS = 20
# The most messages a tick receives: more would name more files than one tick requests.
MAX_MESSAGES = 10_000
# How long a tick of a reconciliation lists pages (at least one), well within Dagster's 60 s for a tick:
# the load history of the part's files is read after (BENCHMARKS.md: moto's server lists 1,400 a second).
LIST_SECONDS = 20


@dataclass(frozen=True)
class WatchedSource:
    """Where files land, and in notification mode the queue that announces them."""

    source: Source
    queue: NotificationQueue | None = None
    reconcile_ns: int = 0  # how often a notified source is listed anyway; 0: only when the cursor is fresh


@dataclass(frozen=True)
class SourceTick:
    plan: TickPlan
    poison: list[QueuedMessage] = field(default_factory=list)  # not S3 notifications: log, then delete


def plan_source_tick(
    watched: WatchedSource,
    cursor: SensorCursor,
    rules: TickRules,
    registered: RegisteredKeys,
    loaded_versions: Callable[[list[str] | None], Mapping[str, str]],
    now_ns: int,
) -> SourceTick:
    """The plan of one tick: from a listing, or from the queue's messages. `loaded_versions(None)` reads
    every partition's loaded version; `now_ns` is the host's clock, which times the listings."""
    queue, source = watched.queue, watched.source
    if queue is None:
        return SourceTick(_listed(source, cursor, rules, registered, loaded_versions))
    if cursor.is_fresh:
        queue.check()
        plan = _listed(source, cursor, rules, registered, loaded_versions)
        # The versions requested are remembered, so that their notifications, still in the queue, request
        # nothing while the runs are queued (notification_plan.requested_marks).
        marks = requested_marks(plan.cursor, plan.to_request, loaded={})
        listed = replace(plan.cursor, requested=marks, listed_ns=now_ns, reconciling=None)
        return SourceTick(replace(plan, cursor=listed))
    assert isinstance(source, BucketSource), "a queue is set only for a bucket (SourceFiles.queue)"
    due = watched.reconcile_ns and now_ns - cursor.listed_ns >= watched.reconcile_ns
    if cursor.reconciling is None and due:
        cursor = replace(cursor, reconciling="", listed_ns=now_ns)
    if cursor.reconciling is not None:
        return SourceTick(_reconciled(source, cursor, rules, registered, loaded_versions))
    return _notified(source, queue, cursor, rules, registered, loaded_versions)


def _listed(
    source: Source,
    cursor: SensorCursor,
    rules: TickRules,
    registered: RegisteredKeys,
    loaded_versions: Callable[[list[str] | None], Mapping[str, str]],
) -> TickPlan:
    """A listing tick, planned as listing mode plans every tick."""
    return plan_tick(source.list(), cursor, rules, registered.all, lambda: loaded_versions(None))


def _reconciled(
    source: BucketSource,
    cursor: SensorCursor,
    rules: TickRules,
    registered: RegisteredKeys,
    loaded_versions: Callable[[list[str] | None], Mapping[str, str]],
) -> TickPlan:
    """The next part of a reconciliation listing, planned; the cursor says where the next part begins,
    or that the listing is done. Files left waiting by the runs-per-tick limit are listed again."""
    assert cursor.reconciling is not None
    part = source.list_part(cursor.reconciling, time.monotonic() + LIST_SECONDS)
    listing = part.listing
    plan = judge_files(
        listing.files, listing.now_ns, source.slack_ns, cursor, rules, registered, loaded_versions
    )
    listed_up_to: str | None = None if part.complete else part.last_key
    if plan.waiting:
        first_waiting = min(source.prefix + f.name for f in plan.waiting)
        before = [key for f in listing.files if (key := source.prefix + f.name) < first_waiting]
        listed_up_to = max(before, default=cursor.reconciling)
    clashing = tuple(dict.fromkeys([*cursor.clashing, *listing.clashing]))  # looked at again each tick
    reconciled = replace(plan.cursor, reconciling=listed_up_to, clashing=clashing)
    return replace(plan, cursor=reconciled, skipped=listing.skipped, rebuilt=True)


def _notified(
    source: BucketSource,
    queue: NotificationQueue,
    cursor: SensorCursor,
    rules: TickRules,
    registered: RegisteredKeys,
    loaded_versions: Callable[[list[str] | None], Mapping[str, str]],
) -> SourceTick:
    """The messages received this tick, planned; then deleted, made visible again or left hidden as the
    plan says (a tick that cannot read the load history leaves them all for the next tick)."""
    most = min(MAX_MESSAGES, rules.max_batch * rules.max_runs) if rules.max_runs else MAX_MESSAGES
    messages = queue.receive(most, VISIBILITY_SECONDS, time.monotonic() + RECEIVE_SECONDS)
    view = BucketView(source.bucket, source.prefix, source.slack_ns, source.info)
    try:
        notified = plan_notified(messages, view, cursor, rules, registered, loaded_versions)
    except DatabaseBusy:
        queue.release([message.receipt_handle for message in messages])
        raise
    queue.delete(notified.delete)
    queue.release(notified.release)
    return SourceTick(notified.plan, notified.poison)

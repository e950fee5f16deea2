"""What one tick of `dynamic_sensor` reads of its source: a listing of the folder or prefix, or, in
notification mode (`SOURCE_QUEUE_URL`), the messages the bucket's queue received since the last tick.

In notification mode a tick receives, for at most `RECEIVE_SECONDS`, and plans what the messages name
(notification_plan.py says which messages are deleted at once, which made visible again for the next
tick, and which stay hidden until Dagster has stored this tick's requests).

The prefix is still listed on the first tick on a fresh instance or after a cursor reset, as in listing
mode, and then every `SOURCE_RECONCILE_MINUTES`, to find what the queue lost. Such a listing is judged
against the load history, as a rebuild is: the files loaded from notifications since the last listing
moved no horizon, and the load history is what says they are loaded.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from dagster_and_etl.ingest.duckdb_tables import DatabaseBusy
from dagster_and_etl.ingest.notification_plan import BucketView, plan_notified, requested_marks
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
    if cursor.is_fresh or (watched.reconcile_ns and now_ns - cursor.listed_ns >= watched.reconcile_ns):
        if not cursor.is_fresh:
            # A reconciliation: a rebuild that keeps the versions the cursor holds as requested, and loads
            # what it finds whatever SENSOR_INCLUDE_EXISTING_FILES says (that is about a first enable).
            cursor = replace(cursor, horizon_ns=0, names_digest=None)
            rules = replace(rules, include_existing=True)
        plan = _listed(source, cursor, rules, registered, loaded_versions)
        # The versions requested are remembered, so that their notifications, still in the queue, request
        # nothing while the runs are queued (notification_plan.requested_marks).
        marks = requested_marks(plan.cursor, plan.to_request, loaded={})
        return SourceTick(replace(plan, cursor=replace(plan.cursor, requested=marks, listed_ns=now_ns)))
    assert isinstance(source, BucketSource), "a queue is set only for a bucket (SourceFiles.queue)"
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

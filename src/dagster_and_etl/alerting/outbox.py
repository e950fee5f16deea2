"""What the alert sensor remembers between ticks, and the alerts it has still to send.

The cursor is stored by Dagster with each tick, so what it holds survives a restart of `dagster dev`:
- how far through the failed runs the sensor has read, so each failure is seen once;
- what it has already said is overdue, so an overdue table or file is announced once;
- the alerts not yet delivered, tried again on every tick until the webhook takes them.
"""

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dagster_and_etl.alerting.records import Alert, WaitingFile

# Alerts waiting for the webhook; beyond this the oldest are dropped, so the cursor stays small.
MAX_PENDING = 100
# Files remembered by version as announced overdue, the newest; older ones are remembered by a floor.
MAX_WAITING_MARKS = 1000
# Runs remembered while Dagster is to retry them; beyond this the oldest are forgotten.
MAX_RETRYING = 200
# A tick starts no new POST after this many seconds, so it ends well within Dagster's 60 s for a tick.
DELIVERY_BUDGET_SECONDS = 20


@dataclass
class AlertCursor:
    # The storage id of the last run failure read; None before the first tick.
    failures_after: int | None = None
    # Per freshness check, the partition last announced overdue.
    overdue_partitions: dict[str, str] = field(default_factory=dict)
    # Version marks of the files announced as waiting too long, while they still wait; and the newest
    # change among those beyond `MAX_WAITING_MARKS`, which were announced too.
    waiting_marks: list[str] = field(default_factory=list)
    waiting_floor_ns: int = 0
    # Failed runs Dagster said it would retry: looked at again, in case launching the retry fails.
    retrying: list[str] = field(default_factory=list)
    # The last result of the waiting-files check reported to Dagster, so it is reported when it changes.
    waiting_reported: str | None = None
    # The event-driven table's backlog figures last reported as an observation, and when (host clock).
    backlog_reported: list[int] | None = None
    backlog_reported_ns: int = 0
    pending: list[Alert] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | None) -> "AlertCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            failures_after=data.get("failures_after"),
            overdue_partitions=dict(data.get("overdue_partitions", {})),
            waiting_marks=list(data.get("waiting_marks", [])),
            waiting_floor_ns=int(data.get("waiting_floor_ns", 0)),
            retrying=list(data.get("retrying", [])),
            waiting_reported=data.get("waiting_reported"),
            backlog_reported=data.get("backlog_reported"),
            backlog_reported_ns=int(data.get("backlog_reported_ns", 0)),
            pending=[Alert(key, text) for key, text in data.get("pending", [])],
        )

    def serialize(self) -> str:
        return json.dumps(
            {
                "failures_after": self.failures_after,
                "overdue_partitions": self.overdue_partitions,
                "waiting_marks": self.waiting_marks,
                "waiting_floor_ns": self.waiting_floor_ns,
                "retrying": self.retrying,
                "waiting_reported": self.waiting_reported,
                "backlog_reported": self.backlog_reported,
                "backlog_reported_ns": self.backlog_reported_ns,
                "pending": [[alert.key, alert.text] for alert in self.pending],
            },
            separators=(",", ":"),
        )

    def queue(self, alerts: Iterable[Alert]) -> int:
        """Adds alerts to send, each once, keeping at most `MAX_PENDING` (the newest). Returns how many
        of the oldest were dropped to make room."""
        queued = {alert.key for alert in self.pending}
        for alert in alerts:
            if alert.key not in queued:
                self.pending.append(alert)
                queued.add(alert.key)
        dropped = max(0, len(self.pending) - MAX_PENDING)
        del self.pending[:dropped]
        return dropped

    def newly_waiting(self, files: list[WaitingFile]) -> list[WaitingFile]:
        """Of the files waiting too long now, those not announced before; remembers them all as announced:
        the newest `MAX_WAITING_MARKS` by version, the older ones by the newest change among them."""
        announced = set(self.waiting_marks)
        new = [f for f in files if f.mark not in announced and f.changed_ns > self.waiting_floor_ns]
        newest_first = sorted(files, key=lambda f: f.changed_ns, reverse=True)
        self.waiting_marks = [f.mark for f in newest_first[:MAX_WAITING_MARKS]]
        older = newest_first[MAX_WAITING_MARKS:]
        self.waiting_floor_ns = older[0].changed_ns if older else 0
        return new


@dataclass(frozen=True)
class Delivery:
    sent: list[Alert]
    problem: str | None  # why the first alert not sent was not, or None when all were sent


def deliver(
    cursor: AlertCursor,
    send: Callable[[str], str | None],
    budget_seconds: float = DELIVERY_BUDGET_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Delivery:
    """Sends the pending alerts oldest first, stopping at the first the webhook does not take: a webhook
    that is down or slow costs a tick one attempt, not one per alert. No send starts once
    `budget_seconds` have passed. What is not sent stays pending, for the next tick."""
    sent: list[Alert] = []
    problem = None
    started = clock()
    while cursor.pending and clock() - started < budget_seconds:
        problem = send(cursor.pending[0].text)
        if problem is not None:
            break
        sent.append(cursor.pending.pop(0))
    return Delivery(sent, problem)

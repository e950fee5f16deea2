"""The alert sensor's cursor on its own: each alert queued once, the oldest sent first, at most one failed
attempt a tick, and a bounded size."""

from dagster_and_etl.alerting.outbox import MAX_PENDING, AlertCursor, deliver
from dagster_and_etl.alerting.records import Alert


def test_the_cursor_reads_back_what_it_wrote() -> None:
    cursor = AlertCursor(
        failures_after=41,
        overdue_partitions={"duckdb_partition_table:freshness_check": "2018-01-25"},
        waiting_marks=["0a1b2c3d4e5f"],
        waiting_reported="passed",
        pending=[Alert("run:1", "line one\nline two · é")],
    )
    assert AlertCursor.parse(cursor.serialize()) == cursor
    assert AlertCursor.parse(None) == AlertCursor()


def test_an_alert_is_queued_once_and_the_oldest_are_dropped_past_the_limit() -> None:
    cursor = AlertCursor()
    assert cursor.queue([Alert("run:1", "a"), Alert("run:1", "a again")]) == 0
    assert cursor.queue([Alert("run:1", "a")]) == 0
    assert [alert.text for alert in cursor.pending] == ["a"]

    dropped = cursor.queue(Alert(f"run:{n}", str(n)) for n in range(2, MAX_PENDING + 6))
    assert dropped == 5
    assert len(cursor.pending) == MAX_PENDING
    assert cursor.pending[0].key == "run:6" and cursor.pending[-1].key == f"run:{MAX_PENDING + 5}"


def test_delivery_goes_oldest_first_and_stops_at_the_first_refusal() -> None:
    cursor = AlertCursor(pending=[Alert("a", "A"), Alert("b", "B"), Alert("c", "C")])
    tried: list[str] = []

    def send(text: str) -> str | None:
        tried.append(text)
        return "answered HTTP 503" if text == "B" else None

    delivery = deliver(cursor, send)
    assert [alert.key for alert in delivery.sent] == ["a"]
    assert delivery.problem == "answered HTTP 503"
    assert tried == ["A", "B"]  # C is not tried: one failed attempt a tick
    assert [alert.key for alert in cursor.pending] == ["b", "c"]

    delivery = deliver(cursor, lambda text: None)
    assert [alert.key for alert in delivery.sent] == ["b", "c"] and delivery.problem is None
    assert cursor.pending == []


def test_a_slow_webhook_does_not_hold_a_tick_past_its_budget() -> None:
    cursor = AlertCursor(pending=[Alert(str(n), str(n)) for n in range(10)])
    now = [0.0]

    def slow_send(text: str) -> None:
        now[0] += 8  # each POST succeeds, after 8 s
        return None

    delivery = deliver(cursor, slow_send, budget_seconds=20, clock=lambda: now[0])
    assert [alert.key for alert in delivery.sent] == ["0", "1", "2"]  # started at 0, 8 and 16 s
    assert delivery.problem is None
    assert len(cursor.pending) == 7  # sent on by the next ticks

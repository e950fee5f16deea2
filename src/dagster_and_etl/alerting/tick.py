"""One tick of `alert_sensor`, apart from Dagster's definitions: the runs newly failed for good, and the
alerts queued, posted, or dropped, said in sentences for the tick's log and skip reason."""

import logging

import dagster as dg

from dagster_and_etl.alerting.events import latest_run_failure_id, retries_given_up, run_failures_after
from dagster_and_etl.alerting.messages import run_failure_alert
from dagster_and_etl.alerting.outbox import MAX_PENDING, MAX_RETRYING, AlertCursor, deliver
from dagster_and_etl.alerting.records import Alert
from dagster_and_etl.alerting.webhook import post_alert, webhook_name


def failure_alerts(instance: dg.DagsterInstance, cursor: AlertCursor, ui_url: str) -> list[Alert]:
    """An alert for each run that failed for good since the last tick, including one Dagster said it
    would retry and then did not; the first tick only notes where failures start."""
    if cursor.failures_after is None:
        cursor.failures_after = latest_run_failure_id(instance)
        return []
    given_up, still_retrying = retries_given_up(instance, cursor.retrying)
    failures, cursor.failures_after, retrying = run_failures_after(instance, cursor.failures_after)
    cursor.retrying = [*still_retrying, *retrying][-MAX_RETRYING:]
    return [run_failure_alert(failure, ui_url) for failure in [*given_up, *failures]]


def alerts_off(cursor: AlertCursor, found: list[Alert]) -> str:
    """With no webhook set, what is found now is not sent later either, when alerts are turned on."""
    unsent = len(found) + len(cursor.pending)
    cursor.pending.clear()
    return f"Alerts are off: ALERT_WEBHOOK_URL is not set{f' ({unsent} not sent)' if unsent else ''}."


def send(
    cursor: AlertCursor,
    found: list[Alert],
    url: str,
    timeout: float,
    log: logging.Logger | dg.DagsterLogManager,
) -> list[str]:
    """Queues the alerts found and posts what waits, in order; what happened, each sentence logged."""
    webhook, said = webhook_name(url), []
    if dropped := cursor.queue(found):
        said.append(
            f"{dropped} alert(s) dropped, the oldest: more than {MAX_PENDING} waited for the webhook."
        )
        log.warning(said[-1])
    delivery = deliver(cursor, lambda text: post_alert(url, text, timeout))
    if delivery.sent:
        said.append(f"{len(delivery.sent)} alert(s) sent to {webhook}.")
        log.info(said[-1])
    if delivery.problem is not None:
        said.append(
            f"The webhook at {webhook} {delivery.problem}: {len(cursor.pending)} alert(s) kept, to be sent"
            " on a later tick."
        )
        log.warning(said[-1])
    if cursor.pending and delivery.problem is None:
        said.append(f"{len(cursor.pending)} alert(s) left for the next tick, which sends on.")
    return said or ["Nothing to report."]

"""The text of each alert: what failed or is late, which partitions and file, the error in one line, and
a link to the run or the asset in the Dagster UI. Never a line of a file: errors are given by the
summaries the loads write for this, which name lines and columns but not what they hold."""

import datetime as dt
import hashlib
import urllib.parse

from dagster_and_etl.alerting.records import Alert, OverduePartition, RunFailure, WaitingFile

# How many partitions or files one alert lists by name before it counts the rest.
NAMED_AT_MOST = 5


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _named(items: list[str]) -> str:
    shown = ", ".join(items[:NAMED_AT_MOST])
    return shown + (f" and {len(items) - NAMED_AT_MOST} more" if len(items) > NAMED_AT_MOST else "")


def run_url(ui_url: str, run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/runs/{run_id}"


def asset_checks_url(ui_url: str, asset: str) -> str:
    return f"{ui_url.rstrip('/')}/assets/{urllib.parse.quote(asset)}?view=checks"


def run_failure_alert(failure: RunFailure, ui_url: str) -> Alert:
    if failure.files:
        count = failure.failed_files or len(failure.files)
        lines = [f"{failure.job} failed: {count} file(s) could not be loaded and are held back"]
        for file in failure.files[:NAMED_AT_MOST]:
            lines.append(f"Partition: {file.partition} · File: {file.location}")
            lines.append(f"Error: {_one_line(file.summary)}")
        if count > NAMED_AT_MOST:
            lines.append(f"… and {count - NAMED_AT_MOST} more file(s): see the run")
    else:
        partitions = f" for partition {_named(failure.partitions)}" if failure.partitions else ""
        lines = [f"{failure.job} failed{partitions}"]
        if failure.partitions:
            lines.append(f"Partition: {_named(failure.partitions)}")
        if failure.location:
            lines.append(f"File: {failure.location}")
        lines.append(f"Error: {_one_line(failure.error)}")
    lines.append(f"Run: {run_url(ui_url, failure.run_id)}")
    return Alert(f"run:{failure.run_id}", "\n".join(lines))


def overdue_partition_alert(overdue: OverduePartition, ui_url: str) -> Alert:
    deadline = f"{overdue.deadline.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
    return Alert(
        f"overdue:{overdue.asset}:{overdue.check}:{overdue.partition}",
        "\n".join(
            [
                f"{overdue.asset} is overdue: partition {overdue.partition} was not loaded by {deadline}",
                f"Partition: {overdue.partition} · File: {overdue.location}",
                f"Error: freshness check {overdue.check} failed",
                f"Asset: {asset_checks_url(ui_url, overdue.asset)}",
            ]
        ),
    )


def waiting_files_alert(asset: str, files: list[WaitingFile], limit_minutes: int, ui_url: str) -> Alert:
    """One alert for files newly found waiting too long; `files` oldest first."""
    oldest = files[0]
    marks = ",".join(sorted(file.mark for file in files))
    return Alert(
        "waiting:" + hashlib.blake2b(marks.encode(), digest_size=8).hexdigest(),
        "\n".join(
            [
                f"{asset} is overdue: {len(files)} file(s) waited more than {limit_minutes} min without"
                " being loaded",
                f"Partition: {_named([file.partition for file in files])} · File: {oldest.location}"
                f" (waiting {oldest.waiting_minutes} min)",
                f"Error: not loaded at its current version within {limit_minutes} min"
                " (FILE_OVERDUE_MINUTES); is dynamic_sensor running, and did its runs succeed?",
                f"Asset: {asset_checks_url(ui_url, asset)}",
            ]
        ),
    )

"""What the alerts are about, as plain records: read from Dagster (events.py), remembered by the alert
sensor's cursor (outbox.py) and put into words (messages.py)."""

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Alert:
    """One message to send. `key` names what it is about (a run, an overdue partition, a file version),
    so the same thing is never queued twice."""

    key: str
    text: str


@dataclass(frozen=True)
class FailedFile:
    partition: str
    location: str
    summary: str  # what is wrong with it, without quoting it


@dataclass(frozen=True)
class RunFailure:
    """A run that failed for good: no retry of it will follow."""

    run_id: str
    job: str
    partitions: list[str]  # the run's partitions, or the first and last key of its range
    error: str  # one line
    location: str | None = None  # the file the error is about, when it is about one
    files: tuple[FailedFile, ...] = ()  # the bad files it held back, when there were any
    failed_files: int = 0  # how many, which may be more than `files` names


@dataclass(frozen=True)
class OverduePartition:
    """A time partition its freshness check found not loaded by its deadline."""

    asset: str
    check: str
    partition: str
    deadline: dt.datetime
    location: str  # where its file is expected


@dataclass(frozen=True)
class WaitingFile:
    partition: str
    location: str
    waiting_minutes: int
    mark: str  # the file version's mark: the same version is announced once
    changed_ns: int  # when it last changed, by the source's clock

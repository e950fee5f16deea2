"""Every setting of the project, declared once: its environment variable, default, meaning and type.

The resources' fields take their descriptions from here, and a test holds `.env.example` and the README's
table to this list. A setting is read when a run or a tick uses it, so a bad value fails that step with
an error naming the setting, and a changed `.env` applies without reloading the code location.
`dg.EnvVar` is not used: it has no default and fails when the variable is unset, and every setting here
is optional (AWS credentials come from boto3's own chain, profiles and roles included).

Relative paths are resolved against the project root, never the working directory, so `dagster dev`,
`dg dev` and pytest find the same folders wherever they are started from.
"""

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import dagster as dg
from pydantic import Field

from dagster_and_etl.ingest.source_bucket import is_s3_uri

PROJECT_ROOT = Path(__file__).resolve().parents[2]

T = TypeVar("T")


class SettingError(dg.Failure):
    """A setting holds a value it cannot have; the message names it. No retry mends it."""

    def __init__(self, message: str) -> None:
        super().__init__(description=message, allow_retries=False)


def resolve_path(value: str) -> Path:
    """An absolute path for a setting: `~` expanded, relative paths taken from the project root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _text(name: str, raw: str) -> str:
    return raw


def _optional(name: str, raw: str) -> str | None:
    return raw or None


def _path(name: str, raw: str) -> Path:
    return resolve_path(raw)


def _location(name: str, raw: str) -> str:
    """An S3 prefix as it is, or a folder's absolute path."""
    return raw if is_s3_uri(raw) else str(resolve_path(raw))


def _flag(name: str, raw: str) -> bool:
    """true/false, yes/no, 1/0 or on/off."""
    if raw.lower() in ("true", "yes", "1", "on"):
        return True
    if raw.lower() in ("false", "no", "0", "off"):
        return False
    raise SettingError(f"{name} must be true or false, got {raw!r}")


def _time_in(unit: str) -> Callable[[str, str], float]:
    """A parser of a finite number of `unit`, zero or more."""

    def parse(name: str, raw: str) -> float:
        try:
            amount = float(raw)
        except ValueError:
            raise SettingError(f"{name} must be a number of {unit}, got {raw!r}") from None
        if not math.isfinite(amount) or amount < 0:  # NaN, inf and 1e400 are no time to wait
            raise SettingError(f"{name} must be a finite number of {unit}, zero or more, got {raw!r}")
        return amount

    return parse


_seconds = _time_in("seconds")
_minutes = _time_in("minutes")
_hours = _time_in("hours")


def _optional_location(name: str, raw: str) -> str | None:
    return _location(name, raw) if raw else None


def _count(name: str, raw: str) -> int:
    """A whole number of at least 1."""
    try:
        count = int(raw)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, got {raw!r}") from None
    if count < 1:
        raise SettingError(f"{name} must be at least 1, got {raw!r}")
    return count


_BYTE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_BYTE_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def _bytes(name: str, raw: str) -> int:
    """A size of at least one byte: a whole number of bytes, or a number and a unit (`500MB`, `1GiB`)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", raw)
    unit = found and _BYTE_UNITS.get(found[2].upper())
    if not found or unit is None:
        raise SettingError(f"{name} must be a size such as 1073741824, 500MB or 1GiB, got {raw!r}")
    size = int(float(found[1]) * unit)
    if size < 1:
        raise SettingError(f"{name} must be at least 1 byte, got {raw!r}")
    return size


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One setting: the environment variable that holds it, its default ("" is unset), its meaning as
    the README's table gives it, and how its text becomes a value."""

    name: str
    default: str
    meaning: str
    parse: Callable[[str, str], T]

    def read(self, override: Any = None) -> T:
        """The value: an override given in the launchpad or by a test, else the environment variable,
        else the default."""
        if override is not None and override != "":
            raw = str(override)
        else:
            raw = os.environ.get(self.name, "").strip() or self.default
        return self.parse(self.name, raw)

    def field(self, empty: Any = None) -> Any:
        """A resource field that overrides the setting; left `empty`, the setting is read."""
        fallback = f"else {self.default}" if self.default else "else unset"
        return Field(default=empty, description=f"{self.meaning}. Empty: ${self.name}, {fallback}.")


SOURCE_DIR = Setting(
    "SOURCE_DIR",
    "data/source",
    "The folder source files land in, or an S3 prefix `s3://bucket/prefix/`",
    _location,
)
SOURCE_QUEUE_URL = Setting(
    "SOURCE_QUEUE_URL",
    "",
    "An SQS queue that receives the S3 prefix's event notifications: the sensor reads it instead of"
    " listing the prefix; unset, it lists",
    _optional,
)
SOURCE_RECONCILE_MINUTES = Setting(
    "SOURCE_RECONCILE_MINUTES",
    "60",
    "With `SOURCE_QUEUE_URL`, how often the sensor also lists the prefix, to find what the queue missed;"
    " `0`: never",
    _minutes,
)
SOURCE_ARCHIVE = Setting(
    "SOURCE_ARCHIVE",
    "",
    "Where `archive_job` moves loaded files: a folder beside `SOURCE_DIR`'s, or a prefix of its bucket;"
    " unset, nothing is moved",
    _optional_location,
)
SOURCE_ARCHIVE_AFTER_HOURS = Setting(
    "SOURCE_ARCHIVE_AFTER_HOURS",
    "24",
    "How long a file's version stays in `SOURCE_DIR` after it was loaded before `archive_job` moves it",
    _hours,
)
DUCKDB_DATABASE = Setting(
    "DUCKDB_DATABASE", "data/staging/data.duckdb", "The DuckDB file the tables are in", _path
)
SENSOR_SETTLE_SECONDS = Setting(
    "SENSOR_SETTLE_SECONDS", "5", "How long a file must be unchanged before the sensor loads it", _seconds
)
SENSOR_MAX_BATCH = Setting("SENSOR_MAX_BATCH", "500", "The most files the sensor puts in one run", _count)
SENSOR_MAX_BATCH_BYTES = Setting(
    "SENSOR_MAX_BATCH_BYTES",
    "1GiB",
    "The most bytes of files in one run, such as `500MB`; a larger file runs alone",
    _bytes,
)
SENSOR_MAX_RUNS_PER_TICK = Setting(
    "SENSOR_MAX_RUNS_PER_TICK",
    "20",
    "The most runs one sensor tick requests; the rest wait for the next tick",
    _count,
)
SENSOR_INCLUDE_EXISTING_FILES = Setting(
    "SENSOR_INCLUDE_EXISTING_FILES",
    "true",
    "`false`: the first tick registers the files already there without loading them",
    _flag,
)
SENSOR_INTERVAL_SECONDS = Setting(
    "SENSOR_INTERVAL_SECONDS",
    "10",
    "How often `dynamic_sensor` ticks; read when the code location loads",
    _count,
)
ALERT_INTERVAL_SECONDS = Setting(
    "ALERT_INTERVAL_SECONDS",
    "30",
    "How often `alert_sensor` ticks; read when the code location loads",
    _count,
)
DUCKDB_MEMORY_LIMIT = Setting(
    "DUCKDB_MEMORY_LIMIT",
    "",
    "DuckDB's `memory_limit` for every connection, such as `4GB`; unset, DuckDB's own",
    _optional,
)
DUCKDB_TEMP_DIRECTORY = Setting(
    "DUCKDB_TEMP_DIRECTORY",
    "",
    "Where DuckDB spills what does not fit in memory; unset, DuckDB's `temp_directory`",
    _optional,
)
DUCKDB_THREADS = Setting(
    "DUCKDB_THREADS", "", "DuckDB's `threads` for every connection; unset, DuckDB's own", _optional
)
FILE_OVERDUE_MINUTES = Setting(
    "FILE_OVERDUE_MINUTES",
    "60",
    "How long a file may wait unloaded before the event-driven table is overdue",
    _count,
)
ALERT_WEBHOOK_URL = Setting(
    "ALERT_WEBHOOK_URL", "", "The chat webhook alerts are posted to; unset, alerts are off", _optional
)
ALERT_WEBHOOK_TIMEOUT_SECONDS = Setting(
    "ALERT_WEBHOOK_TIMEOUT_SECONDS", "5", "How long a tick waits for the webhook to answer", _seconds
)
DAGSTER_UI_URL = Setting(
    "DAGSTER_UI_URL", "http://127.0.0.1:3000", "The Dagster UI that alerts link to", _text
)

SETTINGS: tuple[Setting, ...] = (
    SOURCE_DIR,
    SOURCE_QUEUE_URL,
    SOURCE_RECONCILE_MINUTES,
    SOURCE_ARCHIVE,
    SOURCE_ARCHIVE_AFTER_HOURS,
    DUCKDB_DATABASE,
    SENSOR_SETTLE_SECONDS,
    SENSOR_MAX_BATCH,
    SENSOR_MAX_BATCH_BYTES,
    SENSOR_MAX_RUNS_PER_TICK,
    SENSOR_INCLUDE_EXISTING_FILES,
    SENSOR_INTERVAL_SECONDS,
    ALERT_INTERVAL_SECONDS,
    DUCKDB_MEMORY_LIMIT,
    DUCKDB_TEMP_DIRECTORY,
    DUCKDB_THREADS,
    FILE_OVERDUE_MINUTES,
    ALERT_WEBHOOK_URL,
    ALERT_WEBHOOK_TIMEOUT_SECONDS,
    DAGSTER_UI_URL,
)

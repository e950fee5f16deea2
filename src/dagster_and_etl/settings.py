"""Where the project lives and how its settings are read from the environment.

Relative paths are resolved against the project root, never the working directory, so `dagster dev`,
`dg dev` and pytest find the same folders wherever they are started from.
"""

import math
import os
from pathlib import Path

import dagster as dg

PROJECT_ROOT = Path(__file__).resolve().parents[2]

DEFAULTS = {
    "SOURCE_DIR": "data/source",
    "DUCKDB_DATABASE": "data/staging/data.duckdb",
    "SENSOR_SETTLE_SECONDS": "5",
    "SENSOR_MAX_BATCH": "500",
    "SENSOR_MAX_RUNS_PER_TICK": "20",
    "SENSOR_INCLUDE_EXISTING_FILES": "true",
    "SENSOR_INTERVAL_SECONDS": "10",
    "ALERT_INTERVAL_SECONDS": "30",
    "DUCKDB_MEMORY_LIMIT": "",
    "DUCKDB_TEMP_DIRECTORY": "",
    "DUCKDB_THREADS": "",
    "FILE_OVERDUE_MINUTES": "60",
    "ALERT_WEBHOOK_URL": "",
    "ALERT_WEBHOOK_TIMEOUT_SECONDS": "5",
    "DAGSTER_UI_URL": "http://127.0.0.1:3000",
}


class SettingError(dg.Failure):
    """A setting holds a value it cannot have; the message names it. No retry mends it."""

    def __init__(self, message: str) -> None:
        super().__init__(description=message, allow_retries=False)


def is_s3_uri(value: str) -> bool:
    """Whether a setting names an S3 bucket prefix (`s3://bucket/prefix/`) rather than a local path."""
    return value.startswith("s3://")


def resolve_path(value: str) -> Path:
    """An absolute path for a setting: `~` expanded, relative paths taken from the project root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def read_setting(name: str, override: str | None = None) -> str:
    """A setting's value: an explicit override, else the environment variable, else its default."""
    if override not in (None, ""):
        return override
    value = os.environ.get(name, "").strip()
    return value or DEFAULTS[name]


def read_optional_setting(name: str, override: str | None = None) -> str | None:
    """A setting that may be left unset: its value, or None."""
    return read_setting(name, override) or None


def read_flag_setting(name: str, override: bool | None = None) -> bool:
    """A yes-or-no setting: true/false, yes/no, 1/0 or on/off, with the setting's name in the error."""
    if override is not None:
        return override
    raw = read_setting(name).lower()
    if raw in ("true", "yes", "1", "on"):
        return True
    if raw in ("false", "no", "0", "off"):
        return False
    raise SettingError(f"{name} must be true or false, got {raw!r}")


def read_path_setting(name: str, override: str | None = None) -> Path:
    return resolve_path(read_setting(name, override))


def read_seconds_setting(name: str, override: float | None = None) -> float:
    """A non-negative number of seconds, with the setting's name in the error when it is not one."""
    raw = str(override) if override is not None else read_setting(name)
    try:
        seconds = float(raw)
    except ValueError:
        raise SettingError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(seconds) or seconds < 0:  # NaN, inf and 1e400 are no time to wait
        raise SettingError(f"{name} must be a finite number of seconds, zero or more, got {raw!r}")
    return seconds


def read_count_setting(name: str, override: int | None = None) -> int:
    """A whole number of at least 1, with the setting's name in the error when it is not one."""
    raw = str(override) if override is not None else read_setting(name)
    try:
        count = int(raw)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, got {raw!r}") from None
    if count < 1:
        raise SettingError(f"{name} must be at least 1, got {raw!r}")
    return count

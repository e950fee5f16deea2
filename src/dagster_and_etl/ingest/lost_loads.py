"""Whether the DuckDB database still holds what Dagster recorded as loaded into it.

The sensor's cursor says which file versions were requested; the load history, in the database, says
which are loaded. When the database is deleted, emptied, restored from an older backup, or
`DUCKDB_DATABASE` is pointed at another file, the two disagree, and the files loaded before are not
loaded again until the cursor is reset. The sensor cannot read the database on every tick (a reader
holds its file lock against the loads), so it looks again only when the file itself changed, and only
once no run of its own is still loading.
"""

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from dagster_and_etl.ingest.duckdb_tables import DatabaseBusy
from dagster_and_etl.ingest.sensor_cursor import SensorCursor
from dagster_and_etl.tags import SENSOR_NAME_TAG

# The runs of a sensor that may still load: while one is, the database may not yet hold its files.
IN_FLIGHT = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class RecordedLoad:
    """The newest materialization of a table's partition, as Dagster recorded it."""

    partition_key: str
    version: str | None  # None for a partition whose file was removed: only its rows are kept
    run_id: str


def database_stamp(path: Path) -> str:
    """A short mark that changes whenever the database file does: another path, another file, or its
    contents written."""
    try:
        found = os.stat(path)
        stamp = f"{path}|{found.st_ino}|{found.st_size}|{found.st_mtime_ns}"
    except FileNotFoundError:
        stamp = f"{path}|missing"
    return hashlib.blake2b(stamp.encode("utf-8", "surrogateescape"), digest_size=6).hexdigest()


def latest_recorded_load(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> RecordedLoad | None:
    entry = instance.get_latest_materialization_event(asset_key)
    materialization = entry.asset_materialization if entry else None
    if entry is None or materialization is None or materialization.partition is None:
        return None
    version = materialization.metadata.get("version")
    return RecordedLoad(materialization.partition, getattr(version, "value", None), entry.run_id)


def runs_in_flight(instance: dg.DagsterInstance, sensor_name: str) -> bool:
    return bool(
        instance.get_run_ids(dg.RunsFilter(tags={SENSOR_NAME_TAG: sensor_name}, statuses=IN_FLIGHT), limit=1)
    )


def lost_load_problem(recorded: RecordedLoad, loaded: dict[str, str], database: Path) -> str | None:
    """Why the database does not hold the load Dagster recorded last, with what to do; None when it does.

    `loaded` is the version each partition holds by the database's load history."""
    holds = loaded.get(recorded.partition_key)
    if holds is not None and recorded.version in (None, holds):
        return None
    return (
        f"The DuckDB database {database} does not hold partition {recorded.partition_key!r} as run"
        f" {recorded.run_id[:8]} loaded it: the database was deleted, emptied or restored from an older"
        " backup, or DUCKDB_DATABASE now names another file. Files loaded before are not loaded into it"
        " again by themselves: reset this sensor's cursor to load every file whose current version it"
        " does not hold"
    )


def database_check(
    instance: dg.DagsterInstance,
    cursor: SensorCursor,
    asset_key: dg.AssetKey,
    path: Path,
    loaded_versions: Callable[[list[str]], dict[str, str]],
) -> tuple[str | None, str | None]:
    """The database's stamp and, once found, why it does not hold what Dagster recorded as loaded into
    `asset_key`, to keep in the cursor. Looked at only when the file changed and no run of the sensor
    still loads."""
    stamp = database_stamp(path)
    if cursor.database_problem is not None or stamp == cursor.database:
        return cursor.database, cursor.database_problem
    if runs_in_flight(instance, "dynamic_sensor"):
        return cursor.database, None
    recorded = latest_recorded_load(instance, asset_key)
    if recorded is None:  # nothing loaded yet: nothing the database could lack
        return None, None
    try:
        loaded = loaded_versions([recorded.partition_key])
    except DatabaseBusy:
        return cursor.database, None
    return stamp, lost_load_problem(recorded, loaded, path)

"""Settings and connections for the assets and the sensor, read when a run or a tick starts.

Each field may be set in the launchpad; left empty it falls back to its environment variable (see
`.env.example`), then to the default, so pointing the project at another folder or database needs no
code change and no reload.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from dagster_and_etl.ingest.partition_keys import file_name_for_key, key_problem
from dagster_and_etl.settings import read_count_setting, read_path_setting, read_seconds_setting

if TYPE_CHECKING:
    import duckdb


class SourceFolder(dg.ConfigurableResource):
    """The folder source CSV files land in, one file per partition key."""

    source_dir: str = Field(default="", description="Empty: $SOURCE_DIR, else data/source.")
    settle_seconds: float | None = Field(
        default=None,
        description="How long a file must be unchanged before the sensor loads it."
        " Empty: $SENSOR_SETTLE_SECONDS, else 5.",
    )

    max_batch: int | None = Field(
        default=None,
        description="The most files the sensor puts in one run. Empty: $SENSOR_MAX_BATCH, else 500.",
    )
    max_runs_per_tick: int | None = Field(
        default=None,
        description="The most runs one sensor tick requests. Empty: $SENSOR_MAX_RUNS_PER_TICK, else 20.",
    )

    @property
    def path(self) -> Path:
        return read_path_setting("SOURCE_DIR", self.source_dir)

    @property
    def batch_size(self) -> int:
        return read_count_setting("SENSOR_MAX_BATCH", self.max_batch)

    @property
    def runs_per_tick(self) -> int:
        return read_count_setting("SENSOR_MAX_RUNS_PER_TICK", self.max_runs_per_tick)

    @property
    def settle_ns(self) -> int:
        return int(read_seconds_setting("SENSOR_SETTLE_SECONDS", self.settle_seconds) * 1e9)

    def file_for(self, partition_key: str) -> Path:
        """The source file of a partition; fails for a key that could name a path outside the folder."""
        problem = key_problem(partition_key)
        if problem is not None:
            raise dg.Failure(
                description=f"Partition key {partition_key!r} cannot name a source file: {problem}.",
                metadata={"partition_key": partition_key, "source_dir": str(self.path)},
                allow_retries=False,
            )
        return self.path / file_name_for_key(partition_key)


class StagingDatabase(dg.ConfigurableResource):
    """The DuckDB database file the partitions are loaded into."""

    database: str = Field(default="", description="Empty: $DUCKDB_DATABASE, else data/staging/data.duckdb.")

    @property
    def path(self) -> Path:
        return read_path_setting("DUCKDB_DATABASE", self.database)

    @contextmanager
    def get_connection(self) -> Iterator["duckdb.DuckDBPyConnection"]:
        """A connection that is closed however the block ends, releasing the file's write lock.

        Opening waits, with backoff, for another process that holds the file; if it never lets go the
        run fails saying so, and Dagster may retry it.
        """
        import duckdb  # here, not at the top: loading the code location need not load DuckDB
        from dagster_duckdb import DuckDBResource

        self.path.parent.mkdir(parents=True, exist_ok=True)
        opener = DuckDBResource(database=str(self.path)).get_connection()
        try:
            conn = opener.__enter__()
        except duckdb.IOException as error:
            raise dg.Failure(
                description=f"The DuckDB database {self.path} is held by another process: {error}",
                metadata={"database": str(self.path)},
            ) from error
        try:
            yield conn
        finally:
            conn.close()


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"source_folder": SourceFolder(), "duckdb": StagingDatabase()})

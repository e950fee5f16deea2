"""The resources: where files land, the DuckDB file, the sensor's tuning, the freshness policy, alerts.

Each field overrides one setting of `settings.py` for a run or a tick (the launchpad shows them); left
empty, the setting is read from the environment when the run or tick uses it, so pointing the project at
another folder or database needs no code change and no reload.
"""

import functools
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from dagster_and_etl import settings
from dagster_and_etl.ingest.archive import archive_destination
from dagster_and_etl.ingest.duckdb_tables import DatabaseBusy
from dagster_and_etl.ingest.notification_queue import NotificationQueue, queue_region, sqs_client
from dagster_and_etl.ingest.partition_keys import key_problem
from dagster_and_etl.ingest.sensor_plan import TickRules
from dagster_and_etl.ingest.source import Source
from dagster_and_etl.ingest.source_bucket import BucketSource
from dagster_and_etl.ingest.source_folder import FolderSource

if TYPE_CHECKING:
    from dagster_aws.s3 import S3Resource

    from dagster_and_etl.ingest.duckdb_tables import RawTable


class SourceFiles(dg.ConfigurableResource):
    """Where source CSV files land, one file per partition key: a local folder, or an S3 bucket prefix
    (`s3://bucket/prefix/`) reached with dagster-aws's `S3Resource` and the standard AWS settings
    (`AWS_ENDPOINT_URL`, `AWS_REGION`, the credential chain)."""

    source_dir: str = settings.SOURCE_DIR.field("")
    settle_seconds: float | None = settings.SENSOR_SETTLE_SECONDS.field()
    queue_url: str = settings.SOURCE_QUEUE_URL.field("")
    reconcile_minutes: float | None = settings.SOURCE_RECONCILE_MINUTES.field()
    archive: str = settings.SOURCE_ARCHIVE.field("")
    archive_after_hours: float | None = settings.SOURCE_ARCHIVE_AFTER_HOURS.field()

    @property
    def uri(self) -> str:
        return settings.SOURCE_DIR.read(self.source_dir)

    @functools.cached_property
    def source(self) -> Source:
        """The folder or the bucket prefix, as the sensor and the loads read it: made once per run or
        tick, since Dagster starts a resource anew for each, and with it a bucket's one S3 client."""
        uri = self.uri
        if settings.is_s3_uri(uri):
            return BucketSource.from_uri(uri, functools.cache(_s3_resource().get_client))
        return FolderSource(Path(uri))

    @property
    def settle_ns(self) -> int:
        return int(settings.SENSOR_SETTLE_SECONDS.read(self.settle_seconds) * 1e9)

    @functools.cached_property
    def queue(self) -> NotificationQueue | None:
        """The queue of the bucket's event notifications, which the sensor reads instead of listing the
        prefix (notification mode); None when it lists."""
        url = settings.SOURCE_QUEUE_URL.read(self.queue_url)
        if url is None:
            return None
        if not isinstance(self.source, BucketSource):
            raise settings.SettingError(
                f"SOURCE_QUEUE_URL is set, but SOURCE_DIR is the folder {self.uri}: event notifications"
                " come from an S3 bucket. Unset SOURCE_QUEUE_URL, or point SOURCE_DIR at the bucket"
            )
        region = queue_region(url)
        if region is None:
            raise settings.SettingError(f"SOURCE_QUEUE_URL {url} names no region: set AWS_REGION")
        return NotificationQueue(url, functools.cache(functools.partial(sqs_client, region)))

    @property
    def reconcile_ns(self) -> int:
        return int(settings.SOURCE_RECONCILE_MINUTES.read(self.reconcile_minutes) * 60e9)

    @property
    def archive_root(self) -> str | None:
        """Where `archive_job` moves loaded files (see `archive_destination`); None when unset."""
        root = settings.SOURCE_ARCHIVE.read(self.archive)
        if root is None:
            return None
        try:
            return archive_destination(root, self.source)
        except ValueError as problem:
            raise settings.SettingError(str(problem)) from None

    @property
    def archive_after_ns(self) -> int:
        return int(settings.SOURCE_ARCHIVE_AFTER_HOURS.read(self.archive_after_hours) * 3600e9)

    def checked_key(self, partition_key: str) -> str:
        """The key, once it is sure to name a file in the source; fails for one that could name a path
        outside the folder or prefix."""
        problem = key_problem(partition_key)
        if problem is not None:
            raise dg.Failure(
                description=f"Partition key {partition_key!r} cannot name a source file: {problem}.",
                metadata={"partition_key": partition_key, "source_dir": self.uri},
                allow_retries=False,
            )
        return partition_key


def _s3_resource() -> "S3Resource":
    """dagster-aws's resource, configured as boto3 is: AWS_ENDPOINT_URL, AWS_REGION, the credential chain.
    The client it makes is made when the bucket is first read, then kept for the run or tick.

    Imported here, for a bucket only: a folder source is installed without the `s3` extra and never
    loads dagster-aws."""
    try:
        from dagster_aws.s3 import S3Resource
    except ImportError:
        raise settings.SettingError(
            "SOURCE_DIR is an S3 prefix, and dagster-aws is not installed: install dagster-and-etl[s3]"
        ) from None
    return S3Resource()


class SensorTuning(dg.ConfigurableResource):
    """How `dynamic_sensor` batches what it finds, and what its first tick does; only the sensor takes it."""

    max_batch: int | None = settings.SENSOR_MAX_BATCH.field()
    max_batch_bytes: str | None = settings.SENSOR_MAX_BATCH_BYTES.field()
    max_runs_per_tick: int | None = settings.SENSOR_MAX_RUNS_PER_TICK.field()
    include_existing_files: bool | None = settings.SENSOR_INCLUDE_EXISTING_FILES.field()

    @property
    def batch_size(self) -> int:
        return settings.SENSOR_MAX_BATCH.read(self.max_batch)

    @property
    def batch_bytes(self) -> int:
        return settings.SENSOR_MAX_BATCH_BYTES.read(self.max_batch_bytes)

    @property
    def runs_per_tick(self) -> int:
        return settings.SENSOR_MAX_RUNS_PER_TICK.read(self.max_runs_per_tick)

    @property
    def include_existing(self) -> bool:
        return settings.SENSOR_INCLUDE_EXISTING_FILES.read(self.include_existing_files)

    def rules(self, source_files: SourceFiles) -> TickRules:
        """The rules a tick plans by: this tuning, with the source's settle window and lookback."""
        return TickRules(
            settle_ns=source_files.settle_ns,
            max_batch=self.batch_size,
            max_batch_bytes=self.batch_bytes,
            max_runs=self.runs_per_tick,
            include_existing=self.include_existing,
            lookback_ns=source_files.source.lookback_ns,
        )


class FileFreshness(dg.ConfigurableResource):
    """When the event-driven table is overdue: for the `files_loaded_in_time` check and `alert_sensor`."""

    overdue_minutes: int | None = settings.FILE_OVERDUE_MINUTES.field()

    @property
    def overdue_after_minutes(self) -> int:
        return settings.FILE_OVERDUE_MINUTES.read(self.overdue_minutes)


class StagingDatabase(DuckDBResource):
    """The DuckDB database file the partitions are loaded into: dagster-duckdb's resource, whose file and
    DuckDB settings may also come from the environment, read as each run or tick starts."""

    database: str = settings.DUCKDB_DATABASE.field("")
    memory_limit: str = settings.DUCKDB_MEMORY_LIMIT.field("")
    temp_directory: str = settings.DUCKDB_TEMP_DIRECTORY.field("")
    threads: str = settings.DUCKDB_THREADS.field("")

    def create_resource(self, context: dg.InitResourceContext) -> "StagingDatabase":
        """What a run or a tick is handed: this resource with the settings left empty read from the
        environment now, so a changed `.env` applies at the next run without reloading the code location
        (`dg.EnvVar` has no default, so it cannot name an optional setting)."""
        duckdb_settings = {
            "memory_limit": settings.DUCKDB_MEMORY_LIMIT.read(self.memory_limit),
            "temp_directory": settings.DUCKDB_TEMP_DIRECTORY.read(self.temp_directory),
            "threads": settings.DUCKDB_THREADS.read(self.threads),
        }
        chosen = {name: value for name, value in duckdb_settings.items() if value is not None}
        return self.model_copy(
            update={
                "database": str(settings.DUCKDB_DATABASE.read(self.database)),
                "connection_config": {**chosen, **self.connection_config},
            }
        )

    @property
    def path(self) -> Path:
        if not self.database:
            raise dg.DagsterInvariantViolationError(
                "StagingDatabase() names no file until Dagster starts it for a run or a tick:"
                " use dg.build_resources, or give it database="
            )
        return Path(self.database)

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """dagster-duckdb's connection, which waits with backoff while another process holds the file; the
        file's folder is made first, the connection is closed however the block ends, and a file never let
        go fails the run saying so (Dagster may retry it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            try:
                conn = stack.enter_context(super().get_connection())
            except duckdb.IOException as error:
                raise dg.Failure(
                    description=f"The DuckDB database {self.path} is held by another process: {error}",
                    metadata={"database": str(self.path)},
                ) from error
            stack.callback(conn.close)  # dagster-duckdb's closes it only when the block ends without error
            # A run's output is its log: DuckDB's progress bar, drawn for any statement that runs over 2 s,
            # would fill it, a line per redraw. A setting of the connection, not of the database's config.
            conn.execute("SET enable_progress_bar = false")
            yield conn

    @contextmanager
    def read_now(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A read-only connection at once, without waiting: None when there is no database yet, and
        `DatabaseBusy` while another process writes to it."""
        if not self.path.exists():
            yield None
            return
        try:
            conn = duckdb.connect(self.database, read_only=True, config=self.connection_config)
        except duckdb.IOException as error:
            raise DatabaseBusy(f"The DuckDB database {self.path} is in use by a load: {error}") from error
        try:
            yield conn
        finally:
            conn.close()

    def loaded_versions(self, table: "RawTable", partition_keys: list[str] | None = None) -> dict[str, str]:
        """The file version each partition of `table` (or of `partition_keys`) holds, from the load
        history, read at once: `DatabaseBusy` while a load writes."""
        from dagster_and_etl.ingest.duckdb_tables import loaded_versions

        with self.read_now() as conn:
            if conn is None:
                return {}
            found = loaded_versions(conn, table, partition_keys)
            return {key: version for key, (version, _) in found.items()}


class AlertWebhook(dg.ConfigurableResource):
    """Where alerts are posted: the incoming webhook in $ALERT_WEBHOOK_URL (Slack, Mattermost,
    Rocket.Chat). The URL is a secret, so it is read from the environment only, never from
    configuration the UI shows; unset, no alert is sent."""

    ui_url: str = settings.DAGSTER_UI_URL.field("")
    timeout_seconds: float | None = settings.ALERT_WEBHOOK_TIMEOUT_SECONDS.field()

    @property
    def webhook_url(self) -> str | None:
        return settings.ALERT_WEBHOOK_URL.read()

    @property
    def dagster_ui_url(self) -> str:
        return settings.DAGSTER_UI_URL.read(self.ui_url)

    @property
    def timeout(self) -> float:
        from dagster_and_etl.alerting.webhook import MAX_TIMEOUT_SECONDS

        seconds = settings.ALERT_WEBHOOK_TIMEOUT_SECONDS.read(self.timeout_seconds)
        if not 0 < seconds <= MAX_TIMEOUT_SECONDS:
            raise ValueError(
                f"ALERT_WEBHOOK_TIMEOUT_SECONDS must be more than 0 and at most {MAX_TIMEOUT_SECONDS},"
                f" got {seconds:g}: a tick must end within Dagster's limit of 60 s"
            )
        return seconds


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "source_files": SourceFiles(),
            "database": StagingDatabase(),
            "sensor_tuning": SensorTuning(),
            "freshness": FileFreshness(),
            "alerts": AlertWebhook(),
        }
    )

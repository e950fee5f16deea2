"""The production instance (`deploy/dagster.yaml`) on a real PostgreSQL server: Dagster keeps its records
there, and the exactly-once core holds on it as it does on SQLite.

The cases of `test_exactly_once` collected here run again, files in a folder, on a Dagster instance in
PostgreSQL (`storage="postgres"`); in their own module they run on SQLite, in a folder and in a bucket.
"""

from pathlib import Path

import dagster as dg
import psycopg2
import psycopg2.extras
import pytest

from dagster_and_etl.local_postgres import LocalPostgres
from dagster_and_etl.sample_data import sample_csv
from tests.landing import FolderLanding
from tests.postgres import production_instance_config
from tests.support import rows_per_partition, write_source_file
from tests.test_exactly_once import (  # noqa: F401  (collected here again, on PostgreSQL)
    daemon,
    test_a_bad_file_holds_back_only_itself_and_loads_once_fixed,
    test_a_daemon_restarted_mid_backlog_loads_every_file_once,
    test_a_reset_cursor_requests_nothing_already_loaded,
)

pytestmark = pytest.mark.parametrize("storage", ["postgres"], indirect=True)

DAY = "2018-01-22"


@pytest.fixture
def landing(source_dir: Path) -> FolderLanding:
    """Files in a folder only: where the files land is not what these tests are about."""
    return FolderLanding(source_dir)


def rows(database: dict[str, object], query: str, *params: object, factory=None) -> list:
    """What the instance's own PostgreSQL database (or PgBouncer's console) answers, read with a connection
    of the test's; each row a tuple, or what the cursor `factory` makes of it."""
    conn = psycopg2.connect(**database)
    try:
        conn.autocommit = True  # PgBouncer's console takes no transactions
        with conn.cursor(cursor_factory=factory) as cursor:
            cursor.execute(query, params)
            return cursor.fetchall()
    finally:
        conn.close()


def test_the_production_instance_keeps_runs_events_and_sensor_state_in_postgres(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    postgres: dict[str, str],
    postgres_server: LocalPostgres,
    source_dir: Path,
    duckdb_path: Path,
) -> None:
    write_source_file(source_dir, f"{DAY}.csv", sample_csv(seed=1))
    job = defs.resolve_job_def("import_partition_job")

    result = job.execute_in_process(instance=instance, partition_key=DAY)

    assert result.success
    assert rows_per_partition(duckdb_path, "raw_partition_data") == {DAY: 10}
    database = postgres_server.connection(postgres["DAGSTER_POSTGRES_DB"])
    assert rows(database, "SELECT status FROM runs WHERE run_id = %s", result.run_id) == [("SUCCESS",)]
    ((events,),) = rows(database, "SELECT count(*) FROM event_logs WHERE run_id = %s", result.run_id)
    assert events > 10
    materialized = instance.get_materialized_partitions(dg.AssetKey("duckdb_partition_table"))
    assert materialized == {DAY}
    # What the file sets besides the storage, as Dagster reads it.
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
    assert not instance.run_retries_retry_on_asset_or_op_failure
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    assert instance.run_monitoring_enabled


def test_the_instance_names_the_psycopg2_driver(
    instance: dg.DagsterInstance, postgres: dict[str, str]
) -> None:
    """SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3: the storage must name psycopg2, the driver
    dagster-postgres is built on, and the one that is installed."""
    engine_url = instance.run_storage._engine.url
    assert engine_url.drivername == "postgresql+psycopg2"

    bare = production_instance_config()
    bare["storage"]["postgres"]["postgres_db"]["scheme"] = "postgresql"
    with pytest.raises(ModuleNotFoundError, match="psycopg"), dg.instance_for_test(overrides=bare):
        pass


def test_the_instance_reaches_postgres_through_pgbouncer_which_keeps_the_connections_open(
    instance: dg.DagsterInstance, postgres: dict[str, str], postgres_server: LocalPostgres
) -> None:
    """dagster-postgres opens and closes a connection for every query; PgBouncer (deploy/pgbouncer.ini) takes
    them and keeps its own to PostgreSQL open, so that the server and the password check are not paid for
    each one."""
    database = postgres["DAGSTER_POSTGRES_DB"]
    assert postgres["DAGSTER_POSTGRES_PORT"] == str(postgres_server.pooler_port)
    for _ in range(20):
        instance.get_runs()

    console = {**postgres_server.connection("pgbouncer"), "port": postgres_server.pooler_port}
    stats = {
        row["database"]: row for row in rows(console, "SHOW STATS", factory=psycopg2.extras.RealDictCursor)
    }
    assert stats[database]["total_xact_count"] >= 20  # the instance's queries went through PgBouncer
    server = postgres_server.connection("postgres")
    ((kept,),) = rows(server, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", database)
    assert kept >= 1  # Dagster has closed its connections; PgBouncer keeps the server's open

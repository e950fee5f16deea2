"""A real PostgreSQL server for the tests of the production instance (`deploy/dagster.yaml`).

Each test process starts one server of Debian's `postgresql` package on 127.0.0.1 and a free port, with
Debian's PgBouncer in front of it as in production (`deploy/pgbouncer.ini`), through the same
`dagster_and_etl.local_postgres` that `make dev-postgres` uses, installing the packages with apt-get first
when they are missing; each test gets a database of its own on it. A test module imports
`postgres_server_fixture` and `postgres_fixture` to have the fixtures `postgres_server` and `postgres`.
"""

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dagster_and_etl import local_postgres
from dagster_and_etl.local_postgres import LocalPostgres
from tests.dagster_dev_process import PROJECT_ROOT, free_port
from tests.debian import ensure_package


def production_instance_config() -> dict:
    """deploy/dagster.yaml as Dagster reads it."""
    return yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())


def install_postgres() -> None:
    """Debian's `postgresql` and `pgbouncer`, installed with apt-get when their programs are not there."""
    ensure_package("postgresql", lambda: bool(list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))))
    ensure_package("pgbouncer", lambda: local_postgres.find_pooler() is not None)


@pytest.fixture(name="postgres_server", scope="session")
def postgres_server_fixture() -> Iterator[LocalPostgres]:
    install_postgres()
    # Not under the tests' TMPDIR, which only root may enter: the server runs as the `postgres` user.
    base = Path(
        tempfile.mkdtemp(prefix="dagster-and-etl-pg-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
    )
    base.chmod(0o755)
    try:
        with local_postgres.running(base / "cluster", free_port(), free_port()) as server:
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(name="postgres")
def postgres_fixture(postgres_server: LocalPostgres, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A database of this test's own, and the production instance's environment on it, set: the
    DAGSTER_POSTGRES_* settings and DAGSTER_EVENT_BATCH_SIZE."""
    database = f"test_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(database)
    settings = postgres_server.environment(database)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return settings

"""Shared fixtures: each test gets its own source folder, DuckDB file and Dagster instance."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from dagster_and_etl.definitions import defs as load_defs
from dagster_and_etl.defs.resources import StagingDatabase
from tests.browser import FAILED
from tests.landing import bucket, landing, s3_server, s3_settings  # noqa: F401  (fixtures)
from tests.postgres import postgres_fixture, postgres_server_fixture, production_instance_config  # noqa: F401
from tests.support import (  # noqa: F401  (re-exported for test modules)
    REFERENCE_DATA,
    SensorTicks,
    requested_keys,
    run_keys,
    write_source_file,
)
from tests.webhook import Webhook


@pytest.fixture(scope="session")
def defs() -> dg.Definitions:
    return load_defs()


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "source"
    folder.mkdir()
    return folder


@pytest.fixture
def duckdb_path(tmp_path: Path) -> Path:
    return tmp_path / "staging" / "data.duckdb"


@pytest.fixture
def staging_database(duckdb_path: Path) -> StagingDatabase:
    """The resource on this test's DuckDB file, for a test that loads without a run."""
    return StagingDatabase(database=str(duckdb_path))


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch, source_dir: Path, duckdb_path: Path) -> None:
    """Points every setting at this test's own folder and database; files settle at once, and the
    sensor requests one run per file unless a test asks for batches."""
    monkeypatch.setenv("SOURCE_DIR", str(source_dir))
    monkeypatch.setenv("DUCKDB_DATABASE", str(duckdb_path))
    monkeypatch.setenv("SENSOR_SETTLE_SECONDS", "0")
    monkeypatch.setenv("SENSOR_MAX_BATCH", "1")
    monkeypatch.delenv("SENSOR_MAX_RUNS_PER_TICK", raising=False)


@pytest.fixture
def storage(request: pytest.FixtureRequest) -> str:
    """Where the Dagster instance keeps runs, events and sensor state: SQLite, as under `make dev`, unless
    a test is parametrized with `storage="postgres"` (indirect): deploy/dagster.yaml on a real server."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def instance(storage: str, request: pytest.FixtureRequest) -> Iterator[dg.DagsterInstance]:
    overrides = None
    if storage == "postgres":
        request.getfixturevalue("postgres")
        overrides = production_instance_config()
    with dg.instance_for_test(overrides=overrides) as test_instance:
        yield test_instance


@pytest.fixture
def sensor(instance: dg.DagsterInstance, defs: dg.Definitions) -> SensorTicks:
    return SensorTicks(instance=instance, defs=defs)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Marks a test whose body failed, so that the browser fixture saves what the page showed."""
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A chat webhook on loopback that records what is posted to it (see tests/webhook.py)."""
    server = Webhook()
    try:
        yield server
    finally:
        server.release.set()
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def migration_scripts_read_once() -> Iterator[None]:
    """Dagster's SQLite storage reads its migration scripts from disk again for every database it opens or
    creates: each test's instance, and each run's own event log. They never change during a session, so
    the tests read them once; what Dagster does with them (check or stamp the schema) is unchanged. This
    is a third of what a test instance costs to create and a sixth of an in-process run."""
    from alembic.script import ScriptDirectory

    read = ScriptDirectory.from_config.__func__
    scripts: dict[str, ScriptDirectory] = {}

    def read_once(cls: type[ScriptDirectory], config) -> ScriptDirectory:
        location = config.get_alembic_option("script_location")
        if location not in scripts:
            scripts[location] = read(cls, config)
        return scripts[location]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ScriptDirectory, "from_config", classmethod(read_once))
        yield


@pytest.fixture(scope="session", autouse=True)
def aws_models_read_once() -> Iterator[None]:
    """botocore reads and parses its JSON service models (S3's alone is over a megabyte) again for every
    session, and dagster-aws's `S3Resource` starts a new session for each client it makes: one for each
    tick and each run, as the project means it to. In a test process, which ticks and runs hundreds of
    times, that parsing was a third of the bucket tests' CPU. The models never change, so every session
    here shares one loader; the clients, their sessions and credentials are still made per tick and per
    run, and what they send is unchanged."""
    import botocore.session

    create = botocore.session.create_loader
    loaders: dict[str | None, object] = {}

    def create_once(search_paths: str | None = None) -> object:
        if search_paths not in loaders:
            loaders[search_paths] = create(search_paths)
        return loaders[search_paths]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", create_once)
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that start `dg dev` first, then the other slow ones, each followed by one quick test, then
    the rest. `make test` hands each worker two tests to start with and then one at a time as it frees up
    (`--dist load --maxschedchunk 1`), so the longest tests start at once, one on each worker, and the
    quick ones fill the time around them instead of waiting behind them."""
    starts_dg_dev = [item for item in items if "dagster_dev" in item.fixturenames]
    slow = [item for item in items if item.get_closest_marker("slow") and item not in starts_dg_dev]
    quick = [item for item in items if not item.get_closest_marker("slow")]
    first = starts_dg_dev + slow
    ordered = [test for index, item in enumerate(first) for test in (item, *quick[index : index + 1])]
    items[:] = ordered + quick[len(first) :]

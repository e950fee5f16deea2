"""`archive_job` moves loaded files out of SOURCE_DIR into SOURCE_ARCHIVE once their window has passed:
only the version loaded, never losing a file, recorded in `archived_files`, in a folder and a bucket."""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from dagster_and_etl.defs.resources import SourceFiles
from dagster_and_etl.sample_data import sample_csv
from dagster_and_etl.testing import SensorDaemon, launched_partition_keys
from tests.landing import BucketLanding, FolderLanding
from tests.support import rows_per_partition, run_daily, wait_until_settled

Landing = FolderLanding | BucketLanding


@pytest.fixture
def daemon(instance: dg.DagsterInstance, defs: dg.Definitions) -> SensorDaemon:
    return SensorDaemon(instance, defs)


@pytest.fixture
def archive(landing: Landing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """SOURCE_ARCHIVE for the landing zone: a folder beside the source folder, or a prefix of its bucket."""
    where = (
        str(tmp_path / "archive") if isinstance(landing, FolderLanding) else f"s3://{landing.bucket}/archive/"
    )
    monkeypatch.setenv("SOURCE_ARCHIVE", where)
    return where


def archive_run(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    result = defs.resolve_job_def("archive_job").execute_in_process(instance=instance)
    assert result.success
    return result


def moved(result: dg.ExecuteInProcessResult) -> int:
    return result.output_for_node("archive_loaded_files")


def archived_files(database: Path) -> list[tuple[str, str, str]]:
    """The rows of `archived_files`: partition key, where the file was, where it went."""
    with duckdb.connect(str(database), read_only=True) as conn:
        query = "SELECT partition_key, source, archived_to FROM archived_files ORDER BY ALL"
        return conn.execute(query).fetchall()


def in_archive(landing: Landing, archive: str) -> dict[str, bytes]:
    """Every file under the archive, by its path below it, with its contents."""
    if isinstance(landing, FolderLanding):
        root = Path(archive)
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    prefix = archive.removeprefix(f"s3://{landing.bucket}/")
    found = landing.s3.list_objects_v2(Bucket=landing.bucket, Prefix=prefix).get("Contents", [])
    return {
        o["Key"][len(prefix) :]: landing.s3.get_object(Bucket=landing.bucket, Key=o["Key"])["Body"].read()
        for o in found
    }


def source_names() -> list[str]:
    return sorted(f.name for f in SourceFiles().source.list().files)


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def test_loaded_files_are_archived_once_their_window_has_passed_and_recorded(
    landing: Landing,
    archive: str,
    daemon: SensorDaemon,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    duckdb_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    landing.write("a.csv", sample_csv(seed=1))
    landing.write("b.csv", sample_csv(seed=2))
    landing.wait_until_settled()
    assert sorted(launched_partition_keys(daemon.run_until_idle())) == ["a", "b"]

    assert moved(archive_run(defs, instance)) == 0  # loaded just now: 24 hours to go, by default
    assert source_names() == ["a.csv", "b.csv"]

    monkeypatch.setenv("SOURCE_ARCHIVE_AFTER_HOURS", "0")
    assert moved(archive_run(defs, instance)) == 2

    assert source_names() == []
    day = today()
    assert in_archive(landing, archive) == {
        f"{day}/a.csv": sample_csv(seed=1).encode(),
        f"{day}/b.csv": sample_csv(seed=2).encode(),
    }
    assert archived_files(duckdb_path) == [
        (key, landing.location(f"{key}.csv"), f"{archive.rstrip('/')}/{day}/{key}.csv") for key in ("a", "b")
    ]
    assert rows_per_partition(duckdb_path) == {"a": 10, "b": 10}  # what was loaded stays
    assert daemon.tick().launched == []  # gone from the source: nothing to load
    assert moved(archive_run(defs, instance)) == 0


def test_a_file_rewritten_since_its_load_stays_and_loads_and_then_its_new_version_is_archived(
    landing: Landing,
    archive: str,
    daemon: SensorDaemon,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    duckdb_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCE_ARCHIVE_AFTER_HOURS", "0")
    landing.write("a.csv", sample_csv(seed=1))
    landing.wait_until_settled()
    assert launched_partition_keys(daemon.run_until_idle()) == ["a"]
    landing.write("a.csv", sample_csv(seed=2, rows=4))  # rewritten: this version is not loaded yet

    assert moved(archive_run(defs, instance)) == 0
    assert source_names() == ["a.csv"]

    landing.wait_until_settled()
    assert launched_partition_keys(daemon.run_until_idle()) == ["a"]
    assert rows_per_partition(duckdb_path) == {"a": 4}
    assert moved(archive_run(defs, instance)) == 1
    assert in_archive(landing, archive) == {f"{today()}/a.csv": sample_csv(seed=2, rows=4).encode()}


def test_a_move_cut_short_between_copy_and_delete_is_finished_by_the_next_run(
    bucket: BucketLanding,
    daemon: SensorDaemon,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    duckdb_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    archive = f"s3://{bucket.bucket}/archive/"
    monkeypatch.setenv("SOURCE_ARCHIVE", archive)
    monkeypatch.setenv("SOURCE_ARCHIVE_AFTER_HOURS", "0")
    bucket.write("a.csv", sample_csv(seed=1))
    bucket.wait_until_settled()
    assert launched_partition_keys(daemon.run_until_idle()) == ["a"]
    # What a run stopped after its copy and before its delete leaves: the object in both places.
    copy_source = {"Bucket": bucket.bucket, "Key": "landing/a.csv"}
    bucket.s3.copy_object(Bucket=bucket.bucket, Key=f"archive/{today()}/a.csv", CopySource=copy_source)

    assert moved(archive_run(defs, instance)) == 1

    assert source_names() == []
    assert in_archive(bucket, archive) == {f"{today()}/a.csv": sample_csv(seed=1).encode()}  # one copy
    assert archived_files(duckdb_path) == [("a", bucket.location("a.csv"), f"{archive}{today()}/a.csv")]


def test_runs_re_executed_after_their_files_were_archived_do_not_fail(
    source_dir: Path,
    tmp_path: Path,
    daemon: SensorDaemon,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    duckdb_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCE_ARCHIVE", str(tmp_path / "archive"))
    monkeypatch.setenv("SOURCE_ARCHIVE_AFTER_HOURS", "0")
    (source_dir / "2018-01-22.csv").write_text(sample_csv(seed=1))
    wait_until_settled(source_dir)
    daily = run_daily(defs, instance, "2018-01-22")
    (dynamic,) = [run for tick in daemon.run_until_idle() for run in tick.runs]
    assert daily.success and dynamic.success
    assert moved(archive_run(defs, instance)) == 1  # held by both tables: both loaded it

    for job_name, first in (("import_partition_job", daily), ("import_dynamic_partition_job", dynamic)):
        again = defs.resolve_job_def(job_name).execute_in_process(
            partition_key="2018-01-22",
            instance=instance,
            tags={"dagster/parent_run_id": first.run_id, "dagster/root_run_id": first.run_id},
            raise_on_error=False,
        )
        assert again.success, job_name
    assert rows_per_partition(duckdb_path) == {"2018-01-22": 10}
    assert rows_per_partition(duckdb_path, "raw_partition_data") == {"2018-01-22": 10}


@pytest.mark.parametrize(
    ("source", "archive", "problem"),
    [
        ("data/in", "s3://bucket/archive/", "must be another folder than SOURCE_DIR"),
        ("data/in", "data/in", "must be another folder than SOURCE_DIR"),
        ("s3://bucket/in/", "data/archive", "must be another prefix of the bucket"),
        ("s3://bucket/in/", "s3://other/archive/", "must be another prefix of the bucket"),
        ("s3://bucket/in/", "s3://bucket/in/", "must be another prefix of the bucket"),
    ],
)
def test_an_archive_that_cannot_take_the_sources_files_is_refused_naming_both(
    source: str, archive: str, problem: str
) -> None:
    resource = SourceFiles(source_dir=source, archive=archive)
    with pytest.raises(dg.Failure, match=problem) as refused:
        _ = resource.archive_root
    assert archive.rstrip("/") in str(refused.value.description)


def test_without_source_archive_nothing_is_ever_moved(
    source_dir: Path, defs: dg.Definitions, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_ARCHIVE", raising=False)
    monkeypatch.setenv("SOURCE_ARCHIVE_AFTER_HOURS", "0")
    (source_dir / "2018-01-22.csv").write_text(sample_csv(seed=1))
    assert run_daily(defs, instance, "2018-01-22").success

    assert moved(archive_run(defs, instance)) == 0

    assert source_names() == ["2018-01-22.csv"]

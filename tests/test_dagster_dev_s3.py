"""The project with SOURCE_DIR in a bucket, as `make dev-s3` runs it: moto's S3 server on loopback, the
AWS settings of `dagster_and_etl.local_s3`, its queue of the bucket's notifications, and a real `dagster dev`
whose sensor loads what is uploaded."""

import time
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.scheduler.instigation import InstigatorType

from dagster_and_etl import local_s3
from dagster_and_etl.ingest.notification_queue import NotificationQueue
from dagster_and_etl.ingest.s3_events import ObjectEvent
from dagster_and_etl.ingest.source_bucket import BucketSource, parse_s3_uri
from dagster_and_etl.sample_data import write_sample_files
from tests.dagster_dev_process import (
    dagster_dev_fixture,  # noqa: F401  (the fixture `dagster_dev`)
    dagster_home_fixture,  # noqa: F401  (the fixture `dagster_home`)
    start_sensor,
    wait_for,
)
from tests.landing import BucketLanding, S3Server
from tests.support import rows_per_partition
from tests.test_dagster_dev import SENSOR, all_finished, finished_runs, partition_status


def new_source() -> str:
    return f"s3://demo-{uuid.uuid4().hex[:12]}/incoming/"


def test_create_landing_puts_the_sample_days_of_make_sample_data_under_the_prefix(
    s3_server: S3Server, tmp_path: Path
) -> None:
    source = new_source()
    s3 = local_s3.client(s3_server.endpoint_url)

    local_s3.create_landing(s3, source)

    expected = {path.name: path.read_text() for path in write_sample_files(tmp_path, local_s3.FIRST_DAY, 5)}
    listing = BucketSource.from_uri(source, lambda: s3).list()
    assert sorted(file.partition_key for file in listing.files) == [f"2018-01-{day}" for day in range(22, 27)]
    bucket, prefix = source[len("s3://") :].split("/", 1)
    bodies = {
        name: s3.get_object(Bucket=bucket, Key=prefix + name)["Body"].read().decode() for name in expected
    }
    assert bodies == expected


def test_put_uploads_under_the_prefix_and_says_when_the_sensor_would_ignore_a_name(
    s3_server: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = new_source()
    s3 = local_s3.client(s3_server.endpoint_url)
    local_s3.create_landing(s3, source, days=0)
    (tmp_path / "notes.txt").write_text("a,b")
    where = ["--endpoint-url", s3_server.endpoint_url, "--source", source]

    assert local_s3.main(["put", str(tmp_path / "notes.txt"), "--as", "vendor-a.csv", *where]) == 0
    assert local_s3.main(["put", str(tmp_path / "notes.txt"), *where]) == 0

    assert capsys.readouterr().out.splitlines() == [
        f"{source}vendor-a.csv",
        f"{source}notes.txt  (the sensor ignores it: not <partition key>.csv, .csv.gz or .csv.zst)",
    ]
    assert [file.name for file in BucketSource.from_uri(source, lambda: s3).list().files] == ["vendor-a.csv"]


def test_create_queue_has_the_bucket_send_it_the_source_files_under_the_prefix(s3_server: S3Server) -> None:
    s3, source = local_s3.client(s3_server.endpoint_url), new_source()
    local_s3.create_landing(s3, source, days=0)
    url = local_s3.create_queue(s3_server.endpoint_url, source, f"q-{uuid.uuid4().hex[:12]}")
    bucket, prefix = parse_s3_uri(source)
    names = ["a.csv", "b.csv.gz", "c.csv.zst", "notes.txt", "d.csv.gz.part"]
    for key in [prefix + name for name in names] + ["elsewhere/b.csv"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.delete_object(Bucket=bucket, Key=f"{prefix}a.csv")

    queue = NotificationQueue(url, lambda: local_s3.client(s3_server.endpoint_url, "sqs"))
    messages = queue.receive(100, 30, time.monotonic() + 60)

    events = [event for message in messages for event in message.notification.events]
    assert sorted(events, key=lambda event: (event.key, not event.created)) == [
        ObjectEvent(bucket, f"{prefix}a.csv", True),
        ObjectEvent(bucket, f"{prefix}a.csv", False),
        ObjectEvent(bucket, f"{prefix}b.csv.gz", True),
        ObjectEvent(bucket, f"{prefix}c.csv.zst", True),
    ]


def test_a_dotenv_that_would_redirect_the_demo_is_named(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SOURCE_DIR=data/source\nDUCKDB_MEMORY_LIMIT=4GB\nDUCKDB_DATABASE=demo.duckdb\n")

    settings = {"SOURCE_DIR": local_s3.SOURCE, "DUCKDB_DATABASE": "demo.duckdb"}
    assert local_s3.env_file_conflicts(settings, env_file) == ["SOURCE_DIR"]
    assert local_s3.env_file_conflicts(settings, tmp_path / "absent") == []


def sensor_cursor(dagster_home: Path) -> str:
    """The cursor the instance holds for the sensor; empty before its first tick."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            if state.instigator_name == SENSOR and state.instigator_data is not None:
                return state.instigator_data.cursor or ""
    return ""


@pytest.mark.slow
def test_objects_uploaded_to_the_bucket_are_loaded_from_its_notifications_under_dagster_dev(
    dagster_dev, dagster_home: Path, s3_server: S3Server, duckdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in local_s3.s3_environment(s3_server.endpoint_url).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    landing = BucketLanding(s3_server, f"dev-{uuid.uuid4().hex[:12]}", prefix="incoming/")
    monkeypatch.setenv("SOURCE_DIR", landing.uri)
    # Notification mode, as make dev-s3 sets it up: the bucket notifies a queue the sensor reads.
    queue_url = local_s3.create_queue(s3_server.endpoint_url, landing.uri, f"q-{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("SOURCE_QUEUE_URL", queue_url)
    monkeypatch.delenv("SENSOR_MAX_BATCH")  # the project's batches, not the tests' run per file: fewer runs
    start_sensor(dagster_dev(), SENSOR)
    # Its first tick lists the empty prefix; the next listing is an hour away, so what is uploaded from
    # now on can only be found through the queue.
    wait_for(lambda: "listed_ns" in sensor_cursor(dagster_home), 120, "the sensor's first tick")

    keys = ["2018-01-22", "2018-01-23", "vendor-a"]
    for seed, key in enumerate(keys):
        landing.write(f"{key}.csv", seed=seed)

    def loaded() -> bool:
        finished_runs(dagster_home)  # fails at once if a run failed
        done = all_finished(dagster_home, 1) is not None  # a run still writing holds the DuckDB file
        return done and partition_status(dagster_home, keys) == dict.fromkeys(keys, "MATERIALIZED")

    wait_for(loaded, 240, "the three partitions to be materialized and every run to finish")
    assert rows_per_partition(duckdb_path) == dict.fromkeys(keys, 10)
    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        history = conn.execute("SELECT partition_key, source FROM load_history ORDER BY 1").fetchall()
    assert history == [(key, landing.location(f"{key}.csv")) for key in keys]

"""The sensor and the loads over an S3 bucket prefix, served by a real S3 API on loopback.

Every test talks to moto's standalone server over HTTP through the same boto3 client the project makes
(dagster-aws's `S3Resource` and the standard AWS settings); what is asserted is what a user would see:
the runs launched, the rows in DuckDB, the load history, the materializations and the messages.
"""

import datetime as dt
import email.utils
import json
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from dagster_and_etl.defs import assets
from dagster_and_etl.defs.partitions import dynamic_partitions_def
from dagster_and_etl.defs.resources import SourceFiles
from dagster_and_etl.ingest.sensor_cursor import SensorCursor
from dagster_and_etl.ingest.source import SourceUnavailable
from dagster_and_etl.sample_data import HEADER, sample_csv
from dagster_and_etl.testing import SensorDaemon, launched_partition_keys
from tests.landing import BucketLanding, S3Server
from tests.support import rows_per_partition, run_daily
from tests.test_exactly_once import GOOD_ROW, bad_file_text
from tests.test_late_files import retry_events

TABLE = dg.AssetKey("duckdb_dynamic_partition_table")
DAY = "2018-01-22"
SPOOL_PREFIX = "dagster_and_etl-spool-"


@pytest.fixture
def daemon(instance, defs) -> SensorDaemon:
    return SensorDaemon(instance, defs)


def load_history(database: Path, table: str = "raw_dynamic_partition_data") -> list[tuple]:
    """(partition key, source, version) of every load into `table`, oldest first."""
    with duckdb.connect(str(database), read_only=True) as conn:
        return conn.execute(
            "SELECT partition_key, source, version FROM load_history WHERE table_name = ? ORDER BY load_id",
            [table],
        ).fetchall()


def object_version(bucket: BucketLanding, name: str) -> str:
    """The version the project records for an object: its ETag and size, from a HEAD of it."""
    head = bucket.s3.head_object(Bucket=bucket.bucket, Key=bucket.prefix + name)
    return f"etag={head['ETag'].strip(chr(34))},size={head['ContentLength']}"


def last_modified(bucket: BucketLanding, name: str) -> dt.datetime:
    return bucket.s3.head_object(Bucket=bucket.bucket, Key=bucket.prefix + name)["LastModified"]


def status(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, str]:
    found = instance.get_status_by_partition(TABLE, keys, dynamic_partitions_def)
    return {key: (found[key].value if found[key] else "MISSING") for key in keys}


def failure_descriptions(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        event.step_failure_data.user_failure_data.description for event in result.get_step_failure_events()
    ]


def tick_failure(daemon: SensorDaemon) -> str:
    """The message of a tick that fails, as the sensor's page shows it; the cursor is left as it was."""
    cursor = daemon.cursor
    with pytest.raises(dg.Failure) as failed:
        daemon.tick(execute=False)
    assert daemon.cursor == cursor
    return failed.value.description


def job_with_retries(defs: dg.Definitions, job_name: str, policy: dg.RetryPolicy) -> dg.JobDefinition:
    """One of the project's jobs with a quicker retry policy, so that a retryable failure is retried
    (and shown as retryable) without the test waiting minutes."""
    selection = {
        "import_partition_job": [assets.import_partition_file, assets.duckdb_partition_table],
        "import_dynamic_partition_job": [
            assets.import_dynamic_partition_file,
            assets.duckdb_dynamic_partition_table,
        ],
    }[job_name]
    job = dg.define_asset_job(f"{job_name}_quick_retries", selection=selection, op_retry_policy=policy)
    return dg.Definitions(assets=selection, jobs=[job], resources=defs.resources).resolve_job_def(job.name)


def client_with(monkeypatch: pytest.MonkeyPatch, configure: Callable[[object], None]) -> None:
    """Makes the project's S3 clients, from now on, pass through `configure` when dagster-aws's
    `S3Resource` makes them (one for each run or tick that reads the bucket)."""
    from dagster_aws.s3 import S3Resource

    make_client = S3Resource.get_client

    def configured_client(self: S3Resource):
        client = make_client(self)
        configure(client)
        return client

    monkeypatch.setattr(S3Resource, "get_client", configured_client)


def count_calls(monkeypatch: pytest.MonkeyPatch, operation: str) -> list[dict]:
    """Every `operation` request the project's S3 clients make from now on, by its parameters."""
    calls: list[dict] = []
    client_with(
        monkeypatch,
        lambda client: client.meta.events.register(
            f"before-parameter-build.s3.{operation}", lambda params, **_: calls.append(dict(params))
        ),
    )
    return calls


@contextmanager
def iam_authentication(server: S3Server) -> Iterator[None]:
    """moto's server checking every request's credentials against its IAM users (of which there are
    none), through its own `/moto-api/reset-auth` switch; switched back off afterwards. The switch holds
    for every moto server in this process: pytest-xdist gives each worker a process of its own."""

    def reset_auth(count: str) -> str:
        request = urllib.request.Request(
            f"{server.endpoint_url}/moto-api/reset-auth",
            data=count.encode(),
            headers={"Content-Type": "text/plain"},  # a form would be read as fields, not as the count
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]

    previous = reset_auth("0")
    try:
        yield
    finally:
        reset_auth(previous)


def test_objects_in_a_prefix_are_loaded_once_naming_their_uri_and_etag(
    bucket: BucketLanding, daemon: SensorDaemon, duckdb_path
) -> None:
    for seed, key in enumerate(["a", "b", "c"]):
        bucket.write(f"{key}.csv", seed=seed)
    bucket.wait_until_settled()

    ticks = daemon.run_until_idle()

    assert sorted(k for t in ticks for k in t.partition_keys) == ["a", "b", "c"]
    assert all(run.success for t in ticks for run in t.runs)
    assert rows_per_partition(duckdb_path) == {"a": 10, "b": 10, "c": 10}
    history = load_history(duckdb_path)
    assert history[0] == ("a", f"{bucket.uri}a.csv", object_version(bucket, "a.csv"))
    assert [row[1] for row in history] == [bucket.location(f"{k}.csv") for k in "abc"]


def test_more_than_a_thousand_objects_are_listed_over_two_pages_and_each_requested_once(
    bucket: BucketLanding, daemon: SensorDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Running the three 500-file runs against moto takes minutes, so this test stops at the ticks: what
    # they list, register and request. Loading in batches is tested on folders and small prefixes.
    monkeypatch.delenv("SENSOR_MAX_BATCH")
    keys = [f"k{index:04d}" for index in range(1005)]
    text = sample_csv(seed=1, rows=1)
    with ThreadPoolExecutor(10) as pool:  # as many as the client keeps connections for
        list(pool.map(lambda key: bucket.write(f"{key}.csv", text), keys))
    bucket.wait_until_settled()
    lists = count_calls(monkeypatch, "ListObjectsV2")

    first = daemon.tick(execute=False)

    assert len(lists) == 2  # one listing, two pages of at most 1,000 keys
    assert lists[1].get("ContinuationToken")
    assert sorted(first.partition_keys) == keys  # k1000..k1004 are on the second page; each key once
    assert len(first.launched) == 3  # 500 + 500 + 5
    assert sorted(daemon.instance.get_dynamic_partitions(dynamic_partitions_def.name)) == keys

    idle = daemon.tick(execute=False)

    assert len(lists) == 4
    assert idle.result.run_requests in (None, []) and idle.result.dynamic_partitions_requests in (None, [])
    assert idle.skip_reason == f"No new or modified files in {bucket.uri}."


def test_each_tick_and_each_run_reads_the_bucket_through_one_client_of_its_own(
    bucket: BucketLanding, daemon: SensorDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSOR_MAX_BATCH", "500")
    for key in "abc":
        bucket.write(f"{key}.csv", sample_csv(seed=1, rows=2))
    bucket.wait_until_settled()
    clients: list[object] = []
    client_with(monkeypatch, clients.append)

    first = daemon.tick()  # lists, then one run loads a..c: three objects described and copied

    assert [run.success for run in first.runs] == [True]
    assert len(clients) == 2  # the tick's and the run's, each used for all its requests
    daemon.tick()
    assert len(clients) == 3  # the next tick makes its own: no client outlives its tick or run
    assert len({id(client) for client in clients}) == 3


def test_an_object_rewritten_with_the_same_size_is_loaded_but_the_same_content_put_again_is_not(
    bucket: BucketLanding, daemon: SensorDaemon, duckdb_path: Path
) -> None:
    original = HEADER + "\n" + GOOD_ROW
    bucket.write("f.csv", original)
    bucket.wait_until_settled()
    first = daemon.run_until_idle()
    assert launched_partition_keys(first) == ["f"]
    first_version = object_version(bucket, "f.csv")

    rewritten = HEADER + "\n" + GOOD_ROW.replace("264.7700", "111.1100")
    assert len(rewritten) == len(original)
    bucket.write("f.csv", rewritten)
    bucket.wait_until_settled()
    second_version = object_version(bucket, "f.csv")
    assert second_version != first_version and second_version.endswith(first_version.split(",")[1])

    again = daemon.run_until_idle()

    assert launched_partition_keys(again) == ["f"]
    assert all(run.success for tick in again for run in tick.runs)
    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        prices = conn.execute("SELECT share_price::VARCHAR FROM raw_dynamic_partition_data").fetchall()
    assert prices == [("111.1100",)]
    assert [row[2] for row in load_history(duckdb_path)] == [first_version, second_version]

    stamped = last_modified(bucket, "f.csv")
    bucket.write("f.csv", rewritten)  # the same bytes put again: a new LastModified, the same ETag
    bucket.wait_until_settled()
    assert last_modified(bucket, "f.csv") > stamped  # the storage saw a new write...
    assert object_version(bucket, "f.csv") == second_version  # ...of the version already loaded

    idle = daemon.tick()

    assert idle.launched == [] and idle.duplicates == []
    assert len(load_history(duckdb_path)) == 2


def test_a_deleted_object_keeps_its_rows_and_fails_no_run(
    bucket: BucketLanding, daemon: SensorDaemon, duckdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")
    for seed, key in enumerate(["a", "b", "c"]):
        bucket.write(f"{key}.csv", seed=seed)
    bucket.wait_until_settled()
    (loading,) = daemon.tick().runs
    assert loading.success
    bucket.delete("b.csv")  # processed files archived elsewhere

    after = daemon.tick()

    assert after.launched == [] and after.duplicates == []
    assert after.skip_reason == f"No new or modified files in {bucket.uri}."
    assert rows_per_partition(duckdb_path) == {"a": 10, "b": 10, "c": 10}

    # The same range run again, as a re-execution would run it: nothing loaded, nothing failed.
    again = daemon.run(daemon.ticks[0].launched[0])

    assert again.success
    assert rows_per_partition(duckdb_path) == {"a": 10, "b": 10, "c": 10}
    assert len(load_history(duckdb_path)) == 3
    removed = [
        m
        for m in again.asset_materializations_for_node("duckdb_dynamic_partition_table")
        if m.partition == "b"
    ]
    (b_materialization,) = removed
    assert "the file is gone from the source" in b_materialization.metadata["source_removed"].value
    assert b_materialization.metadata["path"].value == bucket.location("b.csv")


def test_objects_below_the_prefix_or_beside_it_and_other_suffixes_are_never_requested(
    bucket: BucketLanding, daemon: SensorDaemon, duckdb_path: Path
) -> None:
    for name in ("sub/x.csv", "sub/deeper/y.csv", "x.txt", "y.csv.tmp", "z.CSV", "w.part", ".hidden.csv"):
        bucket.write(name)
    bucket.s3.put_object(Bucket=bucket.bucket, Key=bucket.prefix, Body=b"")  # a "folder" marker
    sibling = bucket.prefix.rstrip("/") + "-old/"  # landing-old/: shares the prefix's text, not its folder
    for key in (f"{sibling}old.csv", "top.csv"):
        bucket.s3.put_object(Bucket=bucket.bucket, Key=key, Body=sample_csv(seed=4).encode())
    bucket.write("ok.csv", seed=3)
    bucket.wait_until_settled()

    ticks = daemon.run_until_idle()

    assert launched_partition_keys(ticks) == ["ok"]
    assert daemon.instance.get_dynamic_partitions(dynamic_partitions_def.name) == ["ok"]
    assert rows_per_partition(duckdb_path) == {"ok": 10}
    assert ticks[-1].skip_reason == f"No new or modified files in {bucket.uri}."  # nothing "skipped" either


def test_object_names_that_cannot_be_partition_keys_are_skipped_and_named(
    bucket: BucketLanding, daemon: SensorDaemon, capfd: pytest.CaptureFixture
) -> None:
    bad = {
        "a..b.csv": "the key contains '..'",
        "bad\x01name.csv": "the key contains a control, invisible or undecodable character",
        " padded.csv": "the key starts or ends with white space",
        "back\\slash.csv": "the key contains a path separator",
    }
    for name in bad:
        bucket.write(name)
    bucket.wait_until_settled()

    capfd.readouterr()
    tick = daemon.tick()
    logged = capfd.readouterr().err  # the tick's log, as the daemon's output shows it

    assert tick.launched == []
    assert daemon.instance.get_dynamic_partitions(dynamic_partitions_def.name) == []
    assert tick.skip_reason.startswith(
        f"No new or modified files in {bucket.uri}; 4 file(s) skipped, the log says why ("
    )
    assert sum(repr(name) in tick.skip_reason for name in bad) == 3  # the first three, then "..."
    for name, problem in bad.items():
        assert f"WARNING - Skipped {name!r} in {bucket.uri}: {problem}." in logged


def test_an_object_key_with_url_special_characters_loads_exactly_its_own_object(
    bucket: BucketLanding, daemon: SensorDaemon, duckdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")
    # Each is escaped one way in a listing (encoding-type=url) and another in a GET's path.
    names = {"a+b": 2, "a b": 3, "a%20b": 4, "données": 5, "q?x=1&y": 6, "semi;colon": 7}
    for key, rows in names.items():
        bucket.write(f"{key}.csv", sample_csv(seed=rows, rows=rows))
    bucket.wait_until_settled()

    ticks = daemon.run_until_idle()

    assert sorted(launched_partition_keys(ticks)) == sorted(names)
    assert all(run.success for tick in ticks for run in tick.runs)
    assert rows_per_partition(duckdb_path) == names
    assert {row[1] for row in load_history(duckdb_path)} == {bucket.location(f"{k}.csv") for k in names}


def test_a_bucket_that_does_not_exist_fails_the_tick_and_the_runs_naming_it(
    bucket: BucketLanding,
    daemon: SensorDaemon,
    defs: dg.Definitions,
    duckdb_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")
    bucket.write(f"{DAY}.csv", seed=1)
    bucket.write("a.csv", seed=2)
    bucket.wait_until_settled()
    daemon.run_until_idle()
    assert run_daily(defs, daemon.instance, DAY).success
    loaded = rows_per_partition(duckdb_path), rows_per_partition(duckdb_path, "raw_partition_data")
    history = load_history(duckdb_path)
    for name in ("a.csv", f"{DAY}.csv"):
        bucket.delete(name)
    bucket.s3.delete_bucket(Bucket=bucket.bucket)

    message = tick_failure(daemon)

    assert message == f"Cannot list {bucket.uri}: the bucket does not exist (NoSuchBucket)."
    assert (rows_per_partition(duckdb_path), rows_per_partition(duckdb_path, "raw_partition_data")) == loaded
    assert load_history(duckdb_path) == history

    # A run of a partition the sensor registered, and the day's run, fail saying so; retryably.
    quick = dg.RetryPolicy(max_retries=1, delay=0)
    for job_name, key in (("import_dynamic_partition_job", "a"), ("import_partition_job", DAY)):
        job = job_with_retries(defs, job_name, quick)
        result = job.execute_in_process(partition_key=key, instance=daemon.instance, raise_on_error=False)

        assert not result.success
        assert len(retry_events(result)) == 1
        (description,) = failure_descriptions(result)
        assert description == f"Cannot read {bucket.uri}: the bucket does not exist (NoSuchBucket)."
    assert (rows_per_partition(duckdb_path), rows_per_partition(duckdb_path, "raw_partition_data")) == loaded
    assert load_history(duckdb_path) == history


def test_an_endpoint_that_is_down_fails_the_tick_quickly_naming_the_bucket(
    bucket: BucketLanding, daemon: SensorDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket.write("a.csv")
    bucket.wait_until_settled()
    assert daemon.tick(execute=False).partition_keys == ["a"]
    stopped = S3Server()
    stopped.client().create_bucket(Bucket=bucket.bucket)
    stopped.stop()
    monkeypatch.setenv("AWS_ENDPOINT_URL", stopped.endpoint_url)

    started = time.monotonic()
    message = tick_failure(daemon)
    elapsed = time.monotonic() - started

    assert message.startswith(f"Cannot list {bucket.uri}: the storage cannot be reached: ")
    assert stopped.endpoint_url in message
    # boto3 tries 5 times with jittered backoff (at most 1 + 2 + 4 + 8 s) on a refused connection.
    assert elapsed < 20, f"a refused connection took {elapsed:.1f} s to fail the tick"


def test_credentials_the_storage_refuses_fail_the_tick_and_the_run_naming_the_bucket(
    bucket: BucketLanding, daemon: SensorDaemon, defs: dg.Definitions, duckdb_path: Path, s3_server: S3Server
) -> None:
    bucket.write("a.csv", seed=1)
    bucket.wait_until_settled()
    daemon.run_until_idle()
    loaded = rows_per_partition(duckdb_path)
    bucket.write("a.csv", seed=2)  # a new version waits, but cannot be reached
    bucket.wait_until_settled()

    with iam_authentication(s3_server):
        message = tick_failure(daemon)
        job = job_with_retries(defs, "import_dynamic_partition_job", dg.RetryPolicy(max_retries=1, delay=0))
        result = job.execute_in_process(partition_key="a", instance=daemon.instance, raise_on_error=False)

    assert message == (
        f"Cannot list {bucket.uri}: access was refused; check the credentials and their permissions"
        " (InvalidAccessKeyId)."
    )
    assert not result.success and len(retry_events(result)) == 1
    (description,) = failure_descriptions(result)
    assert description.startswith(f"Cannot read {bucket.uri}: access was refused")
    assert rows_per_partition(duckdb_path) == loaded


def test_no_credentials_at_all_fail_the_tick_saying_so(
    bucket: BucketLanding, daemon: SensorDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket.write("a.csv")
    bucket.wait_until_settled()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "none"))  # no profile anywhere; the metadata service is off

    assert tick_failure(daemon) == (
        f"Cannot list {bucket.uri}: no AWS credentials were found (set AWS_ACCESS_KEY_ID and"
        " AWS_SECRET_ACCESS_KEY, or a profile)."
    )


def test_an_object_deleted_between_the_tick_and_its_run_fails_only_its_partition(
    bucket: BucketLanding,
    daemon: SensorDaemon,
    duckdb_path: Path,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")
    for seed, key in enumerate(["a", "b", "c"]):
        bucket.write(f"{key}.csv", seed=seed)
    bucket.wait_until_settled()
    (request,) = daemon.tick(execute=False).launched
    bucket.delete("b.csv")

    run = daemon.run(request)

    assert not run.success
    assert retry_events(run) == []  # no retry brings the object back
    (description,) = failure_descriptions(run)
    assert description == (
        f"{bucket.location('b.csv')} cannot be loaded: it is not in the source: deleted after it was"
        " listed, before this run could read it"
    )
    assert rows_per_partition(duckdb_path) == {"a": 10, "c": 10}
    assert status(instance, ["a", "b", "c"]) == {"a": "MATERIALIZED", "b": "FAILED", "c": "MATERIALIZED"}

    again = daemon.run(request, re_executing=run.run_id)  # "Re-execute" on the failed run

    assert again.success
    assert rows_per_partition(duckdb_path) == {"a": 10, "c": 10}
    assert len(load_history(duckdb_path)) == 2  # a and c were not loaded twice
    assert daemon.tick().launched == []


def test_the_spool_folder_is_removed_after_a_good_run_a_bad_file_and_an_error(
    bucket: BucketLanding,
    daemon: SensorDaemon,
    duckdb_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    spools: list[Path] = []
    make_folder = tempfile.mkdtemp

    def recording_mkdtemp(*args, **kwargs) -> str:
        folder = make_folder(*args, **kwargs)
        if Path(folder).name.startswith(SPOOL_PREFIX):
            spools.append(Path(folder))
        return folder

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)

    def left_behind() -> list[Path]:
        return list(temporary.glob(f"{SPOOL_PREFIX}*"))

    bucket.write("good.csv", seed=1)
    bucket.wait_until_settled()
    (good,) = daemon.tick().runs
    assert good.success and rows_per_partition(duckdb_path) == {"good": 10}
    assert len(spools) == 1 and spools[0].parent == temporary  # the spool was made where TMPDIR says
    assert left_behind() == []

    bucket.write("bad.csv", bad_file_text(bad_line=3))
    bucket.wait_until_settled()
    (bad,) = daemon.tick().runs
    assert not bad.success
    (description,) = failure_descriptions(bad)
    assert description.startswith(f"{bucket.location('bad.csv')} cannot be loaded: 1 bad line(s): line 3")
    assert len(spools) == 2 and left_behind() == []

    source = SourceFiles(source_dir=bucket.uri).source
    with pytest.raises(RuntimeError), source.local_copies(["good"]) as copies:
        assert copies["good"].path.read_text() == sample_csv(seed=1)  # a complete copy, in the spool
        raise RuntimeError("the load failed half-way")
    assert len(spools) == 3 and left_behind() == []


def test_the_daily_pipeline_loads_the_days_object_and_waits_for_one_not_arrived(
    bucket: BucketLanding, defs: dg.Definitions, instance: dg.DagsterInstance, duckdb_path: Path
) -> None:
    bucket.write(f"{DAY}.csv", sample_csv(seed=3, rows=7))
    bucket.wait_until_settled()

    loaded = run_daily(defs, instance, DAY)

    assert loaded.success
    assert rows_per_partition(duckdb_path, "raw_partition_data") == {DAY: 7}
    assert load_history(duckdb_path, "raw_partition_data") == [
        (DAY, bucket.location(f"{DAY}.csv"), object_version(bucket, f"{DAY}.csv"))
    ]
    (described,) = loaded.asset_materializations_for_node("import_partition_file")
    assert described.metadata["path"].value == bucket.location(f"{DAY}.csv")

    job = job_with_retries(defs, "import_partition_job", dg.RetryPolicy(max_retries=1, delay=0))
    late = job.execute_in_process(partition_key="2018-01-23", instance=instance, raise_on_error=False)

    assert not late.success
    assert len(retry_events(late)) == 1  # retried: the object may still arrive
    assert failure_descriptions(late) == [f"2018-01-23.csv has not arrived in {bucket.uri}."]
    assert rows_per_partition(duckdb_path, "raw_partition_data") == {DAY: 7}


def test_the_listing_reads_now_from_the_storages_date_header(bucket: BucketLanding) -> None:
    source = SourceFiles(source_dir=bucket.uri).source
    before = bucket.storage_now_ns()
    listing = source.list()
    after = bucket.storage_now_ns()

    assert before <= listing.now_ns <= after
    assert listing.now_ns % 1_000_000_000 == 0  # a Date header's whole second, not a host clock's ns


def shifted_clock(monkeypatch: pytest.MonkeyPatch, skew: dt.timedelta) -> None:
    """Makes the storage's clock run `skew` off the host's, as every client of the project sees it: the
    Date of each answer and the LastModified of each object, both stamped by that clock."""

    def shift(parsed: dict, **_) -> None:
        headers = parsed.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        if "date" in headers:
            date = email.utils.parsedate_to_datetime(headers["date"]) + skew
            headers["date"] = email.utils.format_datetime(date, usegmt=True)
        for found in parsed.get("Contents", ()):
            found["LastModified"] += skew
        if "LastModified" in parsed:
            parsed["LastModified"] += skew

    client_with(monkeypatch, lambda client: client.meta.events.register("after-call.s3", shift))


@pytest.mark.parametrize("hours", [2, -2], ids=["storage_ahead", "storage_behind"])
def test_the_sensor_keeps_time_by_the_storages_clock_not_the_hosts(
    bucket: BucketLanding,
    daemon: SensorDaemon,
    duckdb_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hours: int,
) -> None:
    # Ahead: by the host's clock a new object would look hours from settling. Behind: a rewrite would be
    # stamped hours before the host's horizon, further back than the lookback, and never found.
    skew = dt.timedelta(hours=hours)
    shifted_clock(monkeypatch, skew)
    bucket.write("a.csv", sample_csv(seed=1, rows=3))
    bucket.wait_until_settled()  # by the storage's own, unshifted clock: the same interval

    first = daemon.run_until_idle()

    assert launched_partition_keys(first) == ["a"]
    cursor = SensorCursor.parse(daemon.cursor)
    storage_now_ns = bucket.storage_now_ns() + int(skew.total_seconds()) * 1_000_000_000
    assert abs(cursor.clock_ns - storage_now_ns) <= 2_000_000_000

    bucket.write("a.csv", sample_csv(seed=2, rows=4))
    bucket.wait_until_settled()

    second = daemon.run_until_idle()

    assert launched_partition_keys(second) == ["a"]
    assert rows_per_partition(duckdb_path) == {"a": 4}
    (_, (_, _, version)) = load_history(duckdb_path)
    assert version == object_version(bucket, "a.csv")


def test_a_missing_bucket_is_source_unavailable_from_the_listing_the_heads_and_the_copies(
    s3_settings: S3Server,
) -> None:
    source = SourceFiles(source_dir="s3://no-such-bucket-for-this-test/in/").source
    expected = "Cannot {} s3://no-such-bucket-for-this-test/in/: the bucket does not exist (NoSuchBucket)."

    with pytest.raises(SourceUnavailable, match=r"^Cannot list ") as listed:
        source.list()
    assert str(listed.value) == expected.format("list")
    with pytest.raises(SourceUnavailable) as described:
        source.info(["x"])
    assert str(described.value) == expected.format("read")
    with pytest.raises(SourceUnavailable) as copied, source.local_copies(["x"]):
        pass
    assert str(copied.value) == expected.format("read")


def test_many_objects_are_described_and_fetched_through_the_clients_own_connections(
    bucket: BucketLanding, caplog: pytest.LogCaptureFixture
) -> None:
    keys = [f"k{index:03d}" for index in range(120)]
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda key: bucket.write(f"{key}.csv", f"{HEADER}\n{key}\n"), keys))
    source = SourceFiles(source_dir=bucket.uri).source
    caplog.clear()

    with caplog.at_level("WARNING", logger="urllib3.connectionpool"):
        described = source.info(keys)
        with source.local_copies(keys) as copies:
            texts = {key: copy.path.read_text() for key, copy in copies.items()}

    assert sorted(described) == keys and all(
        info.location == bucket.location(f"{k}.csv") for k, info in described.items()
    )
    assert texts == {key: f"{HEADER}\n{key}\n" for key in keys}  # each copy is its own object, whole
    # More requests at once than the client keeps connections for would open and discard one each.
    assert [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()] == []

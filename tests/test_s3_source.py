"""The sensor and the loads over an S3 bucket prefix, served by a real S3 API on loopback."""

import duckdb
import pytest

from dagster_and_etl.testing import SensorDaemon
from tests.landing import BucketLanding
from tests.support import rows_per_partition


@pytest.fixture
def daemon(instance, defs) -> SensorDaemon:
    return SensorDaemon(instance, defs)


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
    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        history = conn.execute(
            "SELECT partition_key, source, version FROM load_history ORDER BY 1"
        ).fetchall()
    head = bucket.s3.head_object(Bucket=bucket.bucket, Key="landing/a.csv")
    etag, size = head["ETag"].strip('"'), head["ContentLength"]
    assert history[0] == ("a", f"{bucket.uri}a.csv", f"etag={etag},size={size}")
    assert [row[1] for row in history] == [bucket.location(f"{k}.csv") for k in "abc"]

"""Where test files land: a local folder or an S3 bucket prefix, behind one interface, so that the same
test cases run against both sources.

The bucket is served by moto's standalone server, a real S3 API over HTTP on loopback, which boto3
reaches through `AWS_ENDPOINT_URL` exactly as it would reach AWS, MinIO or R2.
"""

import email.utils
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from dagster_and_etl.ingest.source import settle_horizon
from dagster_and_etl.ingest.source_bucket import TIMESTAMP_SLACK_NS as BUCKET_SLACK_NS
from dagster_and_etl.sample_data import sample_csv
from tests.support import wait_until_settled

# The settings boto3 reads for the server on loopback; the credentials are moto's, checked by nothing.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


class S3Server:
    """moto's standalone S3 server on a free loopback port, in a thread of the test process."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint_url, **_client_credentials())

    def stop(self) -> None:
        self._server.stop()


def _client_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": FAKE_CREDENTIALS["AWS_REGION"],
    }


class FolderLanding:
    """Source files in a local folder."""

    kind = "folder"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.uri = str(folder)

    def location(self, name: str) -> str:
        return str(self.folder / name)

    def write(self, name: str, text: str | None = None, *, seed: int = 0) -> str:
        (self.folder / name).write_text(sample_csv(seed=seed) if text is None else text)
        return self.location(name)

    def write_bytes(self, name: str, data: bytes) -> str:
        (self.folder / name).write_bytes(data)
        return self.location(name)

    def delete(self, name: str) -> None:
        (self.folder / name).unlink()

    def wait_until_settled(self, settle_ns: int = 0) -> None:
        wait_until_settled(self.folder, settle_ns)


class BucketLanding:
    """Source objects under a prefix of a bucket of their own, on the S3 server."""

    kind = "bucket"

    def __init__(self, server: S3Server, bucket: str, prefix: str = "landing/") -> None:
        self.s3 = server.client()
        self.bucket, self.prefix = bucket, prefix
        self.s3.create_bucket(Bucket=bucket)
        self.uri = f"s3://{bucket}/{prefix}"

    def location(self, name: str) -> str:
        return f"{self.uri}{name}"

    def write(self, name: str, text: str | None = None, *, seed: int = 0) -> str:
        body = sample_csv(seed=seed) if text is None else text
        return self.write_bytes(name, body.encode())

    def write_bytes(self, name: str, data: bytes) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=data)
        return self.location(name)

    def delete(self, name: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self.prefix + name)

    def storage_now_ns(self) -> int:
        answer = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        date = answer["ResponseMetadata"]["HTTPHeaders"]["date"]
        return int(email.utils.parsedate_to_datetime(date).timestamp()) * 1_000_000_000

    def wait_until_settled(self, settle_ns: int = 0) -> None:
        """Waits until, by the storage's clock, every object has aged past the settle window and the
        whole-second slack of its timestamps."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        stamps = [found["LastModified"] for page in pages for found in page.get("Contents", ())]
        if not stamps:
            return
        latest = int(max(stamps).timestamp()) * 1_000_000_000
        while latest > settle_horizon(self.storage_now_ns(), settle_ns, BUCKET_SLACK_NS):
            time.sleep(0.1)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3_settings(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The standard AWS settings, pointed at the server on loopback."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no probing for a machine's credentials
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    return s3_server


@pytest.fixture
def bucket(s3_settings: S3Server, monkeypatch: pytest.MonkeyPatch) -> BucketLanding:
    """A new bucket for the test, with SOURCE_DIR set to its prefix `landing/`."""
    landing = BucketLanding(s3_settings, f"test-{uuid.uuid4().hex[:16]}")
    monkeypatch.setenv("SOURCE_DIR", landing.uri)
    return landing


@pytest.fixture(params=["folder", "bucket"])
def landing(request: pytest.FixtureRequest, source_dir: Path) -> FolderLanding | BucketLanding:
    """Each test that takes it runs twice: files landing in a folder, and objects in a bucket prefix."""
    if request.param == "folder":
        return FolderLanding(source_dir)
    return request.getfixturevalue("bucket")


__all__ = ["BucketLanding", "FolderLanding", "S3Server", "bucket", "landing", "s3_server", "s3_settings"]

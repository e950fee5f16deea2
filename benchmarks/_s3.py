"""An S3 server for the S3 benchmarks: moto's standalone server in a process of its own on loopback.

A real S3 API over HTTP, reached with the standard AWS settings (`aws_settings`), as the project reaches
AWS, MinIO or R2. Its own process, not `ThreadedMotoServer` in the benchmark's: the server's work does
not share the benchmark process's GIL (`--server thread` in `benchmarks.s3_sensor_tick` measures that
instead). moto keeps the objects in memory; its LIST scans and sorts every key of the bucket for each
page, so its time per page grows with the bucket, unlike S3's (see BENCHMARKS.md).

`age_seconds` backdates the objects the server stores: their LastModified is that much before the
server's clock, which the `Date` of its answers keeps telling truly. That stands for objects uploaded
long ago, such as the bulk of a prefix an hour after they landed.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config

BIN = Path(sys.executable).parent
# The credentials are moto's, checked by nothing.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
# Run as `python -c` with moto_server's arguments: moto's clock for new objects set back by argv[1] s.
BACKDATED_SERVER = """
import datetime, sys
import moto.s3.models
from moto.core.utils import utcnow
age = datetime.timedelta(seconds=float(sys.argv.pop(1)))
moto.s3.models.utcnow = lambda: utcnow() - age
from moto.server import main
sys.exit(main(sys.argv[1:]))
"""
UPLOAD_THREADS = 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def aws_settings(endpoint_url: str) -> dict[str, str]:
    """The environment that points boto3 (and so dagster-aws's S3Resource) at the server."""
    return {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint_url, "AWS_EC2_METADATA_DISABLED": "true"}


def client(endpoint_url: str, pool: int = 10):
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=CREDENTIALS["AWS_REGION"],
        config=Config(max_pool_connections=pool),
    )


def _reachable(endpoint_url: str) -> bool:
    try:
        client(endpoint_url).list_buckets()
    except Exception:  # not listening yet
        return False
    return True


@contextlib.contextmanager
def moto_server_process(log: Path, age_seconds: float = 0) -> Iterator[str]:
    """`moto_server` on 127.0.0.1 in a process group of its own, yielding its endpoint URL; the group
    is killed when the block ends."""
    port = free_port()
    if age_seconds:
        command = [sys.executable, "-c", BACKDATED_SERVER, str(age_seconds)]
    else:
        command = [str(BIN / "moto_server")]
    with log.open("w") as output:
        process = subprocess.Popen(
            [*command, "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    endpoint_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _reachable(endpoint_url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"moto_server did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield endpoint_url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def upload(
    endpoint_url: str, bucket: str, prefix: str, names: Sequence[str], body: Callable[[int], bytes]
) -> float:
    """Creates `bucket` and puts `prefix + name` for each name, the `index`th with `body(index)`, from a
    pool of threads, in the order given as far as the pool keeps it; returns the seconds it took."""
    s3 = client(endpoint_url, pool=UPLOAD_THREADS)
    s3.create_bucket(Bucket=bucket)
    started = time.perf_counter()

    def put(index: int) -> None:
        s3.put_object(Bucket=bucket, Key=prefix + names[index], Body=body(index))

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        for _ in pool.map(put, range(len(names))):
            pass
    return time.perf_counter() - started

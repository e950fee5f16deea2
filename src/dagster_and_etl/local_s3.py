"""The project against a bucket on a local S3 server, with no AWS account: what `make dev-s3` runs.

    python -m dagster_and_etl.local_s3 dev [--port 5055] [-- dagster dev options such as -p 3001]
    python -m dagster_and_etl.local_s3 put FILE [--as NAME.csv] [--port 5055]

`dev` starts moto's S3 server on 127.0.0.1 only (port 5055 unless told; not 5000, which macOS's AirPlay
Receiver holds), creates the bucket `landing` with the five sample files `make sample-data` writes under
the prefix `incoming/`, and runs `dagster dev -w workspace.yaml` with SOURCE_DIR=s3://landing/incoming/,
AWS_ENDPOINT_URL pointing at the server and fake credentials. When dagster dev exits (Ctrl-C), so does the
server. moto keeps everything in memory: the bucket is created anew, with the sample files only, at each
start, and whatever was uploaded meanwhile is gone.

Unless `--mode listing` is given, the bucket also sends its event notifications to the queue
`landing-events` on the same server, and dagster dev gets SOURCE_QUEUE_URL: the sensor lists the sample
files on its first tick and then reads the queue (notification mode, docs/s3.md).

What the demo loads stays apart from `make dev`'s: its tables go to data/staging/s3.duckdb and its Dagster
instance (runs, sensor cursor, which automations are on) to .dagster_home_s3/, which gets the project's
.dagster_home/dagster.yaml at each start. Both outlive the server, like `make dev`'s.

`put` uploads files into the bucket of a running `dev`, as another system would: the sensor loads them
like any new object. It needs nothing but boto3, no `aws` command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster_and_etl.ingest.partition_keys import SOURCE_SUFFIXES, key_for_file_name, key_problem
from dagster_and_etl.ingest.source_bucket import parse_s3_uri
from dagster_and_etl.local_dev import run_dagster_dev
from dagster_and_etl.sample_data import write_sample_files
from dagster_and_etl.settings import PROJECT_ROOT, resolve_path

PORT = 5055
SOURCE = "s3://landing/incoming/"
DATABASE = "data/staging/s3.duckdb"
DAGSTER_HOME = ".dagster_home_s3"
QUEUE = "landing-events"  # notification mode's queue, on the same server
NOTIFIED = "notifications"
FIRST_DAY, DAYS = dt.date(2018, 1, 22), 5  # the days `make sample-data` writes
# moto checks no credentials; these only keep boto3 from looking for real ones.
ACCESS_KEY, SECRET_KEY, REGION = "testing", "testing", "us-east-1"
# Settings that would take the demo elsewhere. `dagster dev` applies a `.env` over its own environment,
# so one of these in `.env` would win over what `dev` sets.
REDIRECTING_SETTINGS = (
    "SOURCE_DIR",
    "SOURCE_QUEUE_URL",
    "DUCKDB_DATABASE",
    "DAGSTER_HOME",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


def endpoint_for(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def s3_environment(endpoint_url: str) -> dict[str, str | None]:
    """The standard AWS settings that point boto3, and so the project's S3Resource, at the local server;
    None unsets a setting of the caller's that would send the requests or credentials elsewhere."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        **dict.fromkeys(
            (
                "AWS_ENDPOINT_URL_S3",
                "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
                "AWS_PROFILE",
                "AWS_DEFAULT_PROFILE",
                "AWS_SESSION_TOKEN",
                "AWS_DEFAULT_REGION",
            )
        ),
    }


def client(endpoint_url: str, service: str = "s3") -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )


def upload(s3: Any, source: str, path: Path, name: str | None = None) -> str:
    """Uploads a file under the source's prefix, as `name` or its own name; returns the object's URI."""
    bucket, prefix = parse_s3_uri(source)
    key = prefix + (name or path.name)
    s3.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"


def create_landing(
    s3: Any, source: str = SOURCE, first_day: dt.date = FIRST_DAY, days: int = DAYS
) -> list[str]:
    """Creates the source's bucket and uploads the sample files of `days` days from `first_day`, the
    same files `python -m dagster_and_etl.sample_data` writes; returns their URIs."""
    bucket, _ = parse_s3_uri(source)
    s3.create_bucket(Bucket=bucket)
    with tempfile.TemporaryDirectory() as folder:
        return [upload(s3, source, path) for path in write_sample_files(Path(folder), first_day, days)]


def create_queue(endpoint_url: str, source: str = SOURCE, name: str = QUEUE) -> str:
    """Creates the queue and has the source's bucket send the creations and removals of source files
    (`.csv`, `.csv.gz`, `.csv.zst`) under its prefix there, as docs/s3.md sets it up on AWS; returns the
    queue's URL."""
    sqs = client(endpoint_url, "sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bucket, prefix = parse_s3_uri(source)
    # One configuration a suffix: a filter takes one suffix, and these never overlap.
    notified = [
        {
            "Id": f"source-files{suffix}",
            "QueueArn": arn,
            "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
            "Filter": {
                "Key": {
                    "FilterRules": [{"Name": "prefix", "Value": prefix}, {"Name": "suffix", "Value": suffix}]
                }
            },
        }
        for suffix in SOURCE_SUFFIXES
    ]
    client(endpoint_url).put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": notified}
    )
    return url


@contextmanager
def s3_server(port: int) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 in a thread of this process, until the block ends; yields its URL.
    Port 0 takes a free one."""
    from moto.server import ThreadedMotoServer

    # ThreadedMotoServer binds in its thread and would wait forever on a port in use: try it here first.
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise SystemExit(
                f"Cannot start the S3 server on 127.0.0.1:{port}: {error.strerror}."
                f" Choose another port: make dev-s3 S3_PORT={port + 1}"
            ) from None
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request amid dagster's logs
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        host, bound = server.get_host_and_port()
        yield f"http://{host}:{bound}"
    finally:
        server.stop()


def env_file_conflicts(settings: dict[str, str | None], env_file: Path = PROJECT_ROOT / ".env") -> list[str]:
    """The settings a `.env` gives other values than `settings`, among those that redirect the demo."""
    if not env_file.exists():
        return []
    from dotenv import dotenv_values  # python-dotenv, which dagster reads .env with

    found = dotenv_values(env_file)
    return [
        name
        for name in REDIRECTING_SETTINGS
        if found.get(name) not in (None, "") and found[name] != settings.get(name)
    ]


def dev(options: argparse.Namespace) -> int:
    database, home = resolve_path(options.database), resolve_path(options.dagster_home)
    settings = {"SOURCE_DIR": options.source, "DUCKDB_DATABASE": str(database), "DAGSTER_HOME": str(home)}
    conflicts = env_file_conflicts(settings)
    if conflicts:
        raise SystemExit(
            f"{PROJECT_ROOT / '.env'} sets {', '.join(conflicts)}, which dagster dev would apply over the"
            " local S3 settings. Move .env aside or remove those lines, then start again."
        )
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    with s3_server(options.port) as endpoint:
        uris = create_landing(client(endpoint), options.source)
        # Set up after the sample files are in: the sensor's first tick lists them, then reads the queue.
        settings["SOURCE_QUEUE_URL"] = (
            create_queue(endpoint, options.source) if options.mode == NOTIFIED else None
        )
        names = ", ".join(uri.rsplit("/", 1)[1] for uri in uris)
        put = ".venv/bin/python -m dagster_and_etl.local_s3 put FILE [--as NAME.csv]"
        put += f" --port {options.port}" if options.port != PORT else ""
        print(
            f"local S3 (moto, in memory) on {endpoint}: {options.source} holds {names}\n"
            f"dagster dev with SOURCE_DIR={options.source} DUCKDB_DATABASE={database}"
            f" DAGSTER_HOME={home}\n"
            f"{_mode_line(options.mode, settings['SOURCE_QUEUE_URL'])}\n"
            f"upload another file: {put}",
            flush=True,
        )
        env = {**os.environ, **settings, **s3_environment(endpoint)}
        command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", *options.dagster_args]
        return run_dagster_dev(command, {k: v for k, v in env.items() if v is not None})


def _mode_line(mode: str, queue_url: str | None) -> str:
    if mode == NOTIFIED:
        return (
            f"notification mode: the sensor reads SOURCE_QUEUE_URL={queue_url}"
            " (make dev-s3 S3_MODE=listing lists the prefix instead)"
        )
    return (
        "listing mode: the sensor lists the prefix every tick (make dev-s3 reads the bucket's queue instead)"
    )


def put(options: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    if options.name and len(options.files) > 1:
        raise SystemExit("--as names one file: give one file with it")
    endpoint = options.endpoint_url or endpoint_for(options.port)
    s3 = client(endpoint)
    for path in options.files:
        if not path.is_file():
            raise SystemExit(f"{path} is not a file")
        name = options.name or path.name
        key = key_for_file_name(name)
        problem = "not <partition key>.csv, .csv.gz or .csv.zst" if key is None else key_problem(key)
        try:
            uri = upload(s3, options.source, path, name)
        except (BotoCoreError, ClientError) as error:
            raise SystemExit(
                f"Cannot upload {path} to {endpoint}: {error}. Is make dev-s3 running?"
            ) from None
        print(uri + (f"  (the sensor ignores it: {problem})" if problem else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("dev", help="start the S3 server with the sample files, and dagster dev")
    run.add_argument("--port", type=int, default=PORT, help=f"the S3 server's port on 127.0.0.1 ({PORT})")
    run.add_argument("--source", default=SOURCE, help=f"the bucket and prefix to create ({SOURCE})")
    run.add_argument("--database", default=DATABASE, help=f"DUCKDB_DATABASE ({DATABASE})")
    run.add_argument("--dagster-home", default=DAGSTER_HOME, help=f"DAGSTER_HOME ({DAGSTER_HOME})")
    run.add_argument(
        "--mode",
        choices=[NOTIFIED, "listing"],
        default=NOTIFIED,
        help="read the bucket's notifications from a queue (notifications), or list the prefix (listing)",
    )
    run.add_argument("dagster_args", nargs="*", help="after --: options for dagster dev, such as -p 3001")
    run.set_defaults(handler=dev)

    upload_ = commands.add_parser("put", help="upload files into the bucket of a running dev")
    upload_.add_argument("files", type=Path, nargs="+")
    upload_.add_argument("--as", dest="name", help="the object's name under the prefix (a file's own)")
    upload_.add_argument("--port", type=int, default=PORT, help=f"the S3 server's port ({PORT})")
    upload_.add_argument("--endpoint-url", help="the S3 server's URL, instead of --port")
    upload_.add_argument("--source", default=SOURCE, help=f"the bucket and prefix ({SOURCE})")
    upload_.set_defaults(handler=put)

    options = parser.parse_args(argv)
    return options.handler(options)


if __name__ == "__main__":
    sys.exit(main())

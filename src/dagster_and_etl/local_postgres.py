"""The project on a Postgres-backed Dagster instance, on this machine: what `make dev-postgres` runs.

    python -m dagster_and_etl.local_postgres dev [--port 5433] [-- dg dev options such as --port 3001]

`dev` starts a PostgreSQL server of Debian's `postgresql` package on 127.0.0.1 (port 5433 unless told),
its cluster in `.postgres/` with a password made on first start, creates the database `dagster`, and runs
`dg dev` with DAGSTER_HOME=.dagster_home_postgres/, which gets `deploy/dagster.yaml` (the production
instance) at each start, and the DAGSTER_POSTGRES_* settings that file reads. Ctrl-C stops `dg dev`,
then the server; runs, schedules and sensor state are kept in the cluster across restarts.

PostgreSQL refuses to run as root: as root, its commands run as the `postgres` user the package creates.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dagster_and_etl.local_s3 import run_dagster_dev
from dagster_and_etl.settings import PROJECT_ROOT, resolve_path

PORT = 5433  # not 5432, which a PostgreSQL of the machine's own may hold
USER = "dagster"
DATABASE = "dagster"
CLUSTER = PROJECT_ROOT / ".postgres"
DAGSTER_HOME = PROJECT_ROOT / ".dagster_home_postgres"
INSTANCE_CONFIG = PROJECT_ROOT / "deploy" / "dagster.yaml"
EVENT_BATCH_SIZE = "100"


def binaries() -> Path:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl), the newest version installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise SystemExit("PostgreSQL is not installed: `sudo apt-get install postgresql` (Debian, Ubuntu)")
    return found[-1].parent


def as_server_user(command: list[str]) -> list[str]:
    """The command as the `postgres` user when this process is root, which PostgreSQL refuses to be."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass(frozen=True)
class LocalPostgres:
    """A PostgreSQL cluster in a folder of its own, served on 127.0.0.1 only, with password logins."""

    folder: Path
    port: int
    password: str

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _run(self, program: str, *args: str) -> None:
        command = as_server_user([str(binaries() / program), *args])
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        """Creates the cluster, owned by the server's user, with USER and its password."""
        self.folder.mkdir(parents=True, exist_ok=True)
        password_file = self.folder / "initdb-password"
        password_file.write_text(self.password)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(password_file, "postgres")
        try:
            self._run(
                "initdb", "-D", str(self.data), "-U", USER, f"--pwfile={password_file}",
                "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync",
            )  # fmt: skip
        finally:
            password_file.unlink()

    def start(self, *settings: str) -> None:
        """Starts the server and waits until it takes connections; `settings` are `-c name=value` pairs."""
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} {' '.join(settings)}"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> None:
        import psycopg2

        conn = psycopg2.connect(**self.connection("postgres"))
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def connection(self, database: str) -> dict[str, object]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": USER,
            "password": self.password,
            "dbname": database,
        }

    def environment(self, database: str) -> dict[str, str]:
        """The environment of the production instance on `database` of this server: the settings
        deploy/dagster.yaml reads, and Dagster's batching of materialization events, which saves
        dagster-postgres a connection per event (docs/deploying.md)."""
        return {
            "DAGSTER_EVENT_BATCH_SIZE": EVENT_BATCH_SIZE,
            "DAGSTER_POSTGRES_HOST": "127.0.0.1",
            "DAGSTER_POSTGRES_PORT": str(self.port),
            "DAGSTER_POSTGRES_USER": USER,
            "DAGSTER_POSTGRES_PASSWORD": self.password,
            "DAGSTER_POSTGRES_DB": database,
        }


@contextmanager
def running(folder: Path, port: int) -> Iterator[LocalPostgres]:
    """The cluster in `folder`, made on first use with a new password kept beside it, served until the
    block ends."""
    password_file = folder / "password"
    if not password_file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        password_file.write_text(secrets.token_urlsafe(24))
        password_file.chmod(0o600)
    server = LocalPostgres(folder, port, password_file.read_text().strip())
    if not server.data.exists():
        server.init()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def dev(options: argparse.Namespace) -> int:
    home = resolve_path(options.dagster_home)
    with running(resolve_path(options.cluster), options.port) as server:
        server.create_database(DATABASE)
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(INSTANCE_CONFIG, home / "dagster.yaml")
        print(
            f"PostgreSQL on 127.0.0.1:{options.port}, database {DATABASE}; DAGSTER_HOME={home}",
            flush=True,
        )
        env = {**os.environ, **server.environment(DATABASE), "DAGSTER_HOME": str(home)}
        return run_dagster_dev([str(Path(sys.executable).parent / "dg"), "dev", *options.dg_args], env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("dev", help="start PostgreSQL, then dg dev on it")
    run.add_argument("--port", type=int, default=PORT, help=f"the server's port on 127.0.0.1 ({PORT})")
    run.add_argument("--cluster", default=str(CLUSTER), help=f"the cluster's folder ({CLUSTER.name}/)")
    run.add_argument("--dagster-home", default=str(DAGSTER_HOME), help=f"DAGSTER_HOME ({DAGSTER_HOME.name}/)")
    run.add_argument("dg_args", nargs="*", help="after --: options for dg dev, such as --port 3001")
    run.set_defaults(handler=dev)
    options = parser.parse_args(argv)
    return options.handler(options)


if __name__ == "__main__":
    sys.exit(main())

"""The project on a Postgres-backed Dagster instance, on this machine: what `make dev-postgres` runs.

    python -m dagster_and_etl.local_postgres dev [--port 5433] [--pooler-port 6433]
        [-- dg dev options such as --port 3001]

`dev` starts a PostgreSQL server of Debian's `postgresql` package on 127.0.0.1 (port 5433 unless told),
its cluster in `.postgres/` with a password made on first start, and Debian's PgBouncer in front of it
(port 6433) with `deploy/pgbouncer.ini`; creates the database `dagster`, and runs `dg dev` with
DAGSTER_HOME=.dagster_home_postgres/, which gets `deploy/dagster.yaml` (the production instance) at each
start, and the DAGSTER_POSTGRES_* settings that file reads, which lead to PgBouncer. Ctrl-C stops
`dg dev`, then PgBouncer and the server; runs, schedules and sensor state are kept across restarts.

PostgreSQL and PgBouncer refuse to run as root: as root, their commands run as the `postgres` user the
package creates.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dagster_and_etl.local_dev import run_dagster_dev
from dagster_and_etl.settings import PROJECT_ROOT, resolve_path

PORT = 5433  # not 5432, which a PostgreSQL of the machine's own may hold
USER = "dagster"
DATABASE = "dagster"
CLUSTER = PROJECT_ROOT / ".postgres"
DAGSTER_HOME = PROJECT_ROOT / ".dagster_home_postgres"
INSTANCE_CONFIG = PROJECT_ROOT / "deploy" / "dagster.yaml"
POOLER_PORT = 6433  # not PgBouncer's 6432, which a PgBouncer of the machine's own may hold
POOLER_CONFIG = PROJECT_ROOT / "deploy" / "pgbouncer.ini"
EVENT_BATCH_SIZE = "100"


def binaries() -> Path:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl), the newest version installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise SystemExit("PostgreSQL is not installed: `sudo apt-get install postgresql` (Debian, Ubuntu)")
    return found[-1].parent


def pg_program(name: str) -> str:
    """One of PostgreSQL's server programs, such as `initdb` or `pg_ctl`."""
    return str(binaries() / name)


def find_pooler() -> str | None:
    """PgBouncer's program, which Debian installs in /usr/sbin, outside a user's PATH."""
    return shutil.which("pgbouncer", path=f"{os.environ.get('PATH', '')}:/usr/sbin")


def pooler_binary() -> str:
    found = find_pooler()
    if found is None:
        raise SystemExit("PgBouncer is not installed: `sudo apt-get install pgbouncer` (Debian, Ubuntu)")
    return found


def wait_listening(port: int, timeout: float = 30) -> None:
    """Returns once 127.0.0.1:`port` takes connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def is_pooler(pid: int) -> bool:
    """Whether process `pid` is a running PgBouncer."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "pgbouncer"
    except OSError:
        return False


def as_server_user(command: list[str]) -> list[str]:
    """The command as the `postgres` user when this process is root, which PostgreSQL refuses to be."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass(frozen=True)
class LocalPostgres:
    """A PostgreSQL cluster in a folder of its own, served on 127.0.0.1 only, with password logins; with
    `pooler_port`, PgBouncer in front of it on that port, which `environment()` leads Dagster to."""

    folder: Path
    port: int
    password: str
    pooler_port: int | None = None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _run(self, *command: str) -> None:
        """A command of the server's, or of PgBouncer's, as the server's user."""
        subprocess.run(as_server_user(list(command)), check=True, capture_output=True, text=True, timeout=120)

    def _own(self, *paths: Path) -> None:
        """Hands files this process wrote to the server's user, which reads them."""
        if os.geteuid() == 0:
            for path in paths:
                shutil.chown(path, "postgres")

    def init(self) -> None:
        """Creates the cluster, owned by the server's user, with USER and its password."""
        self.folder.mkdir(parents=True, exist_ok=True)
        password_file = self.folder / "initdb-password"
        password_file.write_text(self.password)
        self._own(self.folder, password_file)
        try:
            self._run(
                pg_program("initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={password_file}",
                "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync",
            )  # fmt: skip
        finally:
            password_file.unlink()

    def start(self, *settings: str) -> None:
        """Starts the server and waits until it takes connections; `settings` are `-c name=value` pairs."""
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} {' '.join(settings)}"
        self._run(
            pg_program("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        )
        if self.pooler_port is not None:
            self._start_pooler(self.pooler_port)

    def _start_pooler(self, port: int) -> None:
        """PgBouncer with deploy/pgbouncer.ini, completed with this server, `port` and files in the folder."""
        users = self.folder / "pgbouncer-users.txt"
        users.write_text(f'"{USER}" "{self.password}"\n')
        users.chmod(0o600)
        config = self.folder / "pgbouncer.ini"
        config.write_text(
            f"[databases]\n* = host=127.0.0.1 port={self.port}\n\n{POOLER_CONFIG.read_text()}\n"
            f"; this machine\nlisten_port = {port}\nauth_file = {users}\nstats_users = {USER}\n"
            f"logfile = {self.folder / 'pgbouncer.log'}\npidfile = {self.folder / 'pgbouncer.pid'}\n"
        )
        self._own(users, config)
        self._run(pooler_binary(), "-d", "-q", str(config))
        wait_listening(port)

    def stop(self) -> None:
        """Stops PgBouncer, if it runs, then the server."""
        pid_file = self.folder / "pgbouncer.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            if is_pooler(pid):  # a file left by a crash may name another process by now
                os.kill(pid, signal.SIGTERM)
                while is_pooler(pid):
                    time.sleep(0.05)
            pid_file.unlink(missing_ok=True)
        self._run(pg_program("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

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
        deploy/dagster.yaml reads (leading to PgBouncer, when it is in front), and Dagster's batching of
        materialization events, which saves dagster-postgres a connection per event (docs/deploying.md)."""
        return {
            "DAGSTER_EVENT_BATCH_SIZE": EVENT_BATCH_SIZE,
            "DAGSTER_POSTGRES_HOST": "127.0.0.1",
            "DAGSTER_POSTGRES_PORT": str(self.pooler_port or self.port),
            "DAGSTER_POSTGRES_USER": USER,
            "DAGSTER_POSTGRES_PASSWORD": self.password,
            "DAGSTER_POSTGRES_DB": database,
        }


@contextmanager
def running(folder: Path, port: int, pooler_port: int | None = None) -> Iterator[LocalPostgres]:
    """The cluster in `folder`, made on first use with a new password kept beside it, served (and with
    `pooler_port`, PgBouncer in front) until the block ends."""
    password_file = folder / "password"
    if not password_file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        password_file.write_text(secrets.token_urlsafe(24))
        password_file.chmod(0o600)
    server = LocalPostgres(folder, port, password_file.read_text().strip(), pooler_port)
    if not server.data.exists():
        server.init()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def dev(options: argparse.Namespace) -> int:
    home = resolve_path(options.dagster_home)
    with running(resolve_path(options.cluster), options.port, options.pooler_port) as server:
        server.create_database(DATABASE)
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(INSTANCE_CONFIG, home / "dagster.yaml")
        print(
            f"PostgreSQL on 127.0.0.1:{options.port}, PgBouncer on 127.0.0.1:{options.pooler_port},"
            f" database {DATABASE}; DAGSTER_HOME={home}",
            flush=True,
        )
        env = {**os.environ, **server.environment(DATABASE), "DAGSTER_HOME": str(home)}
        return run_dagster_dev([str(Path(sys.executable).parent / "dg"), "dev", *options.dg_args], env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("dev", help="start PostgreSQL, then dg dev on it")
    run.add_argument("--port", type=int, default=PORT, help=f"the server's port on 127.0.0.1 ({PORT})")
    run.add_argument(
        "--pooler-port", type=int, default=POOLER_PORT, help=f"PgBouncer's port on 127.0.0.1 ({POOLER_PORT})"
    )
    run.add_argument("--cluster", default=str(CLUSTER), help=f"the cluster's folder ({CLUSTER.name}/)")
    run.add_argument("--dagster-home", default=str(DAGSTER_HOME), help=f"DAGSTER_HOME ({DAGSTER_HOME.name}/)")
    run.add_argument("dg_args", nargs="*", help="after --: options for dg dev, such as --port 3001")
    run.set_defaults(handler=dev)
    options = parser.parse_args(argv)
    return options.handler(options)


if __name__ == "__main__":
    sys.exit(main())

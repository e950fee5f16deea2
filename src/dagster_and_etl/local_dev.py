"""What `make dev-s3` and `make dev-postgres` share: running `dagster dev` or `dg dev` beside a server
they started (moto's S3, PostgreSQL), so that Ctrl-C stops dagster dev first and the server after it."""

import signal
import subprocess
from contextlib import suppress

from dagster_and_etl.settings import PROJECT_ROOT


def run_dagster_dev(command: list[str], env: dict[str, str]) -> int:
    """`dagster dev` or `dg dev` until it exits; returns its exit code.

    It runs in a process group of its own, so a Ctrl-C in the terminal reaches it once, passed on by this
    process, which then waits for its shutdown to finish before the server stops. A SIGTERM or SIGHUP
    of this process is passed on as a Ctrl-C too: dagster dev shuts down cleanly on nothing else."""
    process: subprocess.Popen | None = None

    def forward(_signum: int, _frame: object) -> None:
        if process is None:
            raise KeyboardInterrupt
        with suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, forward) for signum in forwarded}
    try:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            process_group=0,
        )
        return process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

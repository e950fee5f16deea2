"""Debian packages a test needs (Chromium, PostgreSQL), installed with apt-get on first use."""

import fcntl
import os
import subprocess
from collections.abc import Callable

import pytest


def ensure_package(package: str, present: Callable[[], bool]) -> None:
    """Installs `package` with apt-get unless `present()` says it is there; one test process at a time,
    as every worker of the suite may need it at once. Without root, the test fails saying what to run."""
    if present():
        return
    if os.geteuid() != 0:
        pytest.fail(f"{package} is missing: install Debian's package with `sudo apt-get install {package}`")
    with open("/tmp/dagster-and-etl-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if present():
            return
        apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=apt, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
            check=True,
            env=apt,
            timeout=900,
        )

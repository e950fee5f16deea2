"""The command-line tools a user runs from the project root load the code location."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow  # each test starts dg or dagster


def run(*command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIRTUAL_ENV": str(BIN.parent), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_dg_check_defs_passes() -> None:
    result = run("dg", "check", "defs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_dg_list_defs_shows_every_definition() -> None:
    result = run("dg", "list", "defs", "--json")
    assert result.returncode == 0, result.stderr
    for name in (
        "import_partition_file",
        "duckdb_partition_table",
        "import_dynamic_partition_file",
        "duckdb_dynamic_partition_table",
        "import_partition_job",
        "import_dynamic_partition_job",
        "asset_partitioned_schedule",
        "archive_job",
        "archive_schedule",
        "dynamic_sensor",
    ):
        assert name in result.stdout


def test_dagster_definitions_validate_loads_the_workspace() -> None:
    result = run("dagster", "definitions", "validate", "-w", "workspace.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr

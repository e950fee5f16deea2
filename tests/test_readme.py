"""The README's code examples run as they are written, so they cannot fall behind the code."""

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb

from tests.support import wait_until_settled, write_source_file

README = Path(__file__).resolve().parents[1] / "README.md"


def python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_the_sensor_daemon_example_loads_the_files_once(source_dir: Path, duckdb_path: Path) -> None:
    (example,) = [code for code in python_examples() if "SensorDaemon" in code and "def test_" not in code]
    for seed in range(3):
        write_source_file(source_dir, f"vendor-{seed}.csv", seed=seed)
    wait_until_settled(source_dir)

    exec(compile(example, str(README), "exec"), {})

    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM load_history").fetchone() == (3,)


def test_the_readme_test_file_passes_copied_into_tests() -> None:
    """The README's test file, copied into `tests/` as a learner would copy it, run by pytest on its own."""
    (example,) = [code for code in python_examples() if code.startswith("# tests/test_my_pipelines.py")]
    copy = README.parent / "tests" / f"test_readme_copy_{os.getpid()}.py"
    copy.write_text(example)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(copy)],
            cwd=README.parent,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        copy.unlink()
    assert result.returncode == 0, result.stdout[-4000:]
    assert "4 passed" in result.stdout

"""The README's code examples run as they are written, so they cannot fall behind the code."""

import re
from pathlib import Path

import duckdb

from tests.support import wait_until_settled, write_source_file

README = Path(__file__).resolve().parents[1] / "README.md"


def python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_the_sensor_daemon_example_loads_the_files_once(source_dir: Path, duckdb_path: Path) -> None:
    (example,) = [code for code in python_examples() if "SensorDaemon" in code]
    for seed in range(3):
        write_source_file(source_dir, f"vendor-{seed}.csv", seed=seed)
    wait_until_settled(source_dir)

    exec(compile(example, str(README), "exec"), {})

    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM load_history").fetchone() == (3,)

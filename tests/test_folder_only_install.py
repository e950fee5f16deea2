"""A folder source installed as production would install it, without the `s3` extra: it loads files and
ticks its sensor without dagster-aws, so no process of it pays for loading dagster-aws."""

import subprocess
import sys
from pathlib import Path

import pytest

from dagster_and_etl.settings import PROJECT_ROOT

FOLDER_WORK = """
import importlib.util, sys
from pathlib import Path
import dagster as dg
from dagster_and_etl.definitions import defs
from dagster_and_etl.sample_data import sample_csv
from dagster_and_etl.testing import SensorDaemon

Path(sys.argv[1], "2018-01-22.csv").write_text(sample_csv(seed=1))
loaded = defs()
with dg.instance_for_test() as instance:
    job = loaded.resolve_job_def("import_partition_job")
    assert job.execute_in_process(partition_key="2018-01-22", instance=instance).success
    tick = SensorDaemon(instance, loaded).tick()
    assert tick.partition_keys == ["2018-01-22"] and all(run.success for run in tick.runs)
print(importlib.util.find_spec("dagster_aws") is None, "dagster_aws" in sys.modules, "boto3" in sys.modules)
from dagster_and_etl.defs.resources import SourceFiles
try:
    SourceFiles(source_dir="s3://landing/incoming/").source
except dg.Failure as failure:
    print(failure.description)
"""


@pytest.mark.slow
def test_a_folder_source_installed_without_the_s3_extra_never_loads_dagster_aws(
    tmp_path: Path, source_dir: Path
) -> None:
    uv, venv = Path(sys.executable).parent / "uv", tmp_path / "venv"
    requirements = tmp_path / "requirements.txt"
    subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "-q", "-o", requirements],
        cwd=PROJECT_ROOT,
        check=True,
    )
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, venv], check=True)
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", venv / "bin" / "python", "-r", requirements],
        check=True,
    )

    result = subprocess.run(
        [venv / "bin" / "python", "-c", FOLDER_WORK, source_dir],
        env={"PYTHONPATH": str(PROJECT_ROOT / "src"), "SOURCE_DIR": str(source_dir), "PATH": "/usr/bin:/bin"}
        | {"DUCKDB_DATABASE": str(tmp_path / "data.duckdb"), "SENSOR_SETTLE_SECONDS": "0"},
        capture_output=True,
        text=True,
        timeout=600,
    )

    # Not installed, not loaded, and neither is boto3: the files loaded, the sensor ticked.
    found, s3_source = result.stdout.splitlines()
    assert found.split() == ["True", "False", "False"], result.stderr[-3000:]
    # A bucket named without the extra says what to install.
    assert (
        s3_source
        == "SOURCE_DIR is an S3 prefix, and dagster-aws is not installed: install dagster-and-etl[s3]"
    )

"""Partition keys added by hand: hostile ones fail clearly and read nothing outside SOURCE_DIR."""

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from dagster_and_etl.sample_data import sample_csv
from tests.support import write_source_file

GOOD_KEY = "vendor-a"


def run_dynamic(defs, instance, key: str) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("import_dynamic_partition_job")
    return job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)


def table_state(database: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(database), read_only=True) as conn:
        tables = [
            name for (name,) in conn.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
        ]
        return {name: conn.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall() for name in tables}


@pytest.fixture
def loaded(defs, instance, source_dir: Path, duckdb_path: Path) -> dict[str, list[tuple]]:
    instance.add_dynamic_partitions("dynamic_partition", [GOOD_KEY])
    write_source_file(source_dir, f"{GOOD_KEY}.csv", sample_csv(seed=1))
    assert run_dynamic(defs, instance, GOOD_KEY).success
    return table_state(duckdb_path)


@pytest.mark.parametrize(
    "key", ["../secret", "../../etc/passwd", "..\\secret", "/etc/passwd", "sub/../../secret"]
)
def test_key_that_points_outside_the_source_folder_fails_and_reads_nothing(
    defs, instance, tmp_path: Path, duckdb_path: Path, loaded, key: str
) -> None:
    # A loadable file waits just outside the source folder, where "../secret" would lead.
    (tmp_path / "secret.csv").write_text(sample_csv(seed=99))
    instance.add_dynamic_partitions("dynamic_partition", [key])

    result = run_dynamic(defs, instance, key)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "import_dynamic_partition_file"
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith(f"Partition key {key!r} cannot name a source file")
    assert table_state(duckdb_path) == loaded


def test_key_written_as_sql_is_only_ever_a_value(defs, instance, source_dir: Path, duckdb_path: Path, loaded):
    key = "x'); drop table raw_dynamic_partition_data; --"
    write_source_file(source_dir, f"{key}.csv", sample_csv(seed=2, rows=3))
    instance.add_dynamic_partitions("dynamic_partition", [key])

    assert run_dynamic(defs, instance, key).success

    after = table_state(duckdb_path)
    assert set(after) == set(loaded)
    rows = after["raw_dynamic_partition_data"]
    assert sorted({row[-1] for row in rows}) == sorted([GOOD_KEY, key])
    assert [row for row in rows if row[-1] == GOOD_KEY] == loaded["raw_dynamic_partition_data"]


def test_key_with_a_nul_byte_fails_clearly(
    defs, instance, source_dir: Path, duckdb_path: Path, loaded
) -> None:
    key = "evil\x00name"
    write_source_file(source_dir, "evil.csv", sample_csv(seed=3))  # what a C library would open
    instance.add_dynamic_partitions("dynamic_partition", [key])  # the instance takes it as it is

    result = run_dynamic(defs, instance, key)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith(f"Partition key {key!r} cannot name a source file")
    assert "control" in description
    assert table_state(duckdb_path) == loaded


def test_key_whose_file_is_a_link_out_of_the_folder_fails(
    defs, instance, tmp_path: Path, source_dir: Path, duckdb_path: Path, loaded
) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text(sample_csv(seed=5))
    (source_dir / "linked.csv").symlink_to(outside)
    instance.add_dynamic_partitions("dynamic_partition", ["linked"])

    result = run_dynamic(defs, instance, "linked")

    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert "it is not a regular file" in failure.step_failure_data.user_failure_data.description
    assert table_state(duckdb_path) == loaded

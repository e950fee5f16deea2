"""What the UI shows of each asset: every materialization describes the rows and files behind it, and the
definitions carry groups, kinds, owners and descriptions."""

import csv
import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from dagster_and_etl.sample_data import sample_csv
from tests.support import run_daily, write_source_file

DAY = "2018-01-22"
MTIME = dt.datetime(2018, 1, 22, 5, 0, tzinfo=dt.UTC).timestamp()
TABLE_COLUMNS = [
    ("date", "DATE"),
    ("share_price", "DECIMAL(18,4)"),
    ("amount", "DECIMAL(18,4)"),
    ("spend", "DECIMAL(18,4)"),
    ("shift", "DECIMAL(18,4)"),
    ("spread", "DECIMAL(18,4)"),
    ("partition_key", "VARCHAR"),
]
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict[str, object]:
    """The metadata values of the asset partition's latest materialization."""
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    return {name: entry.value for name, entry in record.asset_materialization.metadata.items()}


def data_lines(path: Path) -> list[list[str]]:
    return list(csv.reader(path.read_text().splitlines()))[1:]


def test_a_days_table_materialization_reports_its_table_columns_file_and_first_rows(
    defs, instance, source_dir: Path
) -> None:
    path = write_source_file(source_dir, f"{DAY}.csv", sample_csv(seed=3, rows=8), mtime=MTIME)
    assert run_daily(defs, instance, DAY).success

    metadata = latest_metadata(instance, "duckdb_partition_table", DAY)

    assert metadata["dagster/row_count"] == 8
    assert metadata["dagster/table_name"] == "data.main.raw_partition_data"
    schema = metadata["dagster/column_schema"]
    assert [(column.name, column.type) for column in schema.columns] == TABLE_COLUMNS
    assert all(column.constraints.nullable is False for column in schema.columns)
    assert metadata["path"] == str(path)
    assert metadata["size_bytes"] == path.stat().st_size
    assert metadata["modified_at"] == MTIME
    # The preview: the table's columns and the first five rows by date, the values as the table holds them.
    preview = metadata["preview"]
    assert [(column.name, column.type) for column in preview.schema.columns] == TABLE_COLUMNS
    first_rows = sorted(data_lines(path))[:5]
    assert len(preview.records) == len(first_rows)
    for record, (date, *numbers) in zip(preview.records, first_rows, strict=True):
        iso_date = dt.datetime.strptime(date, "%Y/%m/%d").date().isoformat()
        assert [record.data[name] for name, _ in TABLE_COLUMNS] == [iso_date, *numbers, DAY]


def test_a_file_materialization_reports_the_files_path_size_mtime_and_data_rows(
    defs, instance, source_dir: Path
) -> None:
    path = write_source_file(source_dir, f"{DAY}.csv", sample_csv(seed=4, rows=6), mtime=MTIME)
    assert run_daily(defs, instance, DAY).success

    assert latest_metadata(instance, "import_partition_file", DAY) == {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "modified_at": MTIME,
        "data_rows": 6,
    }


def test_a_run_of_many_partitions_reports_each_partition_by_itself(defs, instance, source_dir: Path) -> None:
    keys = ["vendor-a", "vendor-b", "vendor-c"]
    instance.add_dynamic_partitions("dynamic_partition", keys)
    paths = {}
    for rows, key in enumerate(keys, start=2):
        paths[key] = write_source_file(
            source_dir, f"{key}.csv", sample_csv(seed=rows, rows=rows), mtime=MTIME
        )
    job = defs.resolve_job_def("import_dynamic_partition_job")
    tags = dict(zip(RANGE_TAGS, (keys[0], keys[-1]), strict=True))
    assert job.execute_in_process(instance=instance, tags=tags).success

    for rows, key in enumerate(keys, start=2):
        table = latest_metadata(instance, "duckdb_dynamic_partition_table", key)
        assert table["dagster/row_count"] == rows
        assert table["path"] == str(paths[key])
        assert table["size_bytes"] == paths[key].stat().st_size
        assert [
            (column.name, column.type) for column in table["dagster/column_schema"].columns
        ] == TABLE_COLUMNS
        preview = table["preview"].records
        assert len(preview) == rows
        assert all(record.data["partition_key"] == key for record in preview)  # only this partition's rows
        files = latest_metadata(instance, "import_dynamic_partition_file", key)
        assert (files["files"], files["data_rows"]) == (3, 2 + 3 + 4)
        size = paths[key].stat().st_size
        listed = {record.data["partition"]: record.data for record in files["file_list"].records}
        assert listed[key] == {
            "partition": key,
            "path": str(paths[key]),
            "size_bytes": size,
            "modified_at": "2018-01-22 05:00:00",
            "data_rows": rows,
            "note": None,
        }


@pytest.mark.parametrize(
    ("asset", "group", "kind"),
    [
        ("import_partition_file", "scheduled_etl", "csv"),
        ("duckdb_partition_table", "scheduled_etl", "duckdb"),
        ("import_dynamic_partition_file", "event_driven_etl", "csv"),
        ("duckdb_dynamic_partition_table", "event_driven_etl", "duckdb"),
    ],
)
def test_each_asset_has_its_group_kind_owner_and_description(defs, asset: str, group: str, kind: str) -> None:
    spec = next(spec for spec in defs.resolve_all_asset_specs() if spec.key == dg.AssetKey(asset))

    assert spec.group_name == group
    assert spec.kinds == {kind}
    assert spec.owners == ["team:data-engineering"]
    assert spec.description and len(spec.description) > 20


def test_jobs_schedule_and_sensor_have_descriptions_and_start_stopped(defs) -> None:
    for name in ("import_partition_job", "import_dynamic_partition_job"):
        assert defs.resolve_job_def(name).description
    schedule = defs.resolve_schedule_def("asset_partitioned_schedule")
    sensor = defs.resolve_sensor_def("dynamic_sensor")
    assert schedule.description and sensor.description
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED

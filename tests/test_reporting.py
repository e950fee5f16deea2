"""What the assets and `dynamic_sensor` tell Dagster, translated from plain results with no run or tick."""

from pathlib import Path

import dagster as dg
import pytest

from dagster_and_etl.defs.partitions import dynamic_partitions_def
from dagster_and_etl.ingest.load_errors import FileChangedError
from dagster_and_etl.ingest.load_report import LoadReport, LoadResult, PinnedVersion
from dagster_and_etl.ingest.run_batches import RunBatch
from dagster_and_etl.ingest.sensor_cursor import SensorCursor
from dagster_and_etl.ingest.sensor_plan import TickPlan
from dagster_and_etl.ingest.source import SourceFile
from dagster_and_etl.ingest.source_file_scan import SourceFileError
from dagster_and_etl.ingest.table_summary import Column, Preview, TableFacts
from dagster_and_etl.reporting.file_sensor import tick_result
from dagster_and_etl.reporting.loads import (
    DAILY,
    EVENT_DRIVEN,
    LoadOutcome,
    check_results,
    load_failure,
    materializations,
    missing_files,
)

TABLE = dg.AssetKey("duckdb_dynamic_partition_table")
VERSION = PinnedVersion("etag=abc,size=10", 10, 1_700_000_000_000_000_000)


def outcome(report: LoadReport, keys: list[str], non_positive: int = 0) -> LoadOutcome:
    facts = TableFacts(
        [Column("date", "DATE", False)],
        {key: Preview(["date", "partition_key"], [("2018-01-22", key)]) for key in keys},
        non_positive,
    )
    locations = {key: f"s3://bucket/in/{key}.csv" for key in keys}
    return LoadOutcome(report, locations, "data.main.raw_dynamic_partition_data", facts, len(keys))


def source_file(key: str) -> SourceFile:
    return SourceFile(f"{key}.csv", key, 10, 1, 1, f"etag={key}")


def test_each_partition_holding_its_file_or_keeping_removed_rows_is_materialized_by_itself() -> None:
    report = LoadReport(
        loaded={"a": LoadResult(3, 3, VERSION)},
        unchanged={"b": LoadResult(2, 2, VERSION, loaded_by="run-1")},
        removed={"c": "run-0"},
    )

    events = list(materializations(TABLE, outcome(report, ["a", "b", "c"])))

    assert [event.partition for event in events] == ["b", "a", "c"]
    by_key = {event.partition: event.metadata for event in events}
    assert by_key["a"]["dagster/row_count"] == dg.IntMetadataValue(3)
    assert "by run run-1" in by_key["b"]["unchanged"].value
    assert by_key["c"]["source_removed"].value.endswith("by run run-0 are kept")


def test_a_days_file_not_arrived_fails_the_run_and_a_listed_file_deleted_fails_only_itself() -> None:
    with pytest.raises(dg.Failure, match=r"2018-01-22\.csv has not arrived in /landing"):
        missing_files(
            outcome(LoadReport(missing={"2018-01-22": "/landing/2018-01-22.csv"}), []),
            DAILY,
            "/landing",
            False,
        )

    deleted = outcome(LoadReport(missing={"a": "/landing/a.csv"}), [])
    assert missing_files(deleted, EVENT_DRIVEN, "/landing", re_executed=False) == []
    assert "deleted after it was listed" in deleted.report.failed["a"].problem

    removed_before_re_execution = outcome(LoadReport(missing={"a": "/landing/a.csv"}), [])
    (warning,) = missing_files(removed_before_re_execution, EVENT_DRIVEN, "/landing", re_executed=True)
    assert "/landing/a.csv is not there (removed)" in warning
    assert removed_before_re_execution.report.failed == {}


def test_the_checks_count_non_positive_prices_and_partitions_whose_rows_differ_from_their_file() -> None:
    report = LoadReport(loaded={"a": LoadResult(3, 3, VERSION), "b": LoadResult(2, 4, VERSION)})

    positive, row_count = check_results(outcome(report, ["a", "b"], non_positive=1))

    assert not positive.passed and positive.metadata["non_positive_rows"] == dg.IntMetadataValue(1)
    assert not row_count.passed and row_count.metadata["mismatched_partitions"].value == ["b"]


def test_bad_files_fail_the_run_for_good_and_files_that_kept_changing_for_a_retry() -> None:
    bad = LoadReport(
        failed={"a": SourceFileError("/landing/a.csv", "line 3: bad date", summary="line 3 (date)")}
    )
    failure = load_failure(outcome(bad, ["a", "b"]))
    assert failure is not None and failure.allow_retries is False
    assert failure.metadata["failed_partitions"].value == [
        {
            "partition": "a",
            "path": "/landing/a.csv",
            "problem": "line 3: bad date",
            "summary": "line 3 (date)",
        }
    ]

    changing = LoadReport(changing={"a": FileChangedError([Path("/landing/a.csv")])})
    retried = load_failure(outcome(changing, ["a"]))
    assert retried is not None and retried.allow_retries is True

    assert load_failure(outcome(LoadReport(loaded={"a": LoadResult(1, 1, VERSION)}), ["a"])) is None


def test_a_plan_becomes_runs_by_key_or_range_and_registrations_or_a_skip_reason() -> None:
    plan = TickPlan(
        batches=[RunBatch([source_file("a")]), RunBatch([source_file("b"), source_file("c")])],
        new_partition_keys=["c"],
        settling=[],
        skipped=[],
        waiting=[],
        cursor=SensorCursor(),
    )

    result = tick_result(plan, dynamic_partitions_def, ["key-1", "key-2"], "{}", None, "/landing")

    single, ranged = result.run_requests
    assert (single.run_key, single.partition_key) == ("key-1", "a")
    assert ranged.tags["dagster/asset_partition_range_start"] == "b"
    assert ranged.tags["dagster/asset_partition_range_end"] == "c"
    assert list(result.dynamic_partitions_requests[0].partition_keys) == ["c"]

    idle = TickPlan([], [], [], [], [], SensorCursor())
    skipped = tick_result(
        idle, dynamic_partitions_def, [], "{}", "The database lacks partition 'x'", "/landing"
    )
    assert skipped.skip_reason.skip_message.startswith(
        "The database lacks partition 'x'. No new or modified files"
    )

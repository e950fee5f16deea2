"""Bad source files fail their run with a message naming the file and what is wrong, and lose nothing."""

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from dagster_and_etl.sample_data import HEADER, sample_csv
from dagster_and_etl.testing import SensorDaemon
from tests.support import run_daily, wait_until_settled, with_bad_value, write_source_file

DAY, NEIGHBOUR = "2018-01-22", "2018-01-23"
GOOD_ROW = '"2018/09/28","264.7700","33597290.0000","270.2600","278.0000","260.5550"'


def rows(database: Path, key: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as conn:
        return conn.execute(
            "SELECT * FROM raw_partition_data WHERE partition_key = ? ORDER BY ALL", [key]
        ).fetchall()


def the_failure(result: dg.ExecuteInProcessResult) -> tuple[str, str, dict]:
    """The failed step, the failure's description and its metadata."""
    assert result.success is False
    (event,) = result.get_step_failure_events()
    failure = event.step_failure_data.user_failure_data
    assert failure is not None, event.step_failure_data.error
    return event.step_key, failure.description, {k: v.value for k, v in failure.metadata.items()}


@pytest.fixture
def loaded(defs, instance, source_dir: Path, duckdb_path: Path) -> dict[str, list[tuple]]:
    """Two partitions loaded from good files; what each held before the bad file came."""
    for seed, key in enumerate((DAY, NEIGHBOUR)):
        write_source_file(source_dir, f"{key}.csv", sample_csv(seed=seed))
        assert run_daily(defs, instance, key).success
    return {key: rows(duckdb_path, key) for key in (DAY, NEIGHBOUR)}


BAD_FILES = {
    "missing_column": (
        HEADER.replace(',"spread"', "") + "\n" + GOOD_ROW.rsplit(",", 1)[0],
        "duckdb_partition_table",
        ["missing spread"],
    ),
    "extra_column": (
        HEADER + ',"note"\n' + GOOD_ROW + ',"x"',
        "duckdb_partition_table",
        ["unexpected note"],
    ),
    "renamed_column": (
        HEADER.replace('"spend"', '"spent"') + "\n" + GOOD_ROW,
        "duckdb_partition_table",
        ["missing spend", "unexpected spent"],
    ),
    "non_numeric_value": (
        HEADER + "\n" + GOOD_ROW + "\n" + GOOD_ROW.replace('"270.2600"', '"twelve"'),
        "duckdb_partition_table",
        ["line 3", "column spend", '"twelve"'],
    ),
    "date_not_yyyy_mm_dd": (
        HEADER + "\n" + GOOD_ROW.replace('"2018/09/28"', '"28-09-2018"'),
        "duckdb_partition_table",
        ["line 2", "column date", '"28-09-2018"'],
    ),
    "empty_file": ("", "duckdb_partition_table", ["the file is empty (0 bytes)"]),
    "missing_value": (
        HEADER + "\n" + GOOD_ROW.replace('"264.7700"', '""'),
        "duckdb_partition_table",
        ["a value is missing or out of range", "share_price"],
    ),
    "year_of_two_digits": (
        HEADER + "\n" + GOOD_ROW.replace('"2018/09/28"', '"18/09/28"'),
        "duckdb_partition_table",
        ["out of range", "CHECK"],
    ),
    "row_with_too_few_values": (
        HEADER + "\n" + GOOD_ROW + "\n" + GOOD_ROW.rsplit(",", 1)[0],
        "duckdb_partition_table",
        ["line 3", "Expected Number of Columns: 6 Found: 5"],
    ),
    "extremely_long_line": (
        HEADER + "\n" + GOOD_ROW + "\n" + GOOD_ROW.replace('"264.7700"', '"' + "9" * 3_000_000 + '"'),
        "duckdb_partition_table",
        ["line 3", "Maximum line size"],
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_fails_naming_the_file_and_the_problem_and_keeps_every_row(
    defs, instance, source_dir: Path, duckdb_path: Path, loaded, case: str
) -> None:
    text, failed_step, expected = BAD_FILES[case]
    path = write_source_file(source_dir, f"{DAY}.csv", text)

    step, description, metadata = the_failure(run_daily(defs, instance, DAY))

    assert step == failed_step
    assert str(path) in description
    for fragment in expected:
        assert fragment in description
    assert metadata["path"] == str(path)
    assert rows(duckdb_path, DAY) == loaded[DAY]
    assert rows(duckdb_path, NEIGHBOUR) == loaded[NEIGHBOUR]


def test_bad_lines_are_listed_in_the_failure_metadata(defs, instance, source_dir: Path, loaded) -> None:
    bad = [GOOD_ROW.replace('"270.2600"', f'"x{n}"') for n in range(7)]
    write_source_file(source_dir, f"{DAY}.csv", "\n".join([HEADER, GOOD_ROW, *bad]))

    _, description, metadata = the_failure(run_daily(defs, instance, DAY))

    assert "7 bad line(s)" in description and "(and 2 more)" in description
    assert [entry["line"] for entry in metadata["bad_lines"]] == [3, 4, 5, 6, 7, 8, 9]
    assert {entry["column"] for entry in metadata["bad_lines"]} == {"spend"}


def test_binary_garbage_fails_its_load(defs, instance, source_dir: Path, duckdb_path: Path, loaded):
    path = source_dir / f"{DAY}.csv"
    path.write_bytes(bytes(range(256)) * 64)

    step, description, _ = the_failure(run_daily(defs, instance, DAY))

    assert step == "duckdb_partition_table"
    assert f"{path} cannot be loaded" in description
    assert "not a CSV header" in description or "not UTF-8" in description
    assert rows(duckdb_path, DAY) == loaded[DAY]


def test_non_utf8_file_fails_naming_the_line_and_byte(
    defs, instance, source_dir: Path, duckdb_path: Path, loaded
) -> None:
    path = source_dir / f"{DAY}.csv"
    text = HEADER + "\n" + GOOD_ROW + "\n" + GOOD_ROW.replace("264.7700", "26\xe9.7700")
    path.write_bytes(text.encode("latin-1"))

    step, description, _ = the_failure(run_daily(defs, instance, DAY))

    assert step == "duckdb_partition_table"
    assert f"{path} cannot be loaded: line 3 is not UTF-8 text (byte 0xe9)" in description
    assert rows(duckdb_path, DAY) == loaded[DAY]


def test_bad_file_fails_at_once_without_the_late_file_retries(defs, instance, source_dir: Path, loaded):
    write_source_file(source_dir, f"{DAY}.csv", "")
    result = run_daily(defs, instance, DAY)
    assert result.success is False
    retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert retries == []


def test_header_only_file_is_an_empty_partition(defs, instance, source_dir: Path, duckdb_path: Path, loaded):
    write_source_file(source_dir, f"{DAY}.csv", HEADER)

    result = run_daily(defs, instance, DAY)

    assert result.success
    assert rows(duckdb_path, DAY) == []
    assert rows(duckdb_path, NEIGHBOUR) == loaded[NEIGHBOUR]
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"share_price_is_positive": True, "row_count_matches_file": True}


def test_load_checks_pass_on_a_good_file_and_report_a_non_positive_share_price(
    defs, instance, source_dir: Path
) -> None:
    write_source_file(source_dir, f"{DAY}.csv", sample_csv(seed=5, rows=6))
    good = run_daily(defs, instance, DAY)
    checks = {e.check_name: e for e in good.get_asset_check_evaluations()}
    assert checks["share_price_is_positive"].passed
    assert checks["row_count_matches_file"].passed
    assert checks["row_count_matches_file"].metadata["file_rows"].value == 6

    write_source_file(source_dir, f"{DAY}.csv", HEADER + "\n" + GOOD_ROW.replace('"264.7700"', '"-1.0000"'))
    bad = run_daily(defs, instance, DAY)
    checks = {e.check_name: e for e in bad.get_asset_check_evaluations()}
    assert not checks["share_price_is_positive"].passed
    assert checks["share_price_is_positive"].metadata["non_positive_rows"].value == 1
    assert checks["row_count_matches_file"].passed


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_blank_lines_are_not_rows(defs, instance, source_dir: Path, duckdb_path: Path, newline: str) -> None:
    text = newline.join([HEADER, GOOD_ROW, "", GOOD_ROW, "", ""])
    write_source_file(source_dir, f"{DAY}.csv", text)
    result = run_daily(defs, instance, DAY)
    assert result.success
    assert len(rows(duckdb_path, DAY)) == 2
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["row_count_matches_file"]


def test_a_file_wrong_throughout_keeps_only_a_hundred_bad_lines_in_memory(
    defs, instance, source_dir: Path, duckdb_path: Path, loaded
) -> None:
    bad_row = GOOD_ROW.replace('"2018/09/28"', '"28-09-2018"')
    write_source_file(source_dir, f"{DAY}.csv", "\n".join([HEADER, *[bad_row] * 20_000]))

    _, description, metadata = the_failure(run_daily(defs, instance, DAY))

    assert "100 or more bad lines: line 2, column date" in description
    assert len(metadata["bad_lines"]) == 20  # the failure lists the first twenty
    assert rows(duckdb_path, DAY) == loaded[DAY]


def test_a_failed_partition_itself_says_which_file_line_and_column_without_quoting_it(
    defs, instance, source_dir: Path, loaded
) -> None:
    """What the partition's page shows beside "failed": an observation of that partition, in one line."""
    path = write_source_file(source_dir, f"{DAY}.csv", with_bad_value(1, line=3, column=0, value="9999.4242"))

    assert not run_daily(defs, instance, DAY).success

    table = dg.AssetKey("duckdb_partition_table")
    observed = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=table, asset_partitions=[DAY, NEIGHBOUR]), limit=10
    ).records
    (record,) = observed  # the bad day's only: its neighbour loaded
    observation = record.asset_observation
    assert observation is not None and observation.partition == DAY
    said = observation.metadata["load_failed"].value
    assert said.startswith(f"{path}: ") and "line 3" in said and "date" in said
    assert "9999.4242" not in said and "\n" not in said


def test_in_a_batch_only_the_bad_files_partition_is_told_why(
    defs, instance, source_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENSOR_MAX_BATCH")  # one run for the three
    write_source_file(source_dir, "a.csv", sample_csv(seed=1))
    bad = write_source_file(source_dir, "b.csv", with_bad_value(2, line=4, column=2, value="lots"))
    write_source_file(source_dir, "c.csv", sample_csv(seed=3))
    wait_until_settled(source_dir)

    (tick,) = [tick for tick in SensorDaemon(instance, defs).run_until_idle() if tick.launched]

    assert [run.success for run in tick.runs] == [False]
    table = dg.AssetKey("duckdb_dynamic_partition_table")
    records = instance.fetch_observations(table, limit=10).records
    told = {r.asset_observation.partition: r.asset_observation.metadata["load_failed"].value for r in records}
    assert list(told) == ["b"]
    assert told["b"].startswith(f"{bad}: ") and "line 4" in told["b"] and "lots" not in told["b"]

"""The UI path for real: the project's `dagster dev` in headless Chromium, used as a learner would use it.

Run alone with `pytest -m browser`. Screenshots are left in `test-artifacts/browser/`, among them one of
each obstacle the README's walkthrough step 3 meets (`daily-*.png`).
"""

import datetime as dt
import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from dagster_and_etl.sample_data import sample_csv
from tests.browser import (
    chromium_fixture,  # noqa: F401  (the fixture `chromium`)
    page_fixture,  # noqa: F401  (the fixture `page`)
    screenshot,
)
from tests.dagster_dev_process import (
    PROJECT_ROOT,
    dagster_dev_fixture,  # noqa: F401  (the fixture `dagster_dev`)
    dagster_home_fixture,  # noqa: F401  (the fixture `dagster_home`)
)
from tests.support import rows_per_partition, write_source_file

pytestmark = [pytest.mark.slow, pytest.mark.browser]

KEYS = ["2018-01-22", "2018-01-23", "2018-01-24"]
ROWS = {"2018-01-22": 10, "2018-01-23": 7, "2018-01-24": 12}
# Walkthrough step 3 loads this day by hand, from the project's own sample file (10 data rows).
DAY = "2018-01-22"
SAMPLE_FILE = PROJECT_ROOT / "data" / "source" / f"{DAY}.csv"
# Runs are queued, started in processes of their own and then loaded one at a time on a 2-core machine.
RUNS_TIMEOUT_MS = 240_000


def automation_row(page: Page, kind: str, name: str) -> Locator:
    """The row of one schedule or sensor in the Automation list."""
    link = page.locator(f"a[href$='/{kind}/{name}']")
    return page.locator("[class*='ListItem_listItem__']").filter(has=link)


def toggle(row: Locator) -> Locator:
    """The on/off switch of an automation row: the checkbox drawn as a switch."""
    return row.locator("label[class*='formatSwitch'] input[type=checkbox]")


def next_0515_utc(now: dt.datetime) -> dt.datetime:
    today = now.replace(hour=5, minute=15, second=0, microsecond=0)
    return today if now < today else today + dt.timedelta(days=1)


def test_a_learner_turns_the_sensor_on_drops_files_and_turns_the_schedule_on_in_the_ui(
    dagster_dev, page: Page, source_dir: Path, duckdb_path: Path
) -> None:
    base = f"http://127.0.0.1:{dagster_dev()}"

    # Both automations are listed, and both start stopped.
    page.goto(f"{base}/automation")
    sensor_row = automation_row(page, "sensors", "dynamic_sensor")
    schedule_row = automation_row(page, "schedules", "asset_partitioned_schedule")
    expect(sensor_row).to_be_visible()
    expect(schedule_row).to_be_visible()
    expect(toggle(sensor_row)).not_to_be_checked()
    expect(toggle(schedule_row)).not_to_be_checked()

    # Turn the sensor on by its switch, then drop three files into the source folder.
    sensor_row.locator("label[class*='formatSwitch']").click()
    expect(toggle(sensor_row)).to_be_checked()
    for seed, key in enumerate(KEYS):
        text = SAMPLE_FILE.read_text() if key == DAY else sample_csv(seed=seed, rows=ROWS[key])
        write_source_file(source_dir, f"{key}.csv", text)

    # The sensor's runs succeed (one per file: the tests' SENSOR_MAX_BATCH is 1) ...
    page.goto(f"{base}/runs")
    expect(page.get_by_text("Success", exact=True)).to_have_count(len(KEYS), timeout=RUNS_TIMEOUT_MS)
    expect(page.get_by_text("Failure", exact=True)).to_have_count(0)
    page.goto(f"{base}/locations/dagster_and_etl/sensors/dynamic_sensor")
    expect(page.get_by_text("Running", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"^[123] runs? requested$")).first).to_be_visible()
    screenshot(page, "sensor")

    # ... the partitions show as materialized, each with what its load reported ...
    partitions = f"{base}/assets/duckdb_dynamic_partition_table?view=partitions"
    page.goto(partitions)
    expect(page.get_by_text(f"Materialized ({len(KEYS)})")).to_be_visible()
    expect(page.get_by_text("Failed (0)")).to_be_visible()
    page.goto(f"{partitions}&partition={KEYS[1]}")
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    metadata = page.locator("table").filter(has_text="dagster/row_count").first
    expect(metadata).to_contain_text("data.main.raw_dynamic_partition_data")
    expect(metadata).to_contain_text(str(source_dir / f"{KEYS[1]}.csv"))
    expect(metadata).to_contain_text("preview")
    screenshot(page, "materialized-partition")

    # ... and DuckDB holds each file's rows, once.
    assert rows_per_partition(duckdb_path) == ROWS

    # The asset graph, with both groups opened.
    page.goto(f"{base}/asset-groups")
    for group in ("event_driven_etl", "scheduled_etl"):
        page.locator("svg").get_by_text(group, exact=True).dblclick()
    for asset in (
        "import_dynamic_partition_file",
        "duckdb_dynamic_partition_table",
        "duckdb_partition_table",
    ):
        expect(page.locator("svg").get_by_text(asset, exact=True)).to_be_visible()
    screenshot(page, "asset-graph")

    # Turn the schedule on: its next tick is the next 05:15 UTC.
    page.goto(f"{base}/automation")
    schedule_row.locator("label[class*='formatSwitch']").click()
    expect(toggle(schedule_row)).to_be_checked()
    page.goto(f"{base}/locations/dagster_and_etl/schedules/asset_partitioned_schedule")
    next_tick = next_0515_utc(dt.datetime.now(dt.UTC))
    next_tick_row = page.locator("tr").filter(has_text="Next tick")
    expect(next_tick_row).to_contain_text(
        re.compile(rf"(?<!\d){next_tick.day} {next_tick:%b}, 0?5:15:00 UTC")
    )
    screenshot(page, "schedule")

    # Walkthrough step 3, as written: in the Catalog open duckdb_partition_table, press Materialize and
    # pick 2018-01-22. Three obstacles stand in the way; each is met and passed as a learner would.
    page.goto(f"{base}/assets")
    page.get_by_role("link", name="duckdb_partition_table").first.click()
    expect(page).to_have_url(re.compile(r"/assets/duckdb_partition_table$"))
    page.get_by_role("button", name="Materialize…").click()

    # 1. "Are you sure?": the upstream file asset has never been materialized. Confirm goes on (the table
    # asset reads the file itself).
    upstream = page.get_by_role("dialog").filter(has_text="Are you sure?")
    expect(upstream).to_contain_text("upstream assets listed below have not been materialized yet")
    expect(upstream).to_contain_text("import_partition_file")
    screenshot(page, "daily-1-upstream-not-materialized")
    upstream.get_by_role("button", name="Confirm").click()
    expect(upstream).to_be_hidden()

    # 2. The picker shows only the last 90 days: a typed 2018-01-22 is "not found". OK closes the error;
    # the date must be erased before anything else (leaving the box with it brings the error back), then
    # "Show all partitions" widens the range to all time and the typed date is taken.
    launch = page.get_by_role("dialog").filter(has_text="Launch runs to materialize duckdb_partition_table")
    expect(launch).to_contain_text("Showing the last 90 days")
    picker = launch.get_by_role("textbox")
    picker.fill(DAY)
    picker.press("Enter")
    not_found = page.get_by_role("dialog").filter(has_text=f"Could not find partition: {DAY}")
    expect(not_found).to_be_visible()
    screenshot(page, "daily-2-partition-not-found")
    not_found.get_by_role("button", name="OK").click()
    expect(not_found).to_be_hidden()
    picker.fill("")
    launch.get_by_role("button", name="Show all partitions").click()
    expect(launch.get_by_role("button", name="All time")).to_be_visible()
    expect(launch).not_to_contain_text("Showing the last 90 days")
    picker.fill(DAY)
    picker.press("Enter")
    expect(launch.get_by_text("1 partition", exact=True)).to_be_visible()
    expect(not_found).to_have_count(0)

    # 3. A yellow "Upstream data missing" warning, for the same reason as 1; "Launch 1 run" goes on.
    expect(launch.get_by_text("Upstream data missing", exact=True)).to_be_visible()
    expect(launch).to_contain_text(
        f"{DAY} cannot be materialized because upstream materializations are not available"
    )
    screenshot(page, "daily-3-upstream-data-missing")
    launch.get_by_role("button", name="Launch 1 run").click()
    expect(launch).to_be_hidden()
    expect(page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}$"))).to_be_visible()

    # The run succeeds, the partition shows as materialized with what its load reported (and, as its
    # upstream never ran, "Unsynced"), and DuckDB holds the file's rows.
    page.goto(f"{base}/runs")
    expect(page.get_by_text("Success", exact=True)).to_have_count(len(KEYS) + 1, timeout=RUNS_TIMEOUT_MS)
    expect(page.get_by_text("Failure", exact=True)).to_have_count(0)
    page.goto(f"{base}/assets/duckdb_partition_table?view=partitions&partition={DAY}")
    expect(page.get_by_text("Materialized (1)")).to_be_visible()
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    expect(page.get_by_text("Unsynced (1)")).to_be_visible()
    metadata = page.locator("table").filter(has_text="dagster/row_count").first
    expect(metadata.locator("tr").filter(has_text="dagster/row_count")).to_contain_text("10")
    expect(metadata).to_contain_text("data.main.raw_partition_data")
    expect(metadata).to_contain_text(str(source_dir / f"{DAY}.csv"))
    screenshot(page, "daily-materialized-partition")
    assert rows_per_partition(duckdb_path, "raw_partition_data") == {DAY: 10}

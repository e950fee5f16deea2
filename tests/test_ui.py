"""The README's walkthrough, as written, in headless Chromium against the project's own `make dev`.

Run alone with `pytest -m browser`. Screenshots are left in `test-artifacts/browser/`.
"""

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser import (
    chromium_fixture,  # noqa: F401  (the fixture `chromium`)
    page_fixture,  # noqa: F401  (the fixture `page`)
    screenshot,
)
from tests.dagster_dev_process import (
    PROJECT_ROOT,
    dagster_dev_fixture,  # noqa: F401  (the fixture `dagster_dev`)
    dagster_home_fixture,  # noqa: F401  (the fixture `dagster_home`)
    make,
    wait_for,
)
from tests.support import reported_backlog, rows_per_partition

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SAMPLE_FILES = sorted((PROJECT_ROOT / "data" / "source").glob("*.csv"))
DAY = "2018-01-22"  # walkthrough step 3 loads this day, from the project's own sample file (10 data rows)
AUTOMATIONS = {
    "schedules": ["asset_partitioned_schedule", "archive_schedule"],
    "sensors": ["dynamic_sensor", "freshness_checks_sensor", "alert_sensor"],
}
# Runs are queued, started in processes of their own and then loaded one at a time on a 2-core machine.
RUNS_TIMEOUT_MS = 240_000
# alert_sensor reports changed backlog figures at most once a minute, so the last may come a minute late.
BACKLOG_TIMEOUT_S = 180


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


def partition_row(page: Page, key: str) -> Locator:
    """A partition in an asset's Partitions list."""
    return page.locator(f"[data-tooltip='{key}']")


def shown_partition(page: Page, base: str, asset: str, key: str) -> Locator:
    """Opens the asset's Partitions, finds the partition with the list's name filter, picks it, and
    returns the table of what its latest materialization reported."""
    page.goto(f"{base}/assets/{asset}?view=partitions")
    page.get_by_placeholder("Filter by name").fill(key)
    partition_row(page, key).click()
    expect(page).to_have_url(re.compile(rf"partition={key}$"))
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    return page.locator("table").filter(has_text="dagster/row_count").first


def test_the_readme_walkthrough_works_as_written(
    dagster_dev,
    dagster_home: Path,
    page: Page,
    source_dir: Path,
    duckdb_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The sample files are in the source folder, and the sensor batches with its default settings.
    for path in SAMPLE_FILES:
        shutil.copy2(path, source_dir / path.name)
    monkeypatch.delenv("SENSOR_MAX_BATCH")
    # 1. Start Dagster with `make dev` and open the UI (a first-visit dialog is skipped: tests/browser.py).
    base = f"http://127.0.0.1:{dagster_dev()}"

    # 2. Look around: the two pipelines in Lineage; five automations, all stopped.
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
    page.goto(f"{base}/automation")
    for kind, names in AUTOMATIONS.items():
        for name in names:
            expect(toggle(automation_row(page, kind, name))).not_to_be_checked()

    # 3. Load a day: `make load-day DAY=2018-01-22`, in make dev's Dagster home, then find it among the
    # Partitions by name.
    loaded = subprocess.run(
        make("load-day", f"DAY={DAY}"),
        cwd=PROJECT_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    page.goto(f"{base}/runs")
    expect(page.get_by_text("Success", exact=True)).to_have_count(1)
    metadata = shown_partition(page, base, "duckdb_partition_table", DAY)
    expect(metadata.locator("tr").filter(has_text="dagster/row_count")).to_contain_text("10")
    expect(metadata).to_contain_text("data.main.raw_partition_data")
    expect(metadata).to_contain_text(str(source_dir / f"{DAY}.csv"))
    expect(metadata).to_contain_text("preview")
    screenshot(page, "daily-materialized-partition")
    assert rows_per_partition(duckdb_path, "raw_partition_data") == {DAY: 10}

    # 4. Turn the schedule on: its next tick is the next 05:15 UTC.
    page.goto(f"{base}/automation")
    schedule_row = automation_row(page, "schedules", "asset_partitioned_schedule")
    schedule_row.locator("label[class*='formatSwitch']").click()
    expect(toggle(schedule_row)).to_be_checked()
    page.goto(f"{base}/locations/dagster_and_etl/schedules/asset_partitioned_schedule")
    next_tick = next_0515_utc(dt.datetime.now(dt.UTC))
    expect(page.locator("tr").filter(has_text="Next tick")).to_contain_text(
        re.compile(rf"(?<!\d){next_tick.day} {next_tick:%b}, 0?5:15:00 UTC")
    )
    screenshot(page, "schedule")

    # 5. Turn the sensors on: alert_sensor first, whose first tick reports the five files waiting; then
    # dynamic_sensor, whose first tick loads every file already there, in one run.
    page.goto(f"{base}/automation")
    alert_row = automation_row(page, "sensors", "alert_sensor")
    alert_row.locator("label[class*='formatSwitch']").click()
    expect(toggle(alert_row)).to_be_checked()
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        first = wait_for(lambda: reported_backlog(instance), 120, "alert_sensor's first backlog report")
    assert [files for files, _, _ in first] == [len(SAMPLE_FILES)]
    sensor_row = automation_row(page, "sensors", "dynamic_sensor")
    sensor_row.locator("label[class*='formatSwitch']").click()
    expect(toggle(sensor_row)).to_be_checked()
    page.goto(f"{base}/runs")
    expect(page.get_by_text("Success", exact=True)).to_have_count(2, timeout=RUNS_TIMEOUT_MS)

    # 6. Drop a file in, new or under another name: the next tick loads them.
    new_day = subprocess.run(
        [sys.executable, "-m", "dagster_and_etl.sample_data", str(source_dir), "2018-01-27", "--days", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert new_day.returncode == 0, new_day.stderr
    shutil.copy(source_dir / f"{DAY}.csv", source_dir / "vendor-a.csv")
    keys = [path.stem for path in SAMPLE_FILES] + ["2018-01-27", "vendor-a"]
    partitions = f"{base}/assets/duckdb_dynamic_partition_table?view=partitions"
    page.goto(partitions)
    expect(page.get_by_text(f"Materialized ({len(keys)})")).to_be_visible(timeout=RUNS_TIMEOUT_MS)
    expect(page.get_by_text("Failed (0)")).to_be_visible()
    page.goto(f"{base}/locations/dagster_and_etl/sensors/dynamic_sensor")
    expect(page.get_by_text(re.compile(r"^1 run requested$")).first).to_be_visible()
    screenshot(page, "sensor")
    metadata = shown_partition(page, base, "duckdb_dynamic_partition_table", "vendor-a")
    expect(metadata).to_contain_text("data.main.raw_dynamic_partition_data")
    expect(metadata).to_contain_text(str(source_dir / "vendor-a.csv"))
    screenshot(page, "materialized-partition")

    # 7. Query the table: each file's rows, once.
    assert rows_per_partition(duckdb_path) == dict.fromkeys(keys, 10)
    page.goto(f"{base}/runs")
    expect(page.get_by_text("Failure", exact=True)).to_have_count(0)

    # 8. The backlog, plotted: five files waiting, then none once loaded (reported at most once a minute).
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        figures = wait_for(
            lambda: (found := reported_backlog(instance)) and found[-1] == (0, 0, 0) and found,
            BACKLOG_TIMEOUT_S,
            "alert_sensor to report an empty backlog",
        )
    assert figures[0][0] == len(SAMPLE_FILES) and len(figures) >= 2
    page.goto(f"{base}/assets/duckdb_dynamic_partition_table?view=checks&checkDetail=files_loaded_in_time")
    for section in ("About", "Latest execution"):  # folded, so that the plots show on the first screen
        page.get_by_text(section, exact=True).click()
    for figure in ("backlog_files", "backlog_bytes", "backlog_oldest_seconds"):
        plot = page.locator("div").filter(has=page.locator("canvas"), has_text=re.compile(f"^{figure}"))
        expect(plot.last).to_be_visible()
    screenshot(page, "backlog-plot")

"""Benchmark 10: how the event-driven pipeline slows as registered partitions accumulate.

For each size, a folder of that many files, every one registered as a dynamic partition by a first tick
with `SENSOR_INCLUDE_EXISTING_FILES=false` (none loaded), on a Dagster instance of its own. Then, each
round, timed as the daemon would do the work (`SensorDaemon`):
- an idle tick: nothing new in the folder;
- the tick that finds one new file: it registers the file's partition and requests its run;
- that run, executed in process: from its creation to its end, for one 10-row file;
- with `--browser`: the table's **Partitions** page under `make dev` on an instance holding those
  partitions, in headless Chromium, from the page's request until it shows how many are missing; with
  `--materialized` as well, every one of those partitions is first recorded as materialized (a runless
  materialization each, as a load would leave), and the page is timed until it shows them so.
The baseline is the same at the smallest size, measured in the same run.

Run: `.venv/bin/python -m benchmarks.partition_ceiling [--sizes 100 10000 50000] [--runs 3] [--browser
[--materialized]]`
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg

from benchmarks._stats import summary
from dagster_and_etl.definitions import defs as load_defs
from dagster_and_etl.defs.partitions import dynamic_partitions_def
from dagster_and_etl.sample_data import HEADER, sample_csv
from dagster_and_etl.testing import SensorDaemon, wait_until_settled


def measure(scratch: Path, size: int, runs: int) -> dict[str, list[float]]:
    """The idle tick, the tick finding one file and its run, `runs` times over `size` registered keys."""
    folder = scratch / f"source-{size}"
    folder.mkdir()
    for index in range(size):
        (folder / f"file-{index:06d}.csv").write_text(HEADER)
    os.environ.update(
        SOURCE_DIR=str(folder),
        DUCKDB_DATABASE=str(scratch / f"data-{size}.duckdb"),
        SENSOR_INCLUDE_EXISTING_FILES="false",
    )
    wait_until_settled(folder)
    times: dict[str, list[float]] = {"idle tick": [], "tick finding one file": [], "its run": []}
    with dg.instance_for_test() as instance:
        daemon = SensorDaemon(instance, load_defs())
        first = daemon.tick(execute=False)
        assert (
            not first.launched and len(instance.get_dynamic_partitions(dynamic_partitions_def.name)) == size
        )
        for round_ in range(runs):
            started = time.perf_counter()
            idle = daemon.tick(execute=False)
            times["idle tick"].append(time.perf_counter() - started)
            assert not idle.launched, idle.skip_reason
            (folder / f"new-{round_}.csv").write_text(sample_csv(seed=round_))
            wait_until_settled(folder)
            started = time.perf_counter()
            found = daemon.tick(execute=False)
            times["tick finding one file"].append(time.perf_counter() - started)
            (request,) = found.launched
            started = time.perf_counter()
            result = daemon.run(request)
            times["its run"].append(time.perf_counter() - started)
            assert result.success
    return times


def partitions_page_seconds(scratch: Path, size: int, runs: int, materialized: bool) -> list[float]:
    """The Partitions page of the event-driven table under `make dev`, `size` partitions registered, and
    all of them materialized if `materialized`."""
    import re
    import shutil
    import subprocess

    from playwright.sync_api import expect, sync_playwright

    from tests.browser import CHROMIUM_FLAGS
    from tests.dagster_dev_process import PROJECT_ROOT, free_port, location_loaded, make, stop_group, wait_for

    home = scratch / f"home-{size}"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / ".dagster_home" / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        keys = [f"file-{index:06d}" for index in range(size)]
        instance.add_dynamic_partitions(dynamic_partitions_def.name, keys)
        table = dg.AssetKey("duckdb_dynamic_partition_table")
        for key in keys if materialized else []:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=table, partition=key))
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    log = (scratch / f"dev-{size}.log").open("w")
    process = subprocess.Popen(
        make("dev", f"PORT={port}"), cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    seconds = []
    try:
        wait_for(lambda: location_loaded(port), 180, "make dev to load the code location")
        url = f"http://127.0.0.1:{port}/assets/duckdb_dynamic_partition_table?view=partitions"
        status = "Materialized" if materialized else "Missing"
        shown = re.compile(rf"{status} \({size:,}\)|{status} \({size}\)")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS
            )
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda button: button.click())
            for _ in range(runs + 1):  # the first load, which warms the webserver, is not counted
                started = time.perf_counter()
                page.goto(url)
                expect(page.get_by_text(shown)).to_be_visible(timeout=600_000)
                seconds.append(time.perf_counter() - started)
            browser.close()
    finally:
        stop_group(process)
    return seconds[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000, 50_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="also time the Partitions page")
    parser.add_argument(
        "--materialized", action="store_true", help="with --browser: the partitions materialized first"
    )
    args = parser.parse_args()
    os.environ.update(SENSOR_SETTLE_SECONDS="0", SENSOR_MAX_BATCH="500", SENSOR_MAX_RUNS_PER_TICK="20")

    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes:
            results[size] = measure(Path(scratch), size, args.runs)
            if args.browser:
                results[size]["Partitions page"] = partitions_page_seconds(
                    Path(scratch), size, args.runs, args.materialized
                )
            print(f"{size:,} partitions measured", flush=True)

    smallest = min(results)
    for size, times in results.items():
        for name, seconds in times.items():
            ratio = statistics.median(seconds) / statistics.median(results[smallest][name])
            print(f"{summary(f'{size:,} partitions: {name}', seconds)}  {ratio:.2f}x at {smallest:,}")


if __name__ == "__main__":
    main()

"""The sensor's planning logic on real folders, with the tick's clock given by the test."""

import time
from pathlib import Path

from dagster_and_etl.ingest.partition_keys import key_for_file_name, key_problem
from dagster_and_etl.ingest.sensor_plan import SensorCursor, plan_tick
from dagster_and_etl.ingest.source_folder import TIMESTAMP_SLACK_NS, list_source_files
from tests.support import write_source_file

SECOND = 1_000_000_000


def keys(files) -> list[str]:
    return [source_file.partition_key for source_file in files]


def test_file_is_settled_only_once_unchanged_for_the_settle_window_and_the_slack(source_dir: Path) -> None:
    write_source_file(source_dir, "a.csv")
    listing = list_source_files(source_dir)
    changed_ns = listing.files[0].changed_ns
    settle_ns = 5 * SECOND

    just_short = plan_tick(
        listing, set(), SensorCursor(), changed_ns + settle_ns + TIMESTAMP_SLACK_NS - 1, settle_ns
    )
    assert keys(just_short.settling) == ["a"] and just_short.to_request == []

    on_time = plan_tick(
        listing, set(), SensorCursor(), changed_ns + settle_ns + TIMESTAMP_SLACK_NS, settle_ns
    )
    assert keys(on_time.to_request) == ["a"] and on_time.settling == []
    assert on_time.new_partition_keys == ["a"]


def test_horizon_follows_the_clock_and_never_moves_back(source_dir: Path) -> None:
    listing = list_source_files(source_dir)
    now_ns = time.time_ns()
    plan = plan_tick(listing, [], SensorCursor(), now_ns, 5 * SECOND)
    assert plan.cursor.horizon_ns == now_ns - 5 * SECOND - TIMESTAMP_SLACK_NS

    # A longer settle window set later does not move the horizon back over changes already handled.
    later = plan_tick(listing, [], plan.cursor, now_ns + SECOND, 60 * SECOND)
    assert later.cursor.horizon_ns == plan.cursor.horizon_ns


def test_registered_unchanged_file_is_not_requested_but_a_registered_changed_one_is(source_dir: Path) -> None:
    write_source_file(source_dir, "old.csv")
    time.sleep(0.05)  # well past the kernel's timestamp granularity
    write_source_file(source_dir, "new.csv")
    listing = list_source_files(source_dir)
    changed = {f.partition_key: f.changed_ns for f in listing.files}
    assert changed["old"] < changed["new"]
    # The previous tick's horizon lies after the first change and before the second.
    cursor = SensorCursor(horizon_ns=changed["old"])
    now_ns = changed["new"] + 10 * SECOND

    plan = plan_tick(listing, ["old", "new"], cursor, now_ns, 0)
    assert keys(plan.to_request) == ["new"]
    assert plan.new_partition_keys == []


def test_unregistered_file_is_requested_whatever_its_timestamps(source_dir: Path) -> None:
    write_source_file(source_dir, "late.csv", mtime=1_000_000_000)
    listing = list_source_files(source_dir)
    now_ns = listing.files[0].changed_ns + 10 * SECOND
    cursor = SensorCursor(horizon_ns=now_ns - SECOND)  # everything up to now is "seen"
    plan = plan_tick(listing, [], cursor, now_ns, 0)
    assert keys(plan.to_request) == ["late"]
    assert plan.new_partition_keys == ["late"]


def test_cursor_round_trips_and_unreadable_cursors_start_over() -> None:
    assert SensorCursor.parse(SensorCursor(42).serialize()) == SensorCursor(42)
    for text in (None, "", "garbage", "[]", '{"horizon_ns": "1"}', '{"horizon_ns": -5}', "{}"):
        assert SensorCursor.parse(text) == SensorCursor(0)


def test_skip_reason_tells_idle_settling_and_unsafe_folders_apart(source_dir: Path) -> None:
    write_source_file(source_dir, "busy.csv")
    write_source_file(source_dir, "bad\x01name.csv")
    listing = list_source_files(source_dir)
    now_ns = listing.files[0].changed_ns  # nothing has settled yet
    plan = plan_tick(listing, [], SensorCursor(), now_ns, 0)
    reason = plan.skip_reason("/src")
    assert reason == (
        "No new or modified files in /src; 1 file(s) still settling; "
        "1 file(s) skipped: names that cannot be partition keys ('bad\\x01name.csv')."
    )


def test_listing_passes_over_everything_but_regular_csv_files(source_dir: Path) -> None:
    (source_dir / "sub.csv").mkdir()
    for name in ("x.csv", ".hidden.csv", "y.csv.tmp", "z.part", "w.txt", "v.CSV"):
        write_source_file(source_dir, name)
    (source_dir / "link.csv").symlink_to(source_dir / "x.csv")
    listing = list_source_files(source_dir)
    assert keys(listing.files) == ["x"]
    assert listing.unsafe_names == []


def test_key_rules() -> None:
    assert key_for_file_name("2018-01-22.csv") == "2018-01-22"
    assert key_for_file_name("2018-01-22.CSV") is None
    assert key_for_file_name(".2018-01-22.csv") is None
    assert key_for_file_name("2018-01-22.csv.tmp") is None
    for good in ("2018-01-22", "vendor a_batch-7", "données", "x" * 200):
        assert key_problem(good) is None, good
    for bad in ("", "x" * 201, "a\x00b", "a\nb", "a\u200bb", "a/b", "a\\b", "..", "a...b", ".x", " x", "x "):
        assert key_problem(bad) is not None, repr(bad)


def test_idle_tick_does_not_read_the_registered_keys_but_a_changed_folder_does(source_dir: Path) -> None:
    write_source_file(source_dir, "a.csv")
    listing = list_source_files(source_dir)
    now_ns = listing.files[0].changed_ns + 10 * SECOND
    reads: list[int] = []

    def registered() -> list[str]:
        reads.append(1)
        return ["a"] if len(reads) > 1 else []

    first = plan_tick(listing, registered, SensorCursor(), now_ns, 0)
    assert keys(first.to_request) == ["a"] and len(reads) == 1
    idle = plan_tick(list_source_files(source_dir), registered, first.cursor, now_ns + SECOND, 0)
    assert idle.batches == [] and len(reads) == 1  # same names, nothing changed: no read

    (source_dir / "a.csv").rename(source_dir / "b.csv")  # a name changes
    moved = plan_tick(list_source_files(source_dir), registered, idle.cursor, now_ns + 20 * SECOND, 0)
    assert len(reads) == 2 and keys(moved.to_request) == ["b"]


def test_a_clock_set_back_makes_the_next_tick_rebuild_from_the_load_history(source_dir: Path) -> None:
    write_source_file(source_dir, "a.csv", seed=1)
    listing = list_source_files(source_dir)
    first_version = listing.files[0].version
    now_ns = listing.files[0].changed_ns + 10 * SECOND
    first = plan_tick(listing, [], SensorCursor(), now_ns, 0, loaded_versions={})
    assert keys(first.to_request) == ["a"]
    # The clock ran two minutes fast for a tick, then was corrected.
    fast = plan_tick(listing, ["a"], first.cursor, now_ns + 120 * SECOND, 0)
    assert fast.batches == []

    write_source_file(source_dir, "a.csv", seed=2)  # changed at the correct time, behind the fast horizon
    changed = list_source_files(source_dir)
    assert changed.files[0].changed_ns < fast.cursor.horizon_ns  # an ordinary tick would never see it
    corrected = changed.files[0].changed_ns + 10 * SECOND

    plan = plan_tick(changed, ["a"], fast.cursor, corrected, 0, loaded_versions={"a": first_version})

    assert plan.rebuilt and keys(plan.to_request) == ["a"]
    assert plan.cursor.horizon_ns < fast.cursor.horizon_ns

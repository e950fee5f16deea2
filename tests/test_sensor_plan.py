"""The sensor's planning logic on real folders, with the tick's clock given by the test."""

import time
from pathlib import Path

from dagster_and_etl.ingest.partition_keys import key_for_file_name, key_problem
from dagster_and_etl.ingest.sensor_cursor import MAX_REMEMBERED, SensorCursor, version_mark
from dagster_and_etl.ingest.sensor_plan import TickRules, plan_tick
from dagster_and_etl.ingest.source import ListedFile, SourceListing
from dagster_and_etl.ingest.source_bucket import REWRITE_LOOKBACK_NS
from dagster_and_etl.ingest.source_bucket import TIMESTAMP_SLACK_NS as BUCKET_SLACK_NS
from dagster_and_etl.ingest.source_bucket import _file_of as bucket_file_of
from dagster_and_etl.ingest.source_bucket import version_token as bucket_version_token
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
        listing,
        SensorCursor(),
        TickRules(settle_ns=settle_ns),
        now_ns=changed_ns + settle_ns + TIMESTAMP_SLACK_NS - 1,
    )
    assert keys(just_short.settling) == ["a"] and just_short.to_request == []

    on_time = plan_tick(
        listing,
        SensorCursor(),
        TickRules(settle_ns=settle_ns),
        now_ns=changed_ns + settle_ns + TIMESTAMP_SLACK_NS,
    )
    assert keys(on_time.to_request) == ["a"] and on_time.settling == []
    assert on_time.new_partition_keys == ["a"]


def test_horizon_follows_the_clock_and_never_moves_back(source_dir: Path) -> None:
    listing = list_source_files(source_dir)
    now_ns = time.time_ns()
    plan = plan_tick(listing, SensorCursor(), TickRules(settle_ns=5 * SECOND), now_ns=now_ns)
    assert plan.cursor.horizon_ns == now_ns - 5 * SECOND - TIMESTAMP_SLACK_NS

    # A longer settle window set later does not move the horizon back over changes already handled.
    later = plan_tick(listing, plan.cursor, TickRules(settle_ns=60 * SECOND), now_ns=now_ns + SECOND)
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

    plan = plan_tick(listing, cursor, TickRules(), registered_keys=["old", "new"], now_ns=now_ns)
    assert keys(plan.to_request) == ["new"]
    assert plan.new_partition_keys == []


def test_unregistered_file_is_requested_whatever_its_timestamps(source_dir: Path) -> None:
    write_source_file(source_dir, "late.csv", mtime=1_000_000_000)
    listing = list_source_files(source_dir)
    now_ns = listing.files[0].changed_ns + 10 * SECOND
    cursor = SensorCursor(horizon_ns=now_ns - SECOND)  # everything up to now is "seen"
    plan = plan_tick(listing, cursor, TickRules(), now_ns=now_ns)
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
    plan = plan_tick(listing, SensorCursor(), TickRules(), now_ns=now_ns)
    reason = plan.skip_reason("/src")
    assert reason == (
        "No new or modified files in /src; 1 file(s) still settling; "
        "1 file(s) skipped, the log says why ('bad\\x01name.csv')."
    )


def test_listing_passes_over_everything_but_regular_csv_files(source_dir: Path) -> None:
    (source_dir / "sub.csv").mkdir()
    for name in ("x.csv", ".hidden.csv", "y.csv.tmp", "z.part", "w.txt", "v.CSV"):
        write_source_file(source_dir, name)
    (source_dir / "link.csv").symlink_to(source_dir / "x.csv")
    listing = list_source_files(source_dir)
    assert keys(listing.files) == ["x"]
    assert listing.skipped == []


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

    first = plan_tick(listing, SensorCursor(), TickRules(), registered_keys=registered, now_ns=now_ns)
    assert keys(first.to_request) == ["a"] and len(reads) == 1
    idle = plan_tick(
        list_source_files(source_dir),
        first.cursor,
        TickRules(),
        registered_keys=registered,
        now_ns=now_ns + SECOND,
    )
    assert idle.batches == [] and len(reads) == 1  # same names, nothing changed: no read

    (source_dir / "a.csv").rename(source_dir / "b.csv")  # a name changes
    moved = plan_tick(
        list_source_files(source_dir),
        idle.cursor,
        TickRules(),
        registered_keys=registered,
        now_ns=now_ns + 20 * SECOND,
    )
    assert len(reads) == 2 and keys(moved.to_request) == ["b"]


def test_a_clock_set_back_makes_the_next_tick_rebuild_from_the_load_history(source_dir: Path) -> None:
    write_source_file(source_dir, "a.csv", seed=1)
    listing = list_source_files(source_dir)
    first_version = listing.files[0].version
    now_ns = listing.files[0].changed_ns + 10 * SECOND
    first = plan_tick(listing, SensorCursor(), TickRules(), loaded_versions={}, now_ns=now_ns)
    assert keys(first.to_request) == ["a"]
    # The clock ran two minutes fast for a tick, then was corrected.
    fast = plan_tick(listing, first.cursor, TickRules(), registered_keys=["a"], now_ns=now_ns + 120 * SECOND)
    assert fast.batches == []

    write_source_file(source_dir, "a.csv", seed=2)  # changed at the correct time, behind the fast horizon
    changed = list_source_files(source_dir)
    assert changed.files[0].changed_ns < fast.cursor.horizon_ns  # an ordinary tick would never see it
    corrected = changed.files[0].changed_ns + 10 * SECOND

    plan = plan_tick(
        changed,
        fast.cursor,
        TickRules(),
        registered_keys=["a"],
        loaded_versions={"a": first_version},
        now_ns=corrected,
    )

    assert plan.rebuilt and keys(plan.to_request) == ["a"]
    assert plan.cursor.horizon_ns < fast.cursor.horizon_ns


# An S3 prefix, by hand: entries as `BucketSource.list` makes them, stamped with LastModified.
BUCKET_LOOKBACK = REWRITE_LOOKBACK_NS
T0 = 1_700_000_000 * SECOND


def bucket_listing(now_ns: int, *objects: tuple[str, int, str]) -> SourceListing:
    """A listing of objects `(key, LastModified in ns, ETag)`, each of 100 bytes, taken at `now_ns`."""
    entries = [ListedFile(f"{key}.csv", key, 100, stamped, stamped, etag) for key, stamped, etag in objects]
    return SourceListing(entries, now_ns, BUCKET_SLACK_NS, bucket_file_of)


def bucket_tick(listing: SourceListing, registered, cursor: SensorCursor, lookback_ns: int = BUCKET_LOOKBACK):
    return plan_tick(
        listing, cursor, TickRules(lookback_ns=lookback_ns), registered_keys=registered, now_ns=listing.now_ns
    )


def test_a_rewrite_stamped_behind_the_horizon_is_found_by_its_new_version_within_the_lookback() -> None:
    first = bucket_tick(bucket_listing(T0 + 10 * SECOND, ("a", T0, "v1")), [], SensorCursor())
    assert keys(first.to_request) == ["a"]
    # A multipart upload of a new version begins at T0 + 20 s; ticks go on seeing the old version.
    upload_started = T0 + 20 * SECOND
    during = first
    for now in range(60, 1200, 60):
        during = bucket_tick(bucket_listing(T0 + now * SECOND, ("a", T0, "v1")), ["a"], during.cursor)
        assert during.batches == []
    # It completes 20 minutes later, stamped with its start: far behind the last tick's horizon.
    rewritten = bucket_listing(T0 + 1210 * SECOND, ("a", upload_started, "v2"))
    assert upload_started < during.cursor.horizon_ns - 1000 * SECOND

    found = bucket_tick(rewritten, ["a"], during.cursor)

    assert keys(found.to_request) == ["a"]
    assert found.to_request[0].version == bucket_version_token("v2", 100)
    assert found.new_partition_keys == []
    # Requested once: the ticks after it, with the same version listed, request nothing.
    later = found
    for now in (1220, 1800, 3000, 3600):
        later = bucket_tick(
            bucket_listing(T0 + now * SECOND, ("a", upload_started, "v2")), ["a"], later.cursor
        )
        assert later.batches == [], now
    # Without a lookback, as for a folder, the same rewrite is never found: the lookback is what finds it.
    assert bucket_tick(rewritten, ["a"], during.cursor, lookback_ns=0).batches == []


def test_a_rewrite_is_found_up_to_the_edge_of_the_lookback() -> None:
    now = T0 + 2 * BUCKET_LOOKBACK
    first = bucket_tick(bucket_listing(now, ("a", T0, "v1"), ("b", T0, "v1")), [], SensorCursor())
    assert keys(first.to_request) == ["a", "b"]
    edge = first.cursor.horizon_ns - BUCKET_LOOKBACK  # changes after it are compared by version
    later = now + 10 * SECOND
    # `a` stamped just inside the window, `b` just outside (the last tick's horizon less the lookback).
    rewritten = bucket_listing(later, ("a", edge + 1, "v2"), ("b", edge, "v2"))

    plan = bucket_tick(rewritten, ["a", "b"], first.cursor)

    assert keys(plan.to_request) == ["a"]


def test_the_same_content_put_again_behind_the_horizon_is_not_requested() -> None:
    first = bucket_tick(bucket_listing(T0 + 10 * SECOND, ("a", T0, "v1")), [], SensorCursor())
    # Put again with the same bytes (the same ETag), stamped behind the horizon and then ahead of it.
    behind = bucket_tick(bucket_listing(T0 + 70 * SECOND, ("a", T0 + 5 * SECOND, "v1")), ["a"], first.cursor)
    assert behind.batches == []
    ahead = bucket_tick(bucket_listing(T0 + 90 * SECOND, ("a", T0 + 80 * SECOND, "v1")), ["a"], behind.cursor)
    assert ahead.batches == [] and ahead.settling == []


def test_unchanged_objects_in_the_lookback_are_not_requested_again_nor_the_keys_read() -> None:
    objects = [("a", T0, "v1"), ("b", T0 + 5 * SECOND, "v1"), ("c", T0 + 9 * SECOND, "v1")]
    reads: list[int] = []

    def registered() -> list[str]:
        reads.append(1)
        return [] if len(reads) == 1 else ["a", "b", "c"]

    plan = bucket_tick(bucket_listing(T0 + 10 * SECOND, *objects), registered, SensorCursor())
    assert keys(plan.to_request) == ["a", "b", "c"] and len(reads) == 1

    for now in range(20, 3 * 3600, 600):  # three hours of ticks: in the window, then out of it
        plan = bucket_tick(bucket_listing(T0 + now * SECOND, *objects), registered, plan.cursor)
        assert plan.batches == [] and plan.settling == [], now
    assert len(reads) == 1  # the same names, nothing changed: the registered keys were never read again


def test_the_cursor_remembers_only_the_objects_stamped_within_the_lookback() -> None:
    # `old` is new to the sensor but was stamped two hours ago (copied in with its time kept, say).
    objects = [("old", T0 - 7200 * SECOND, "v1"), ("a", T0, "v1"), ("b", T0 + 1800 * SECOND, "v1")]

    first = bucket_tick(bucket_listing(T0 + 1810 * SECOND, *objects), [], SensorCursor())

    assert sorted(keys(first.to_request)) == ["a", "b", "old"]
    assert sorted(first.cursor.requested) == ["a", "b"]  # `old` is stamped before the window
    registered = ["old", "a", "b"]

    # An hour on, `a` has left the window; `b` is still in it.
    hour_on = bucket_tick(bucket_listing(T0 + 3700 * SECOND, *objects), registered, first.cursor)
    assert hour_on.batches == []
    assert hour_on.cursor.requested == {"b": version_mark(bucket_version_token("v1", 100))}

    # Once every object is older than the window, the cursor holds none of them.
    empty = bucket_tick(bucket_listing(T0 + 5500 * SECOND, *objects), registered, hour_on.cursor)
    assert empty.batches == [] and empty.cursor.requested == {}
    assert len(empty.cursor.serialize()) < 200

    # And a rewrite of `old`, stamped now, is found by its new version.
    rewritten = [("old", T0 + 5505 * SECOND, "v2"), *objects[1:]]
    again = bucket_tick(bucket_listing(T0 + 5510 * SECOND, *rewritten), registered, empty.cursor)
    assert keys(again.to_request) == ["old"]
    assert again.cursor.requested == {"old": version_mark(bucket_version_token("v2", 100))}


def test_the_cursor_stays_small_however_many_objects_change_within_the_lookback() -> None:
    # 5,000 objects landed over 50 minutes: more than the cursor keeps the versions of.
    objects = [(f"k{i:05}", T0 + i * 600_000_000, "v1") for i in range(5000)]
    keys_in_order = [key for key, _, _ in objects]
    now = T0 + 3100 * SECOND
    first = bucket_tick(bucket_listing(now, *objects), [], SensorCursor())
    assert len(first.to_request) == 5000

    assert len(first.cursor.requested) == MAX_REMEMBERED  # the newest ones
    assert sorted(first.cursor.requested) == keys_in_order[-MAX_REMEMBERED:]
    assert len(first.cursor.serialize()) < 35_000
    # Nothing is requested again for the versions it no longer holds...
    idle = bucket_tick(bucket_listing(now + 10 * SECOND, *objects), keys_in_order, first.cursor)
    assert idle.batches == []
    # ...and a late-stamped rewrite among the newest it remembers is still found.
    late = objects[-10][1]
    rewritten = [*objects[:-10], (objects[-10][0], late, "v2"), *objects[-9:]]
    found = bucket_tick(bucket_listing(now + 20 * SECOND, *rewritten), keys_in_order, idle.cursor)
    assert keys(found.to_request) == [objects[-10][0]]

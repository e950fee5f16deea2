"""`dynamic_sensor` over several ticks, on a real source and a real Dagster instance.

Each case that means the same for both sources runs twice, through the `landing` fixture: files in a
local folder, and objects under an S3 bucket prefix. The folder-only cases set a file's mtime by hand or
make a symbolic link, which a bucket has no equivalent of.
"""

import hashlib
import os
import re
from pathlib import Path

import dagster as dg
import pytest

from dagster_and_etl.sample_data import sample_csv
from tests.landing import BucketLanding, FolderLanding
from tests.support import SensorTicks, requested_keys, run_keys, wait_until_settled, write_source_file

Landing = FolderLanding | BucketLanding


def version_of(landing: Landing, name: str) -> str:
    """A file's version as its source's own metadata gives it: the folder's stat, the object's HEAD."""
    if isinstance(landing, FolderLanding):
        stat = (landing.folder / name).stat()
        return (
            f"size={stat.st_size},mtime_ns={stat.st_mtime_ns},ctime_ns={stat.st_ctime_ns},inode={stat.st_ino}"
        )
    head = landing.s3.head_object(Bucket=landing.bucket, Key=landing.prefix + name)
    etag = head["ETag"].strip('"')
    return f"etag={etag},size={head['ContentLength']}"


def test_new_files_are_registered_and_requested_once(landing: Landing, sensor: SensorTicks) -> None:
    for day in ("2018-01-22", "2018-01-23", "2018-01-24"):
        landing.write(f"{day}.csv")
    landing.wait_until_settled()

    first = sensor.tick()
    assert sorted(requested_keys(first)) == ["2018-01-22", "2018-01-23", "2018-01-24"]
    (add_request,) = first.dynamic_partitions_requests
    assert sorted(add_request.partition_keys) == ["2018-01-22", "2018-01-23", "2018-01-24"]
    assert sorted(sensor.registered_keys) == ["2018-01-22", "2018-01-23", "2018-01-24"]

    for _ in range(3):
        later = sensor.tick()
        assert requested_keys(later) == []
        assert not later.dynamic_partitions_requests
        assert later.skip_reason is not None
        assert "No new or modified files" in later.skip_reason.skip_message


def test_run_key_names_the_file_version(landing: Landing, sensor: SensorTicks) -> None:
    landing.write("2018-01-22.csv")
    if isinstance(landing, FolderLanding):  # an mtime apart from the ctime, so neither stands for the other
        os.utime(landing.folder / "2018-01-22.csv", (1_516_600_000, 1_516_600_000))
    landing.wait_until_settled()
    (run_key,) = run_keys(sensor.tick())
    version = f"2018-01-22.csv@{version_of(landing, '2018-01-22.csv')}"
    assert run_key == f"2018-01-22@{hashlib.sha256(version.encode()).hexdigest()[:16]}"


def test_modified_file_is_requested_again_under_a_new_run_key(landing: Landing, sensor: SensorTicks) -> None:
    landing.write("2018-01-22.csv", seed=1)
    landing.write("2018-01-23.csv", seed=2)
    landing.wait_until_settled()
    (first_key, _) = sorted(run_keys(sensor.tick()))

    landing.write(
        "2018-01-22.csv", sample_csv(seed=1) + '\n"2018/01/02","1.0000","1.0000","1.0000","1.0000","1.0000"'
    )
    landing.wait_until_settled()
    second = sensor.tick()
    assert requested_keys(second) == ["2018-01-22"]
    assert run_keys(second) != [first_key]
    # Already registered: requested again, not registered again.
    assert not second.dynamic_partitions_requests


def test_file_rewritten_with_same_mtime_but_new_size_is_requested_again(
    source_dir: Path, sensor: SensorTicks
) -> None:
    """Folder only: an object's LastModified cannot be set back; a bucket's rewrite is a new ETag."""
    path = write_source_file(source_dir, "2018-01-22.csv", seed=1, mtime=1_516_600_000)
    wait_until_settled(source_dir)
    (first_key,) = run_keys(sensor.tick())

    # `cp -p` or `rsync -t` of another version: new bytes, the old mtime.
    path.write_text("\n".join(path.read_text().splitlines()[:3]))
    os.utime(path, (1_516_600_000, 1_516_600_000))
    wait_until_settled(source_dir)
    second = sensor.tick()
    assert requested_keys(second) == ["2018-01-22"]
    assert run_keys(second) != [first_key]


def test_new_file_with_an_mtime_older_than_everything_seen_is_requested(
    source_dir: Path, sensor: SensorTicks
) -> None:
    """Folder only: an object cannot be uploaded with an old LastModified."""
    write_source_file(source_dir, "2018-01-23.csv")
    wait_until_settled(source_dir)
    assert requested_keys(sensor.tick()) == ["2018-01-23"]

    # Copied in with its original, much older mtime preserved.
    write_source_file(source_dir, "2018-01-22.csv", mtime=1_000_000_000)
    wait_until_settled(source_dir)
    assert requested_keys(sensor.tick()) == ["2018-01-22"]


def test_new_file_with_an_mtime_equal_to_the_newest_seen_is_requested(
    source_dir: Path, sensor: SensorTicks
) -> None:
    """Folder only: an object's LastModified cannot be set to that of another."""
    newest = write_source_file(source_dir, "2018-01-23.csv")
    wait_until_settled(source_dir)
    assert requested_keys(sensor.tick()) == ["2018-01-23"]

    same = newest.stat().st_mtime_ns
    twin = write_source_file(source_dir, "2018-01-24.csv")
    os.utime(twin, ns=(same, same))
    wait_until_settled(source_dir)
    assert requested_keys(sensor.tick()) == ["2018-01-24"]


def test_file_still_being_written_waits_for_a_later_tick(
    landing: Landing, sensor: SensorTicks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A window far longer than a tick takes: however slow the machine, the file is still settling when
    # the next tick looks.
    monkeypatch.setenv("SENSOR_SETTLE_SECONDS", "3600")
    landing.write("2018-01-22.csv", '"date","share_price"')  # half written (or a first upload)

    waiting = sensor.tick()
    assert requested_keys(waiting) == []
    assert not waiting.dynamic_partitions_requests
    assert "1 file(s) still settling" in waiting.skip_reason.skip_message
    assert sensor.registered_keys == []

    landing.write("2018-01-22.csv")  # the writer finishes
    assert requested_keys(sensor.tick()) == []
    monkeypatch.setenv("SENSOR_SETTLE_SECONDS", "2")
    landing.wait_until_settled(settle_ns=2_000_000_000)
    assert requested_keys(sensor.tick()) == ["2018-01-22"]
    assert requested_keys(sensor.tick()) == []


def test_subfolders_hidden_temporary_and_non_csv_files_are_never_requested(
    landing: Landing, sensor: SensorTicks
) -> None:
    if isinstance(landing, FolderLanding):  # in a bucket, a key with a "/" is under a "subfolder" already
        (landing.folder / "archive.csv").mkdir()
    landing.write("archive.csv/2018-01-20.csv")
    for name in (".2018-01-21.csv", "2018-01-22.tmp", "2018-01-23.part", "2018-01-24.csv.tmp", "notes.txt"):
        landing.write(name)
    landing.write("2018-01-26.csv")
    landing.wait_until_settled()

    assert requested_keys(sensor.tick()) == ["2018-01-26"]
    assert sensor.registered_keys == ["2018-01-26"]
    assert requested_keys(sensor.tick()) == []


def test_symbolic_links_are_never_requested(source_dir: Path, sensor: SensorTicks) -> None:
    """Folder only: a bucket has no links."""
    (source_dir / "link.csv").symlink_to(write_source_file(source_dir, "2018-01-25.csv.part"))
    (source_dir / "2018-01-27.csv").symlink_to(write_source_file(source_dir, "2018-01-26.csv"))
    wait_until_settled(source_dir)

    assert requested_keys(sensor.tick()) == ["2018-01-26"]
    assert sensor.registered_keys == ["2018-01-26"]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("bell\x07ring.csv", "control"),
        ("tab\tbed.csv", "control"),
        ("a...b.csv", "'..'"),
        ("back\\slash.csv", "path separator"),
        ("k" * 201 + ".csv", "more than 200"),
        (" padded.csv", "white space"),
    ],
)
def test_name_that_cannot_be_a_partition_key_is_skipped_and_logged(
    landing: Landing,
    sensor: SensorTicks,
    capfd: pytest.CaptureFixture[str],
    name: str,
    problem: str,
) -> None:
    landing.write(name)
    landing.write("2018-01-22.csv")
    landing.wait_until_settled()

    assert requested_keys(sensor.tick()) == ["2018-01-22"]
    assert sensor.registered_keys == ["2018-01-22"]
    logged = capfd.readouterr().err
    assert "WARNING" in logged and repr(name) in logged and problem in logged
    assert f"in {landing.uri}" in logged

    idle = sensor.tick()
    assert "1 file(s) skipped, the log says why" in idle.skip_reason.skip_message


def test_two_files_never_map_to_one_partition_key(landing: Landing, sensor: SensorTicks) -> None:
    for name in ("2018-01-22.csv", "2018-01-22.CSV", "2018-01-22.backup.csv", "2018-01-22.csv.csv"):
        landing.write(name)
    landing.wait_until_settled()

    result = sensor.tick()
    keys = requested_keys(result)
    assert sorted(keys) == ["2018-01-22", "2018-01-22.backup", "2018-01-22.csv"]
    assert len(set(run_keys(result))) == len(keys)


def test_lost_cursor_asks_only_for_versions_already_requested(landing: Landing, sensor: SensorTicks) -> None:
    for seed, day in enumerate(("2018-01-22", "2018-01-23", "2018-01-24")):
        landing.write(f"{day}.csv", seed=seed)
    landing.wait_until_settled()
    first_run_keys = set(run_keys(sensor.tick()))
    assert len(first_run_keys) == 3

    sensor.cursor = None  # reset by hand, or lost
    after_reset = sensor.tick()
    # Dagster skips a run key a sensor has already used, so these start no second run.
    assert set(run_keys(after_reset)) <= first_run_keys
    assert not after_reset.dynamic_partitions_requests

    sensor.cursor = "not json at all"
    assert set(run_keys(sensor.tick())) <= first_run_keys


def test_cursor_does_not_grow_with_the_number_of_files(
    source_dir: Path, sensor: SensorTicks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folder only: over a bucket, the cursor keeps the version of every object stamped within the last
    hour (`REWRITE_LOOKBACK_NS`), so that a rewrite stamped before the horizon is still found."""
    monkeypatch.setenv("SENSOR_MAX_BATCH", "500")
    write_source_file(source_dir, "2018-01-22.csv")
    wait_until_settled(source_dir)
    sensor.tick()
    small_folder_cursor = sensor.cursor

    for index in range(2_000):
        (source_dir / f"batch-{index:05d}.csv").write_text("x")
    wait_until_settled(source_dir)
    assert len(sensor.keys_of(sensor.tick())) == 2_000
    assert len(sensor.cursor) <= len(small_folder_cursor) + 2
    assert len(sensor.cursor) < 100


def test_empty_folder_skips_with_a_reason(landing: Landing, sensor: SensorTicks) -> None:
    result = sensor.tick()
    assert result.run_requests in (None, [])
    assert result.skip_reason.skip_message == f"No new or modified files in {landing.uri}."


def test_missing_source_folder_fails_the_tick_naming_it(
    landing: Landing, tmp_path: Path, sensor: SensorTicks, monkeypatch: pytest.MonkeyPatch
) -> None:
    if isinstance(landing, FolderLanding):
        missing, cause = str(tmp_path / "nowhere"), "does not exist or is not a folder"
    else:
        missing, cause = f"s3://{landing.bucket}-nowhere/landing/", "the bucket does not exist (NoSuchBucket)"
    monkeypatch.setenv("SOURCE_DIR", missing)
    with pytest.raises(dg.Failure, match=re.escape(missing)) as failure:
        sensor.tick()
    assert cause in str(failure.value)
    assert sensor.cursor is None and sensor.registered_keys == []


def test_source_folder_is_read_from_the_environment_at_each_tick(
    landing: Landing,
    tmp_path: Path,
    sensor: SensorTicks,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if isinstance(landing, FolderLanding):
        (tmp_path / "other").mkdir()
        other: Landing = FolderLanding(tmp_path / "other")
    else:  # another prefix of the same bucket
        other = BucketLanding(request.getfixturevalue("s3_server"), landing.bucket, prefix="other/")
    other.write("elsewhere.csv")
    other.wait_until_settled()
    assert requested_keys(sensor.tick()) == []
    monkeypatch.setenv("SOURCE_DIR", other.uri)
    assert requested_keys(sensor.tick()) == ["elsewhere"]


def test_requests_come_oldest_first(landing: Landing, sensor: SensorTicks) -> None:
    # Each written once the one before has settled, so each has a later timestamp even where they are
    # whole seconds; the order differs from the names' order.
    for name in ("c.csv", "a.csv", "b.csv"):
        landing.write(name)
        landing.wait_until_settled()
    assert requested_keys(sensor.tick()) == ["c", "a", "b"]


def test_requests_come_oldest_first_by_mtime_not_by_when_they_arrived(
    source_dir: Path, sensor: SensorTicks
) -> None:
    """Folder only: files copied in with their mtimes kept (`cp -p`), which an upload cannot do."""
    write_source_file(source_dir, "c.csv", mtime=1_516_000_300)
    write_source_file(source_dir, "a.csv", mtime=1_516_000_200)
    write_source_file(source_dir, "b.csv", mtime=1_516_000_100)
    wait_until_settled(source_dir)
    assert requested_keys(sensor.tick()) == ["b", "a", "c"]

"""`dynamic_sensor` over several ticks, on a real folder and a real Dagster instance."""

import hashlib
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from dagster_and_etl.ingest.source_folder import TIMESTAMP_SLACK_NS
from tests.support import SensorTicks, requested_keys, run_keys, write_source_file


def wait_until_settled() -> None:
    """Lets files written so far age past the settle window (0 s in tests) and the timestamp slack."""
    time.sleep(TIMESTAMP_SLACK_NS / 1e9 + 0.1)


def test_new_files_are_registered_and_requested_once(source_dir: Path, sensor: SensorTicks) -> None:
    for day in ("2018-01-22", "2018-01-23", "2018-01-24"):
        write_source_file(source_dir, f"{day}.csv")
    wait_until_settled()

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


def test_run_key_names_the_file_version(source_dir: Path, sensor: SensorTicks) -> None:
    path = write_source_file(source_dir, "2018-01-22.csv", mtime=1_516_600_000)
    wait_until_settled()
    (run_key,) = run_keys(sensor.tick())
    stat = path.stat()
    version = (
        f"2018-01-22.csv@size={stat.st_size},mtime_ns={stat.st_mtime_ns},"
        f"ctime_ns={stat.st_ctime_ns},inode={stat.st_ino}"
    )
    assert run_key == f"2018-01-22@{hashlib.sha256(version.encode()).hexdigest()[:16]}"


def test_modified_file_is_requested_again_under_a_new_run_key(source_dir: Path, sensor: SensorTicks) -> None:
    path = write_source_file(source_dir, "2018-01-22.csv", seed=1)
    write_source_file(source_dir, "2018-01-23.csv", seed=2)
    wait_until_settled()
    (first_key, _) = sorted(run_keys(sensor.tick()))

    path.write_text(path.read_text() + '\n"2018/01/02","1.0000","1.0000","1.0000","1.0000","1.0000"')
    wait_until_settled()
    second = sensor.tick()
    assert requested_keys(second) == ["2018-01-22"]
    assert run_keys(second) != [first_key]
    # Already registered: requested again, not registered again.
    assert not second.dynamic_partitions_requests


def test_file_rewritten_with_same_mtime_but_new_size_is_requested_again(
    source_dir: Path, sensor: SensorTicks
) -> None:
    path = write_source_file(source_dir, "2018-01-22.csv", seed=1, mtime=1_516_600_000)
    wait_until_settled()
    (first_key,) = run_keys(sensor.tick())

    # `cp -p` or `rsync -t` of another version: new bytes, the old mtime.
    path.write_text("\n".join(path.read_text().splitlines()[:3]))
    os.utime(path, (1_516_600_000, 1_516_600_000))
    wait_until_settled()
    second = sensor.tick()
    assert requested_keys(second) == ["2018-01-22"]
    assert run_keys(second) != [first_key]


def test_new_file_with_an_mtime_older_than_everything_seen_is_requested(
    source_dir: Path, sensor: SensorTicks
) -> None:
    write_source_file(source_dir, "2018-01-23.csv")
    wait_until_settled()
    assert requested_keys(sensor.tick()) == ["2018-01-23"]

    # Copied in with its original, much older mtime preserved.
    write_source_file(source_dir, "2018-01-22.csv", mtime=1_000_000_000)
    wait_until_settled()
    assert requested_keys(sensor.tick()) == ["2018-01-22"]


def test_new_file_with_an_mtime_equal_to_the_newest_seen_is_requested(
    source_dir: Path, sensor: SensorTicks
) -> None:
    newest = write_source_file(source_dir, "2018-01-23.csv")
    wait_until_settled()
    assert requested_keys(sensor.tick()) == ["2018-01-23"]

    same = newest.stat().st_mtime_ns
    twin = write_source_file(source_dir, "2018-01-24.csv")
    os.utime(twin, ns=(same, same))
    wait_until_settled()
    assert requested_keys(sensor.tick()) == ["2018-01-24"]


def test_file_still_being_written_waits_for_a_later_tick(
    source_dir: Path, sensor: SensorTicks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSOR_SETTLE_SECONDS", "1")
    path = source_dir / "2018-01-22.csv"
    path.write_text('"date","share_price"')  # half written

    waiting = sensor.tick()
    assert requested_keys(waiting) == []
    assert not waiting.dynamic_partitions_requests
    assert "1 file(s) still settling" in waiting.skip_reason.skip_message
    assert sensor.registered_keys == []

    write_source_file(source_dir, "2018-01-22.csv")  # the writer finishes
    assert requested_keys(sensor.tick()) == []
    time.sleep(1 + TIMESTAMP_SLACK_NS / 1e9 + 0.1)
    assert requested_keys(sensor.tick()) == ["2018-01-22"]
    assert requested_keys(sensor.tick()) == []


def test_subfolders_hidden_temporary_and_non_csv_files_are_never_requested(
    source_dir: Path, sensor: SensorTicks
) -> None:
    (source_dir / "archive.csv").mkdir()
    write_source_file(source_dir / "archive.csv", "2018-01-20.csv")
    for name in (".2018-01-21.csv", "2018-01-22.tmp", "2018-01-23.part", "2018-01-24.csv.tmp", "notes.txt"):
        write_source_file(source_dir, name)
    (source_dir / "link.csv").symlink_to(write_source_file(source_dir, "2018-01-25.csv.part"))
    write_source_file(source_dir, "2018-01-26.csv")
    wait_until_settled()

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
    source_dir: Path,
    sensor: SensorTicks,
    capfd: pytest.CaptureFixture[str],
    name: str,
    problem: str,
) -> None:
    write_source_file(source_dir, name)
    write_source_file(source_dir, "2018-01-22.csv")
    wait_until_settled()

    assert requested_keys(sensor.tick()) == ["2018-01-22"]
    assert sensor.registered_keys == ["2018-01-22"]
    logged = capfd.readouterr().err
    assert "WARNING" in logged and repr(name) in logged and problem in logged

    idle = sensor.tick()
    assert "1 file(s) skipped: names that cannot be partition keys" in idle.skip_reason.skip_message


def test_two_files_never_map_to_one_partition_key(source_dir: Path, sensor: SensorTicks) -> None:
    for name in ("2018-01-22.csv", "2018-01-22.CSV", "2018-01-22.backup.csv", "2018-01-22.csv.csv"):
        write_source_file(source_dir, name)
    wait_until_settled()

    result = sensor.tick()
    keys = requested_keys(result)
    assert sorted(keys) == ["2018-01-22", "2018-01-22.backup", "2018-01-22.csv"]
    assert len(set(run_keys(result))) == len(keys)


def test_lost_cursor_asks_only_for_versions_already_requested(source_dir: Path, sensor: SensorTicks) -> None:
    for seed, day in enumerate(("2018-01-22", "2018-01-23", "2018-01-24")):
        write_source_file(source_dir, f"{day}.csv", seed=seed)
    wait_until_settled()
    first_run_keys = set(run_keys(sensor.tick()))

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
    monkeypatch.setenv("SENSOR_MAX_BATCH", "500")
    write_source_file(source_dir, "2018-01-22.csv")
    wait_until_settled()
    sensor.tick()
    small_folder_cursor = sensor.cursor

    for index in range(2_000):
        (source_dir / f"batch-{index:05d}.csv").write_text("x")
    wait_until_settled()
    assert len(sensor.keys_of(sensor.tick())) == 2_000
    assert len(sensor.cursor) <= len(small_folder_cursor) + 2
    assert len(sensor.cursor) < 100


def test_empty_folder_skips_with_a_reason(source_dir: Path, sensor: SensorTicks) -> None:
    result = sensor.tick()
    assert result.run_requests in (None, [])
    assert result.skip_reason.skip_message == f"No new or modified files in {source_dir}."


def test_missing_source_folder_fails_the_tick_naming_it(
    tmp_path: Path, sensor: SensorTicks, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("SOURCE_DIR", str(missing))
    with pytest.raises(dg.Failure, match=str(missing)):
        sensor.tick()


def test_source_folder_is_read_from_the_environment_at_each_tick(
    tmp_path: Path, sensor: SensorTicks, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    write_source_file(other, "elsewhere.csv")
    wait_until_settled()
    assert requested_keys(sensor.tick()) == []
    monkeypatch.setenv("SOURCE_DIR", str(other))
    assert requested_keys(sensor.tick()) == ["elsewhere"]


def test_requests_come_oldest_first(source_dir: Path, sensor: SensorTicks) -> None:
    write_source_file(source_dir, "c.csv", mtime=1_516_000_300)
    write_source_file(source_dir, "a.csv", mtime=1_516_000_200)
    write_source_file(source_dir, "b.csv", mtime=1_516_000_100)
    wait_until_settled()
    assert requested_keys(sensor.tick()) == ["b", "a", "c"]

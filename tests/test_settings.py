"""`.env.example` and the README's settings table say what `settings.SETTINGS` declares, and nothing else."""

import re

import pytest

from dagster_and_etl.settings import PROJECT_ROOT, SENSOR_MAX_BATCH_BYTES, SETTINGS, Setting, SettingError

# `NAME=value`, or `# NAME=example` for a setting left unset.
ENV_LINE = re.compile(r"^(?P<commented>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
TABLE_ROW = re.compile(r"^\| `(?P<name>[A-Z][A-Z0-9_]*)` \|")


def env_example_lines(text: str) -> dict[str, tuple[bool, str]]:
    """Each setting `.env.example` names, whether its line is commented out, and its value; boto3's own
    `AWS_*` settings, which it documents for an S3 source, are not the project's."""
    found = {}
    for line in text.splitlines():
        match = ENV_LINE.match(line)
        if match and not match["name"].startswith("AWS_"):
            assert match["name"] not in found, f".env.example names {match['name']} twice"
            found[match["name"]] = (match["commented"] is not None, match["value"])
    return found


def readme_rows(text: str) -> dict[str, str]:
    """The settings table's rows, by the variable each names."""
    return {match["name"]: line for line in text.splitlines() if (match := TABLE_ROW.match(line))}


def table_row(setting: Setting) -> str:
    default = f"`{setting.default}`" if setting.default else "unset"
    return f"| `{setting.name}` | {default} | {setting.meaning} |"


def env_example_drift(text: str) -> list[str]:
    lines = env_example_lines(text)
    declared = {setting.name: setting for setting in SETTINGS}
    problems = [f"{name} is in .env.example but not declared" for name in lines.keys() - declared.keys()]
    problems += [f"{name} is declared but not in .env.example" for name in declared.keys() - lines.keys()]
    for name in lines.keys() & declared.keys():
        commented, value = lines[name]
        default = declared[name].default
        if default and (commented or value != default):
            problems.append(f".env.example gives {name}={value}, its default is {default}")
        if not default and not commented:
            problems.append(f".env.example sets {name}, which is unset by default: comment it out")
    return problems


def readme_drift(text: str) -> list[str]:
    rows = readme_rows(text)
    expected = {setting.name: table_row(setting) for setting in SETTINGS}
    problems = [f"the README's table has {name}, which is not declared" for name in rows.keys() - expected]
    return problems + [
        f"the README's row for {name} should read: {row}"
        for name, row in expected.items()
        if rows.get(name) != row
    ]


def test_env_example_declares_each_setting_with_its_default() -> None:
    assert env_example_drift((PROJECT_ROOT / ".env.example").read_text()) == []


def test_the_readme_table_gives_each_setting_its_default_and_meaning() -> None:
    assert readme_drift((PROJECT_ROOT / "README.md").read_text()) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda text: text + "\nSENSOR_POLL_JITTER=3\n",
            "SENSOR_POLL_JITTER is in .env.example but not declared",
        ),
        (lambda text: text.replace("SENSOR_MAX_BATCH=500", "SENSOR_MAX_BATCH=50"), "its default is 500"),
        (
            lambda text: text.replace("FILE_OVERDUE_MINUTES=60\n", ""),
            "FILE_OVERDUE_MINUTES is declared but not",
        ),
        (
            lambda text: text.replace("# DUCKDB_THREADS=2", "DUCKDB_THREADS=2"),
            "DUCKDB_THREADS, which is unset",
        ),
    ],
)
def test_env_example_drift_is_caught(change, problem: str) -> None:
    text = change((PROJECT_ROOT / ".env.example").read_text())
    assert any(problem in found for found in env_example_drift(text))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda text: text.replace("| `SENSOR_MAX_BATCH` | `500` |", "| `SENSOR_MAX_BATCH` | `50` |"),
            "BATCH",
        ),
        (lambda text: text.replace("| `DAGSTER_UI_URL` |", "| `DAGSTER_URL` |"), "DAGSTER_URL, which is not"),
    ],
)
def test_readme_drift_is_caught(change, problem: str) -> None:
    text = change((PROJECT_ROOT / "README.md").read_text())
    assert any(problem in found for found in readme_drift(text))


def test_every_resource_field_for_a_setting_is_described_by_it() -> None:
    from dagster_and_etl.defs import resources

    described = {
        field.description
        for resource in (
            resources.SourceFiles,
            resources.StagingDatabase,
            resources.SensorTuning,
            resources.FileFreshness,
            resources.AlertWebhook,
        )
        for field in resource.model_fields.values()
    }
    names = {setting.name for setting in SETTINGS if any(f"${setting.name}," in d for d in described if d)}
    # Read only when the code location loads, by the sensors' decorators, or only from the environment.
    not_fields = {"SENSOR_INTERVAL_SECONDS", "ALERT_INTERVAL_SECONDS", "ALERT_WEBHOOK_URL"}
    assert names == {setting.name for setting in SETTINGS} - not_fields


@pytest.mark.parametrize(
    ("raw", "size"),
    [("1073741824", 2**30), ("1GiB", 2**30), ("500MB", 500_000_000), ("1.5 KiB", 1536), ("10b", 10)],
)
def test_a_byte_size_is_a_number_of_bytes_or_a_number_and_its_unit(
    raw: str, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSOR_MAX_BATCH_BYTES", raw)
    assert SENSOR_MAX_BATCH_BYTES.read() == size


@pytest.mark.parametrize("raw", ["lots", "1 GB more", "0", "-5", "2PB"])
def test_a_byte_size_that_is_none_fails_naming_the_setting_and_the_value(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSOR_MAX_BATCH_BYTES", raw)
    with pytest.raises(
        SettingError, match=rf"^SENSOR_MAX_BATCH_BYTES must be .*, got {re.escape(repr(raw))}$"
    ):
        SENSOR_MAX_BATCH_BYTES.read()

"""The README and the pages of `docs/` stay true: their code examples run as they are written, their links
lead somewhere, and the README stays a page a newcomer reads to the end."""

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.support import wait_until_settled, write_source_file

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def python_examples() -> list[tuple[Path, str]]:
    return [
        (page, code)
        for page in PAGES
        for code in re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL)
    ]


def the_example(condition) -> tuple[Path, str]:
    """The one example, on whichever page it now is, that `condition` picks."""
    (found,) = [(page, code) for page, code in python_examples() if condition(code)]
    return found


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    prose = FENCE.sub("", page.read_text())
    return {slug(line.lstrip("#")) for line in prose.splitlines() if line.startswith("#")}


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    assert broken_links(page) == []


def test_a_link_to_a_missing_heading_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[here](#title), [there](#nowhere), [gone](gone.md)\n")

    assert broken_links(page) == ["#nowhere: no heading #nowhere in page.md", "gone.md: no such file"]


def test_the_readme_is_a_door_and_links_every_page_of_the_reference() -> None:
    readme = PAGES[0].read_text()
    assert len(readme.splitlines()) <= 250
    linked = {target.partition("#")[0] for target in LINK.findall(readme)}
    assert {f"docs/{page.name}" for page in PAGES[1:]} <= linked


def test_the_sensor_daemon_example_loads_the_files_once(source_dir: Path, duckdb_path: Path) -> None:
    page, example = the_example(lambda code: "SensorDaemon" in code and "def test_" not in code)
    for seed in range(3):
        write_source_file(source_dir, f"vendor-{seed}.csv", seed=seed)
    wait_until_settled(source_dir)

    exec(compile(example, str(page), "exec"), {})

    with duckdb.connect(str(duckdb_path), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM load_history").fetchone() == (3,)


def test_the_course_style_test_file_passes_copied_into_tests() -> None:
    """The test file of the learner's page, copied into `tests/` as a learner would, run by pytest alone."""
    _, example = the_example(lambda code: code.startswith("# tests/test_my_pipelines.py"))
    copy = ROOT / "tests" / f"test_docs_copy_{os.getpid()}.py"
    copy.write_text(example)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(copy)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        copy.unlink()
    assert result.returncode == 0, result.stdout[-4000:]
    assert "6 passed" in result.stdout

"""Benchmark 4: loading the code location, against `python -c "import dagster"`.

Measured, each as a fresh process: the code location loaded the way the webserver's code server loads it
(`from dagster_and_etl.definitions import defs; defs()`), and `dagster definitions validate -w
workspace.yaml`. For the CLI the same command on an empty code location is timed too: what the CLI costs
before it reads any of this project's code.
Run: `.venv/bin/python -m benchmarks.startup [--runs 5]`
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._stats import ratio_line, summary, timed

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def command(*args: str, cwd: Path = PROJECT_ROOT):
    def run() -> None:
        subprocess.run(args, cwd=cwd, check=True, capture_output=True)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    python = sys.executable

    with tempfile.TemporaryDirectory() as empty:
        Path(empty, "empty_location.py").write_text("import dagster as dg\n\ndefs = dg.Definitions()\n")
        Path(empty, "workspace.yaml").write_text(
            "load_from:\n  - python_file:\n      relative_path: empty_location.py\n"
        )
        cases = {
            "python -c 'import dagster'": command(python, "-c", "import dagster"),
            "load the code location in-process": command(
                python, "-c", "from dagster_and_etl.definitions import defs; defs()"
            ),
            "dagster definitions validate (this)": command(
                str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"
            ),
            "dagster definitions validate (empty)": command(
                str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml", cwd=Path(empty)
            ),
        }
        for run in cases.values():
            run()  # warm the file cache
        results: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):  # interleaved, so every case sees the same machine
            for name, run in cases.items():
                results[name] += timed(run, 1)

    for name, seconds in results.items():
        print(summary(name, seconds))
    baseline = results["python -c 'import dagster'"]
    print(
        ratio_line(
            "code location in-process / import dagster",
            results["load the code location in-process"],
            baseline,
            1.3,
        )
    )
    print(
        ratio_line(
            "dagster definitions validate / import dagster",
            results["dagster definitions validate (this)"],
            baseline,
            1.3,
        )
    )
    print(
        ratio_line(
            "validate this / validate an empty location",
            results["dagster definitions validate (this)"],
            results["dagster definitions validate (empty)"],
            1.3,
        )
    )


if __name__ == "__main__":
    main()

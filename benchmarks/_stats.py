"""Timing helpers shared by the benchmarks: min, median and max over repeated runs, and their ratio."""

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """Wall-clock seconds of `runs` calls of `fn`."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def summary(name: str, seconds: list[float]) -> str:
    return (
        f"{name:<40} min {min(seconds):8.3f} s   median {statistics.median(seconds):8.3f} s"
        f"   max {max(seconds):8.3f} s   ({len(seconds)} runs)"
    )


def ratio_line(name: str, measured: list[float], baseline: list[float], target: float) -> str:
    ratio = statistics.median(measured) / statistics.median(baseline)
    verdict = "meets" if ratio <= target else "MISSES"
    return f"{name}: median ratio {ratio:.2f}x (target at most {target}x) -> {verdict} the target"

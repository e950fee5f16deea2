"""A named point where every load into DuckDB waits, for the tests of runs meeting at the pool.

Python runs this file at the start of every process whose PYTHONPATH holds this folder. A test that starts
`dg dev` with it there and `TEST_LOAD_LATCH` set to a folder holds each load at the point `opening the
database`: inside the load's step, so holding the `duckdb_write` pool's slot, before it opens the DuckDB
file. A load there writes `held-<its pid>` into the folder, then waits until the test creates `release`
there. Nothing else changes, and without `TEST_LOAD_LATCH` this file does nothing.
"""

import os

LATCH = os.environ.get("TEST_LOAD_LATCH")


def _hold_loads_at_the_latch(latch: str) -> None:
    import time
    from contextlib import contextmanager
    from pathlib import Path

    from dagster_and_etl.defs.resources import StagingDatabase

    folder = Path(latch)
    open_database = StagingDatabase.get_connection

    @contextmanager
    def held_then_open(self: StagingDatabase):
        (folder / f"held-{os.getpid()}").touch()
        while not (folder / "release").exists():
            time.sleep(0.1)
        with open_database(self) as conn:
            yield conn

    StagingDatabase.get_connection = held_then_open


if LATCH:
    _hold_loads_at_the_latch(LATCH)

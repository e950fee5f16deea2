"""Benchmark 7: what one connection to the production instance's database costs, as dagster-postgres makes
one for every write: connect, `SELECT 1`, close, from this process (psycopg2, as Dagster).

Each round times `--connections` of them to PostgreSQL itself (SCRAM-SHA-256 password check) and as many
through PgBouncer with `deploy/pgbouncer.ini` (plain password on 127.0.0.1, session pooling), both run by
`dagster_and_etl.local_postgres` in the system's temporary folder, and reports the median connection of
each round; then min, median and max of those over the rounds, and PgBouncer's ratio to the direct one.
Run: `.venv/bin/python -m benchmarks.pg_connect [--connections 300] [--runs 3]`
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

from benchmarks._stats import ratio_line
from dagster_and_etl.local_postgres import running
from tests.dagster_dev_process import free_port


def median_connection(settings: dict[str, object], connections: int) -> float:
    """The median seconds of `connections` connections with `settings`, each used once and closed."""
    seconds = []
    for _ in range(connections):
        start = time.perf_counter()
        conn = psycopg2.connect(**settings)
        conn.autocommit = True  # as dagster-postgres's engines
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        conn.close()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pg-connect-") as folder:
        Path(folder).chmod(0o755)  # the server runs as the `postgres` user under root
        with running(Path(folder) / "cluster", free_port(), free_port()) as server:
            server.create_database("bench")
            direct = server.connection("bench")
            pooled = {**direct, "port": server.pooler_port}
            results: dict[str, list[float]] = {"direct": [], "pgbouncer": []}
            for run in range(args.runs):
                results["direct"].append(median_connection(direct, args.connections))
                results["pgbouncer"].append(median_connection(pooled, args.connections))
                print(
                    f"run {run + 1}: " + "; ".join(f"{k} {v[-1] * 1000:.2f} ms" for k, v in results.items())
                )
    for name, seconds in results.items():
        low, middle, high = (
            1000 * value for value in (min(seconds), statistics.median(seconds), max(seconds))
        )
        print(f"a connection, {name:<10} min {low:6.2f} ms   median {middle:6.2f} ms   max {high:6.2f} ms")
    print(ratio_line("PgBouncer / direct", results["pgbouncer"], results["direct"], 1.0))


if __name__ == "__main__":
    sys.exit(main())

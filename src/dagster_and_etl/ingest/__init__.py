"""Plain Python behind the Dagster definitions: source files, the sensor's plan and the DuckDB load."""

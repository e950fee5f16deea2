CREATE TABLE IF NOT EXISTS {table} (
    {column_definitions},
    partition_key VARCHAR NOT NULL,
    -- DuckDB reads a year of fewer than four digits without complaint ("18/09/28" as the year 18):
    -- such dates break this rule and fail the load instead.
    CHECK (date >= DATE '1900-01-01')
)

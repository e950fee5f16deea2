CREATE TABLE IF NOT EXISTS {table} (
    -- DuckDB reads a year of fewer than four digits without complaint ("18/09/28" as the year 18):
    -- such dates break this rule and fail the load instead.
    date DATE NOT NULL CHECK (date >= DATE '1900-01-01'),
    share_price DECIMAL(18, 4) NOT NULL,
    amount DECIMAL(18, 4) NOT NULL,
    spend DECIMAL(18, 4) NOT NULL,
    shift DECIMAL(18, 4) NOT NULL,
    spread DECIMAL(18, 4) NOT NULL,
    partition_key VARCHAR NOT NULL
)

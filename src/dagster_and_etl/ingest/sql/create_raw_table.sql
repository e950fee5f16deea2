CREATE TABLE IF NOT EXISTS {table} (
    date DATE NOT NULL,
    share_price DECIMAL(18, 4),
    amount DECIMAL(18, 4),
    spend DECIMAL(18, 4),
    shift DECIMAL(18, 4),
    spread DECIMAL(18, 4),
    partition_key VARCHAR NOT NULL
)

CREATE TABLE IF NOT EXISTS {table} (
    date DATE NOT NULL,
    share_price DECIMAL(18, 4) NOT NULL,
    amount DECIMAL(18, 4) NOT NULL,
    spend DECIMAL(18, 4) NOT NULL,
    shift DECIMAL(18, 4) NOT NULL,
    spread DECIMAL(18, 4) NOT NULL,
    partition_key VARCHAR NOT NULL
)

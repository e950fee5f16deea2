-- One row per file version loaded into a partition, written in the same transaction as its rows: which
-- version of which file each partition holds, and when and by which run it was loaded.
CREATE SEQUENCE IF NOT EXISTS load_history_id;
CREATE TABLE IF NOT EXISTS load_history (
    load_id BIGINT PRIMARY KEY DEFAULT nextval('load_history_id'),
    table_name VARCHAR NOT NULL,
    partition_key VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    modified_at TIMESTAMPTZ NOT NULL,
    data_rows BIGINT NOT NULL,
    run_id VARCHAR,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

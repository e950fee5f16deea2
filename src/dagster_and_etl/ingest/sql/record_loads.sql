-- Parameters: the table's name, the run's id, then one list per column, all in the same order.
INSERT INTO load_history
    (table_name, run_id, partition_key, source, version, size_bytes, modified_at, data_rows)
SELECT ?, ?, unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::BIGINT[]),
    to_timestamp(0) + to_microseconds(unnest(?::BIGINT[]) // 1000), unnest(?::BIGINT[])

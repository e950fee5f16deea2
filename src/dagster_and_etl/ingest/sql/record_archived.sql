-- Parameters: one list per column, all in the same order. A version moved again (a move cut short between
-- its copy and its delete, then done) keeps one row, saying where it is now.
INSERT OR REPLACE INTO archived_files (partition_key, source, version, archived_to, size_bytes)
SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::BIGINT[])

-- One row per file version moved out of SOURCE_DIR by archive_job: where it was and where it went.
CREATE TABLE IF NOT EXISTS archived_files (
    source VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    partition_key VARCHAR NOT NULL,
    archived_to VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    archived_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (source, version)
);

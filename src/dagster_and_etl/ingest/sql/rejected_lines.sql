-- The lines of the last load that DuckDB could not read, with the file each is in.
SELECT scans.file_path, rejects.line, rejects.column_name, rejects.error_type, rejects.error_message
FROM temp.load_rejects AS rejects
JOIN temp.load_reject_scans AS scans USING (scan_id, file_id)
ORDER BY scans.file_path, rejects.line

-- Parameter: the list of file paths, each mapped to its partition key in temp.load_files.
-- Bad lines are not loaded but listed in temp.load_rejects, at most {rejects_limit} a file, so a file that is wrong
-- throughout costs little; any there make the caller roll the load back.
INSERT INTO {table}
SELECT {source_columns}, files.partition_key
FROM read_csv(
    ?::VARCHAR[],
    filename = true,
    header = true,
    delim = ',',
    quote = '"',
    escape = '"',
    auto_detect = false,
    strict_mode = true,
    null_padding = false,
    dateformat = '{date_format}',
    store_rejects = true,
    rejects_table = 'load_rejects',
    rejects_scan = 'load_reject_scans',
    rejects_limit = {rejects_limit},
    columns = {column_types}
) AS src
JOIN temp.load_files AS files ON src.filename = files.path

-- Parameter: the list of file paths, each mapped to its partition key in temp.load_files.
-- Bad lines are not loaded but listed in temp.load_rejects, at most 100 a file, so a file that is wrong
-- throughout costs little; any there make the caller roll the load back.
INSERT INTO {table}
SELECT src.date, src.share_price, src.amount, src.spend, src.shift, src.spread, files.partition_key
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
    dateformat = '%Y/%m/%d',
    store_rejects = true,
    rejects_table = 'load_rejects',
    rejects_scan = 'load_reject_scans',
    rejects_limit = 100,
    columns = {
        'date': 'DATE',
        'share_price': 'DECIMAL(18, 4)',
        'amount': 'DECIMAL(18, 4)',
        'spend': 'DECIMAL(18, 4)',
        'shift': 'DECIMAL(18, 4)',
        'spread': 'DECIMAL(18, 4)'
    }
) AS src
JOIN temp.load_files AS files ON src.filename = files.path

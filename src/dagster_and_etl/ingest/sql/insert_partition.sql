-- Parameters: the partition key, then the path of its CSV file. Bad lines are not loaded but listed in
-- temp.load_rejects, and any there make the caller roll the whole load back.
INSERT INTO {table}
SELECT date, share_price, amount, spend, shift, spread, ?::VARCHAR AS partition_key
FROM read_csv(
    ?::VARCHAR,
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
    columns = {
        'date': 'DATE',
        'share_price': 'DECIMAL(18, 4)',
        'amount': 'DECIMAL(18, 4)',
        'spend': 'DECIMAL(18, 4)',
        'shift': 'DECIMAL(18, 4)',
        'spread': 'DECIMAL(18, 4)'
    }
)

-- Parameters: the partition key, then the path of its CSV file.
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
    columns = {
        'date': 'DATE',
        'share_price': 'DECIMAL(18, 4)',
        'amount': 'DECIMAL(18, 4)',
        'spend': 'DECIMAL(18, 4)',
        'shift': 'DECIMAL(18, 4)',
        'spread': 'DECIMAL(18, 4)'
    }
)

-- Parameters: the files' paths and their partition keys, two lists in the same order.
CREATE OR REPLACE TEMP TABLE load_files AS
SELECT unnest(?::VARCHAR[]) AS path, unnest(?::VARCHAR[]) AS partition_key

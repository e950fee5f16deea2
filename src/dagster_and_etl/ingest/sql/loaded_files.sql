-- Parameter: the table's name. The version of its file each partition holds now (the last one loaded into
-- it), and when it was loaded, in microseconds since the epoch.
SELECT partition_key, arg_max(version, load_id) AS version, epoch_us(arg_max(loaded_at, load_id)) AS loaded_at_us
FROM load_history
WHERE table_name = $1
GROUP BY partition_key

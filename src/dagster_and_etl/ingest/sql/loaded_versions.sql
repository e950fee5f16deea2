-- Parameters: $1 the table's name, $2 the partition keys to look up, or NULL for all of them.
-- The version of its file each partition holds now (the last one loaded into it), and the run that loaded it.
SELECT partition_key, arg_max(version, load_id) AS version, arg_max(run_id, load_id) AS run_id
FROM load_history
WHERE table_name = $1
  AND ($2::VARCHAR[] IS NULL OR partition_key IN (SELECT unnest($2::VARCHAR[])))
GROUP BY partition_key

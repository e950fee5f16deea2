import dagster as dg

# The first file of the feed is for 2018-01-22; one partition a day from there on.
daily_partitions_def = dg.DailyPartitionsDefinition(start_date="2018-01-22")

# One partition per file that has landed, registered by `dynamic_sensor` as files arrive.
dynamic_partitions_def = dg.DynamicPartitionsDefinition(name="dynamic_partition")

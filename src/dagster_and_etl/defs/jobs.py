import dagster as dg

from dagster_and_etl.defs import assets

import_partition_job = dg.define_asset_job(
    name="import_partition_job",
    selection=[assets.import_partition_file, assets.duckdb_partition_table],
    description="Checks one day's source file and loads it into raw_partition_data.",
)

import_dynamic_partition_job = dg.define_asset_job(
    name="import_dynamic_partition_job",
    selection=[assets.import_dynamic_partition_file, assets.duckdb_dynamic_partition_table],
    description="Checks a landed source file and loads it into raw_dynamic_partition_data.",
)

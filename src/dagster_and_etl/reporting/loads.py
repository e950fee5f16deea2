"""What a load of partitions tells Dagster: a materialization for each partition that holds its file's
current version (or keeps rows of a file since removed), the table's two checks, and a failure that names
the bad files. A plain translation of a `LoadOutcome`, testable with plain values."""

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg

from dagster_and_etl.ingest.duckdb_tables import RawTable
from dagster_and_etl.ingest.load_report import LoadReport
from dagster_and_etl.ingest.partition_keys import file_name_for_key
from dagster_and_etl.ingest.source_file_scan import SourceFileError
from dagster_and_etl.ingest.table_summary import Preview, TableFacts
from dagster_and_etl.reporting.source_files import LISTED_AT_MOST, file_metadata


@dataclass(frozen=True)
class Pipeline:
    """What sets the daily pair apart from the event-driven one: the table, and whether a partition's
    file is awaited (a day's file may not have come yet, and its run is retried until it does) or was
    listed (a file the sensor found, which only a deletion takes away)."""

    table: RawTable
    awaits_files: bool


DAILY = Pipeline(RawTable.DAILY, awaits_files=True)
EVENT_DRIVEN = Pipeline(RawTable.DYNAMIC, awaits_files=False)


@dataclass(frozen=True)
class LoadOutcome:
    """A run's load of its partitions, as the table asset reports it."""

    report: LoadReport
    locations: dict[str, str]  # each partition's file, where the source keeps it
    table_name: str  # as the UI names it: <database>.main.<table>
    facts: TableFacts
    partitions: int  # how many the run was given


def _schema(outcome: LoadOutcome) -> dg.TableSchema | None:
    if not outcome.facts.columns:
        return None
    return dg.TableSchema(
        columns=[
            dg.TableColumn(c.name, c.type, constraints=dg.TableColumnConstraints(nullable=c.nullable))
            for c in outcome.facts.columns
        ]
    )


def _cell(value: object) -> str | int | float | bool | None:
    """A value as a table record holds it: dates and decimals as the text DuckDB gives them."""
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def _preview(outcome: LoadOutcome, preview: Preview) -> dg.TableMetadataValue:
    types = {column.name: column.type for column in outcome.facts.columns}
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, types.get(name, "string")) for name in preview.columns]
    )
    records = [
        dg.TableRecord(dict(zip(preview.columns, map(_cell, row), strict=True))) for row in preview.rows
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def materializations(asset_key: dg.AssetKey, outcome: LoadOutcome) -> Iterator[dg.AssetMaterialization]:
    """One per partition that holds its file's current version, then one per partition whose file is
    gone from the source and whose rows are kept."""
    report, schema = outcome.report, _schema(outcome)
    for key, result in report.holding.items():
        metadata: dict[str, object] = {
            "dagster/row_count": result.row_count,
            "dagster/table_name": outcome.table_name,
            "dagster/column_schema": schema,
            **file_metadata(outcome.locations[key], result.version.size, result.version.mtime_ns),
            "version": result.version.token,
            "preview": _preview(outcome, outcome.facts.previews[key]),
        }
        if key in report.unchanged:
            by = f", by run {result.loaded_by}" if result.loaded_by else ""
            metadata["unchanged"] = dg.MetadataValue.text(
                f"this version was loaded before{by}; not loaded again"
            )
        yield dg.AssetMaterialization(asset_key=asset_key, partition=key, metadata=metadata)
    for key, run_id in report.removed.items():
        by = f" by run {run_id}" if run_id else ""
        kept = f"the file is gone from the source; the rows loaded{by} are kept"
        yield dg.AssetMaterialization(
            asset_key=asset_key,
            partition=key,
            metadata={
                "dagster/table_name": outcome.table_name,
                "path": dg.MetadataValue.path(outcome.locations[key]),
                "source_removed": dg.MetadataValue.text(kept),
            },
        )


def missing_files(outcome: LoadOutcome, pipeline: Pipeline, source: str, re_executed: bool) -> list[str]:
    """Judges the partitions whose file was not there: a day's file not arrived fails the run; a listed
    file taken away before a re-execution is passed over (the warnings returned); one deleted after it
    was listed, before its run read it, fails by itself."""
    warnings = []
    for key, location in outcome.report.missing.items():
        if pipeline.awaits_files:
            raise dg.Failure(description=f"{file_name_for_key(key)} has not arrived in {source}.")
        if re_executed:
            warnings.append(f"{location} is not there (removed): partition {key!r} not loaded.")
        else:
            outcome.report.failed[key] = SourceFileError(
                location,
                "it is not in the source: deleted after it was listed, before this run could read it",
            )
    return warnings


def check_results(outcome: LoadOutcome) -> list[dg.AssetCheckResult]:
    loaded = outcome.report.loaded
    mismatched = [key for key, result in loaded.items() if result.row_count != result.file_rows]
    return [
        dg.AssetCheckResult(
            check_name="share_price_is_positive",
            passed=outcome.facts.non_positive == 0,
            metadata={"non_positive_rows": outcome.facts.non_positive},
        ),
        dg.AssetCheckResult(
            check_name="row_count_matches_file",
            passed=not mismatched,
            metadata={
                "table_rows": sum(result.row_count for result in loaded.values()),
                "file_rows": sum(result.file_rows for result in loaded.values()),
                "mismatched_partitions": dg.MetadataValue.json(mismatched[:LISTED_AT_MOST]),
            },
        ),
    ]


def failed_partition_observations(asset_key: dg.AssetKey, outcome: LoadOutcome) -> list[dg.AssetObservation]:
    """For each partition whose file could not be loaded, an observation of that partition saying why in
    one line (the file, the line, the column, the kind of error; never the file's values). It is listed
    among the partition's events (View all historical events), while the run's failure metadata shows
    only in the run's logs."""
    return [
        dg.AssetObservation(
            asset_key=asset_key,
            partition=key,
            description=f"Not loaded: {error.path}: {error.summary}",
            metadata={"load_failed": dg.MetadataValue.text(f"{error.path}: {error.summary}")},
        )
        for key, error in outcome.report.failed.items()
    ]


def load_failure(outcome: LoadOutcome) -> dg.Failure | None:
    """The failure that ends the run, if any: files that kept changing (retried), or bad files (not)."""
    report = outcome.report
    if report.changing:
        # Worth another try: the retry policy runs the step again, and what is loaded is not loaded twice.
        changing = sorted(str(error.path) for error in report.changing.values())
        return dg.Failure(
            description=f"{', '.join(changing[:5])} changed on every attempt to load it; the other files were"
            " loaded. Tried again by the job's retry policy.",
            metadata={"changing_files": dg.MetadataValue.json(changing[:LISTED_AT_MOST])},
            allow_retries=True,
        )
    if report.failed:
        return _bad_files_failure(report, outcome.partitions)
    return None


def _bad_files_failure(report: LoadReport, partitions: int) -> dg.Failure:
    """One failure for the run naming every bad file, its lines and columns; no retry mends a bad file."""
    errors = list(report.failed.items())
    first = errors[0][1]
    description = str(first)
    if len(errors) > 1:
        description = (
            f"{len(errors)} of {partitions} file(s) could not be loaded; the others were. First: {first}"
        )
    failed = [
        {"partition": key, "path": str(error.path), "problem": error.problem, "summary": error.summary}
        for key, error in errors[:LISTED_AT_MOST]
    ]
    return dg.Failure(
        description=description,
        metadata={
            "path": dg.MetadataValue.path(str(first.path)),
            "problem": first.problem,
            "bad_lines": dg.MetadataValue.json(first.errors[:20]),
            # What alerts say: each file and what is wrong with it, without quoting the file.
            "failed_partitions": dg.MetadataValue.json(failed),
            "failed_partition_count": len(errors),
        },
        allow_retries=False,
    )

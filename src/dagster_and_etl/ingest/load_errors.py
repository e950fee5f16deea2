"""What went wrong with a file a load read: DuckDB's errors and rejected lines, as one error per file that
names its lines and columns, with a summary that never quotes the file."""

import re
from pathlib import Path
from typing import TYPE_CHECKING

from dagster_and_etl.ingest.duckdb_tables import REJECTS_KEPT, sql_text
from dagster_and_etl.ingest.source_file_scan import SourceFileError

if TYPE_CHECKING:
    import duckdb

# How many of a file's bad lines an error lists.
ERRORS_SHOWN = 5


class FileChangedError(SourceFileError):
    """A file changed while it was being loaded; `paths` are every file that did."""

    def __init__(
        self, paths: list[Path], problem: str = "the file changed while it was being loaded"
    ) -> None:
        super().__init__(paths[0], problem)
        self.paths = paths


class BadFiles(Exception):
    """Lines DuckDB could not read, by file: the load that found them was rolled back."""

    def __init__(self, errors: dict[Path, SourceFileError]) -> None:
        super().__init__(f"{len(errors)} bad file(s)")
        self.errors = errors


def duckdb_error(error: Exception, path: Path) -> SourceFileError:
    import duckdb

    if isinstance(error, duckdb.ConstraintException):
        return SourceFileError(
            path,
            f"a value is missing or out of range: {_first_paragraph(error)}",
            summary="a value is missing or out of range",
        )
    return SourceFileError(
        path, _first_paragraph(error), summary=f"DuckDB cannot read it as CSV ({type(error).__name__})"
    )


def _first_paragraph(error: Exception) -> str:
    """DuckDB's own message without its generic advice, which names options this loader sets on purpose."""
    return str(error).split("\n\n")[0].replace("\n", " ").strip()


def file_named_in(error: Exception) -> Path | None:
    """The file a DuckDB CSV error names in its details, if it names one."""
    found = re.search(r"^\s*file = (.+)$", str(error), re.MULTILINE)
    return Path(found.group(1).strip()) if found else None


def _shortened(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def rejected_lines(conn: "duckdb.DuckDBPyConnection") -> dict[Path, SourceFileError]:
    """The lines DuckDB could not read in the last load, as one error per file naming its lines."""
    by_file: dict[Path, list[dict]] = {}
    for file, line, column, kind, message in conn.execute(sql_text("rejected_lines.sql")).fetchall():
        by_file.setdefault(Path(file), []).append(
            {"file": file, "line": line, "column": column, "error": kind, "message": _shortened(message)}
        )
    errors = {}
    for path, lines in by_file.items():
        shown = "; ".join(
            f"line {e['line']}" + (f", column {e['column']}" if e["column"] else "") + f": {e['message']}"
            for e in lines[:ERRORS_SHOWN]
        )
        more = f" (and {len(lines) - ERRORS_SHOWN} more)" if len(lines) > ERRORS_SHOWN else ""
        count = (
            f"{REJECTS_KEPT} or more bad lines" if len(lines) >= REJECTS_KEPT else f"{len(lines)} bad line(s)"
        )
        # The same without DuckDB's messages, which quote the values they could not read.
        summary = "; ".join(
            f"line {e['line']}" + (f", column {e['column']}" if e["column"] else "") + f" ({e['error']})"
            for e in lines[:ERRORS_SHOWN]
        )
        errors[path] = SourceFileError(path, f"{count}: {shown}{more}", lines, f"{count}: {summary}{more}")
    return errors

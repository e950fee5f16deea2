"""The layout of a source file: one CSV per partition, a quoted header, `YYYY/MM/DD` dates."""

import csv
import io

# Column names in file order, with the DuckDB type each is loaded as.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("date", "DATE"),
    ("share_price", "DECIMAL(18,4)"),
    ("amount", "DECIMAL(18,4)"),
    ("spend", "DECIMAL(18,4)"),
    ("shift", "DECIMAL(18,4)"),
    ("spread", "DECIMAL(18,4)"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in COLUMNS)
DATE_FORMAT = "%Y/%m/%d"


def header_problem(first_line: bytes) -> str | None:
    """Why a file's first line is not the expected header, or None when it is."""
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "its first line is not UTF-8 text, so not the expected header"
    text = text.rstrip("\r\n")
    if not text.isprintable():
        return f"its first line is not a CSV header: {text[:60]!r}"
    found = next(csv.reader(io.StringIO(text)), [])
    if tuple(found) == COLUMN_NAMES:
        return None
    if not found:
        return f"it has no header; expected {', '.join(COLUMN_NAMES)}"
    missing = [name for name in COLUMN_NAMES if name not in found]
    extra = [name for name in found if name not in COLUMN_NAMES]
    details = []
    if missing:
        details.append(f"missing {', '.join(missing)}")
    if extra:
        details.append(f"unexpected {', '.join(extra)}")
    if not details:
        details.append("columns out of order")
    return (
        f"its header has columns {', '.join(found)} ({'; '.join(details)}); "
        f"expected {', '.join(COLUMN_NAMES)}"
    )

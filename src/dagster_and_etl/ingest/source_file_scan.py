"""Reading a source file once in Python before it is loaded: its header, its encoding, its data rows.

The row count is taken independently of DuckDB, so the load can be checked against it.
"""

import codecs
import os
from dataclasses import dataclass
from pathlib import Path

from dagster_and_etl.ingest.csv_format import header_problem

CHUNK_BYTES = 1 << 20


class SourceFileError(ValueError):
    """A source file that cannot be loaded. The message names the file and what is wrong with it."""

    def __init__(self, path: Path, problem: str, errors: list[dict] | None = None) -> None:
        super().__init__(f"{path} cannot be loaded: {problem}")
        self.path = path
        self.problem = problem
        self.errors = errors or []


@dataclass(frozen=True)
class FileVersion:
    """What identifies one version of a file: a rewrite in place or a replacement changes it."""

    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: Path) -> "FileVersion":
        stat = os.stat(path)
        return cls(stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def count_data_rows(path: Path) -> int:
    """Checks the header and the encoding, and counts the non-blank lines after the header.

    A file with a header and no rows is an empty partition; a file without even a header is an error.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    blank = 0
    partial = b""
    with path.open("rb") as source:
        header = source.readline()
        if not header:
            raise SourceFileError(path, "the file is empty (0 bytes); expected at least a header")
        problem = header_problem(header)
        if problem is not None:
            raise SourceFileError(path, problem)
        while chunk := source.read(CHUNK_BYTES):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                line = 2 + lines + (partial + chunk[: error.start]).count(b"\n")
                raise SourceFileError(
                    path, f"line {line} is not UTF-8 text (byte 0x{chunk[error.start]:02x})"
                ) from None
            pieces = (partial + chunk).split(b"\n")
            partial = pieces.pop()
            lines += len(pieces)
            blank += pieces.count(b"") + pieces.count(b"\r")
    if partial.strip():
        lines += 1
    return lines - blank

"""Reading a source file once in Python before it is loaded: its header, its encoding, its data rows.

The row count is taken independently of DuckDB, so the load can be checked against it.
"""

import codecs
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dagster_and_etl.ingest.compression import BrokenArchive, decompressed_chunks
from dagster_and_etl.ingest.csv_format import header_problem

CHUNK_BYTES = 1 << 20


class SourceFileError(ValueError):
    """A source file that cannot be loaded. The message names the file and what is wrong with it.

    `problem` may quote the file (a bad value, a header); `summary` says what is wrong without quoting
    it, for messages that leave the pipeline, such as alerts. It is `problem` when that quotes nothing.
    """

    def __init__(
        self, path: Path | str, problem: str, errors: list[dict] | None = None, summary: str | None = None
    ) -> None:
        super().__init__(f"{path} cannot be loaded: {problem}")
        self.path = path
        self.problem = problem
        self.errors = errors or []
        self.summary = summary or problem

    def at(self, location: str) -> "SourceFileError":
        """The same error, naming the file by `location` (its URI) instead of the local copy read."""
        errors = [{**error, "file": location} if "file" in error else error for error in self.errors]
        return SourceFileError(location, self.problem, errors, self.summary)


@dataclass(frozen=True)
class FileVersion:
    """What identifies one version of a file: a rewrite in place or a replacement changes it."""

    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: Path) -> "FileVersion":
        return cls.from_stat(os.stat(path))

    @classmethod
    def from_stat(cls, stat: os.stat_result) -> "FileVersion":
        return cls(stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)

    @property
    def token(self) -> str:
        """The version as one string, as the sensor and the load history write it."""
        return version_token(self.size, self.mtime_ns, self.ctime_ns, self.inode)


def version_token(size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    """Size and mtime tell most versions apart; the inode change time and the inode tell a replacement
    with the same size and mtime (`cp -p`, `rsync -t`) from the file it replaced."""
    return f"size={size},mtime_ns={mtime_ns},ctime_ns={ctime_ns},inode={inode}"


def _header_and_rest(chunks: Iterator[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """The first line, with its newline, and the chunks of bytes after it."""
    first = b""
    for chunk in chunks:
        first += chunk
        end = first.find(b"\n")
        if end >= 0:
            return first[: end + 1], itertools.chain([first[end + 1 :]], chunks)
    return first, iter(())


def count_data_rows(path: Path, *, skip_blank_lines: bool = True) -> int:
    """Checks the header and the encoding, and counts the lines after the header; a compressed file
    (`.csv.gz`, `.csv.zst`) is read through its decompressor, and one that is corrupt or cut short is bad.

    Blank lines are not rows, and are left out of the count; with `skip_blank_lines=False` they are
    counted too, which takes a third of the time, for callers that recount only when the quick count
    disagrees. A file with a header and no rows is an empty partition; without even a header, an error.
    """
    try:
        header, rest = _header_and_rest(decompressed_chunks(path, CHUNK_BYTES))
        if not header:
            raise SourceFileError(path, "the file is empty (0 bytes); expected at least a header")
        problem = header_problem(header)
        if problem is not None:
            raise SourceFileError(path, problem, summary="its first line is not the expected header")
        return _count_lines(path, rest, skip_blank_lines)
    except BrokenArchive as error:
        raise SourceFileError(path, str(error)) from None


def _count_lines(path: Path, chunks: Iterator[bytes], skip_blank_lines: bool) -> int:
    """The lines in `chunks`, the bytes after the header, checked to be UTF-8 (see `count_data_rows`)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0  # complete lines after the header
    blank = 0
    unfinished = b""  # the last line so far, while it has no newline yet
    for chunk in chunks:
        # Plain ASCII is UTF-8 already: only other bytes need the (slower) decoder.
        if not chunk.isascii() or decoder.getstate()[0]:
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                line = 2 + lines + (unfinished + chunk[: error.start]).count(b"\n")
                raise SourceFileError(
                    path, f"line {line} is not UTF-8 text (byte 0x{chunk[error.start]:02x})"
                ) from None
        if skip_blank_lines:
            pieces = (unfinished + chunk).split(b"\n")
            unfinished = pieces.pop()
            lines += len(pieces)
            blank += pieces.count(b"") + pieces.count(b"\r")
        else:
            newlines = chunk.count(b"\n")
            lines += newlines
            unfinished = chunk[chunk.rfind(b"\n") + 1 :] if newlines else unfinished + chunk
    if unfinished.strip():
        lines += 1
    return lines - blank

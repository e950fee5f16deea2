"""Source files kept compressed: which suffixes mean which format, and reading one's bytes back.

DuckDB reads `.gz` and `.zst` files itself. The load also reads each file once in Python, to check it and
count its rows before DuckDB does, and reads the compressed ones here, through the same decompressors:
zlib for gzip (several members, one after the other, included) and zstandard for zstd (several frames).
A file cut short is an error here, not merely fewer rows: DuckDB 2.0 loads the rows of a truncated
`.zst` without a word, and the row count taken here is what the load is checked against.
"""

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# The compressed bytes read at a time: their output, in memory at once, is a few times as large.
COMPRESSED_CHUNK_BYTES = 1 << 18


class _Decompressor(Protocol):
    eof: bool
    unused_data: bytes

    def decompress(self, data: bytes) -> bytes: ...


class BrokenArchive(ValueError):
    """A compressed file that cannot be read to its end: corrupt, cut short, or not of its format."""


@dataclass(frozen=True)
class Format:
    name: str  # as the errors say it
    new: Callable[[], _Decompressor]  # one member or frame's decompressor
    errors: Callable[[], tuple[type[Exception], ...]]  # what its decompressor raises for bad input


def _zstd() -> _Decompressor:
    import zstandard  # here: only a load that meets a .zst file needs it

    return zstandard.ZstdDecompressor().decompressobj()


def _zstd_errors() -> tuple[type[Exception], ...]:
    import zstandard

    return (zstandard.ZstdError,)


FORMATS: dict[str, Format] = {
    ".gz": Format("gzip", lambda: zlib.decompressobj(wbits=zlib.MAX_WBITS | 16), lambda: (zlib.error,)),
    ".zst": Format("zstd", _zstd, _zstd_errors),
}


def format_of(path: Path | str) -> Format | None:
    """The compression a file's name says it has, or None for a plain file."""
    return FORMATS.get(Path(path).suffix)


def decompressed_chunks(path: Path, chunk_bytes: int) -> Iterator[bytes]:
    """The file's bytes, a chunk at a time, decompressed when its name says it is compressed.

    `BrokenArchive` says what is wrong with a compressed file that cannot be read to its end."""
    kind = format_of(path)
    with path.open("rb") as raw:
        if kind is None:
            while chunk := raw.read(chunk_bytes):
                yield chunk
            return
        try:
            yield from _decompress(raw.read, kind)
        except kind.errors() as error:
            raise BrokenArchive(f"it is not a readable {kind.name} file ({error})") from None


def _decompress(read: Callable[[int], bytes], kind: Format) -> Iterator[bytes]:
    part, started = kind.new(), False  # the member or frame being read, and whether it has begun
    while data := read(COMPRESSED_CHUNK_BYTES):
        while data:
            started = True
            if output := part.decompress(data):
                yield output
            data = b""
            if part.eof:  # what follows the end of this member or frame is the start of the next
                data, part, started = part.unused_data, kind.new(), False
    if started:
        raise BrokenArchive(f"it is not a complete {kind.name} file: it ends in the middle of its data")

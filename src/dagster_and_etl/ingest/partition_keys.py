"""Which file names can be partition keys, and the mapping between the two.

A key is its file's name without its suffix, `.csv`, or `.csv.gz` or `.csv.zst` for a compressed file,
and nothing else: no case folding or trimming. So a key names one file in the source, and at most three
can name it: while two are there at once (`a.csv` and `a.csv.gz`), neither is loaded into its partition
(see `clash_problem`).
"""

import functools
from collections.abc import Sequence

from dagster_and_etl.ingest.compression import FORMATS

PLAIN_SUFFIX = ".csv"
# The plain suffix first, the name a file is expected under when none is there; then one per compression.
SOURCE_SUFFIXES = (PLAIN_SUFFIX, *(PLAIN_SUFFIX + compressed for compressed in FORMATS))
MAX_KEY_LENGTH = 200


@functools.lru_cache(maxsize=1 << 18)  # the sensor asks about the same names on every tick
def key_problem(partition_key: str) -> str | None:
    """Why `partition_key` cannot be a partition key, or None when it can."""
    if not partition_key:
        return "the key is empty"
    if len(partition_key) > MAX_KEY_LENGTH:
        return f"the key is {len(partition_key)} characters long, more than {MAX_KEY_LENGTH}"
    if not partition_key.isprintable():  # any control, format, surrogate or non-space separator
        return "the key contains a control, invisible or undecodable character"
    if "/" in partition_key or "\\" in partition_key:
        return "the key contains a path separator"
    if ".." in partition_key:
        return "the key contains '..'"
    if partition_key.startswith("."):
        return "the key starts with '.'"
    if partition_key != partition_key.strip():
        return "the key starts or ends with white space"
    return None


def key_for_file_name(file_name: str) -> str | None:
    """The partition key a file name stands for, or None for a file that is not a source CSV."""
    if file_name.startswith("."):
        return None
    if file_name.endswith(PLAIN_SUFFIX):  # first, and alone: the test every file of every listing takes
        return file_name[: -len(PLAIN_SUFFIX)]
    return file_name[: file_name.rindex(PLAIN_SUFFIX)] if file_name.endswith(SOURCE_SUFFIXES) else None


def file_name_for_key(partition_key: str) -> str:
    """The name a partition's file is expected under: its plain CSV."""
    return partition_key + PLAIN_SUFFIX


def file_names_for_key(partition_key: str) -> list[str]:
    """Every name a partition's file may have."""
    return [partition_key + suffix for suffix in SOURCE_SUFFIXES]


def first_split_name(names: Sequence[str], last_read: str) -> str | None:
    """Of the source file names of a listing read in name order up to `last_read`, the first whose
    partition may have another file named after `last_read`, not read yet (`a.csv` read, `a.csv.gz` not),
    or None. A part of a listing that ends before that name keeps the files of each partition together."""
    split = [
        name
        for name in names
        if (key := key_for_file_name(name)) is not None and max(file_names_for_key(key)) > last_read
    ]
    return min(split, default=None)


def clash_problem(partition_key: str, names: Sequence[str]) -> str:
    """Why none of the files `names`, which all give `partition_key`, is loaded, said of one of them
    (after "it is"): the sender has to say which one is meant, by removing the others. Rows already
    loaded into the partition stay as they are."""
    return (
        f"one of the files {' and '.join(sorted(names))}, which give the same partition key"
        f" {partition_key!r}; none of them is loaded while more than one is there"
    )

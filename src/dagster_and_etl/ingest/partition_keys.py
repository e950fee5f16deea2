"""Which file names can be partition keys, and the one-to-one mapping between the two.

A key is its file's name without the `.csv` suffix, and nothing else: no case folding or trimming, so two
files can never map to one key and a key always names exactly one file in the source folder.
"""

import functools

SOURCE_SUFFIX = ".csv"
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
    if file_name.startswith(".") or not file_name.endswith(SOURCE_SUFFIX):
        return None
    return file_name[: -len(SOURCE_SUFFIX)]


def file_name_for_key(partition_key: str) -> str:
    return partition_key + SOURCE_SUFFIX

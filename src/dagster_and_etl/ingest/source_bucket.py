"""An S3 bucket prefix as a source: `s3://<bucket>/<prefix>/<partition key>.csv` (or `.csv.gz`, `.csv.zst`).

Anything that speaks the S3 API works the same (AWS, MinIO, R2, Ceph, GCS's XML API): the client comes
from the standard AWS settings. An object's version is its ETag and size; its change time is its
LastModified, and "now" is the storage's own clock (the `Date` of its answers), so a clock on the Dagster
host that is ahead or behind never hides an object.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster_and_etl.ingest.aws_errors import NOT_FOUND, aws_cause, error_code, is_aws_error
from dagster_and_etl.ingest.partition_keys import (
    file_name_for_key,
    file_names_for_key,
    first_split_name,
    key_for_file_name,
)
from dagster_and_etl.ingest.source import (
    MISSING,
    FileInfo,
    ListedFile,
    LocalCopy,
    NoFile,
    SourceFile,
    SourceListing,
    SourceUnavailable,
    only_file,
)

# LastModified and the Date header both keep whole seconds.
TIMESTAMP_SLACK_NS = 1_000_000_000
# S3 stamps an object with the time its upload started (for a multipart upload, when it was begun), so
# a rewrite that took long to upload can carry a time from before the last tick. The sensor compares
# the versions of every object stamped within this long before its horizon, so rewrites that took up
# to an hour to upload are found.
REWRITE_LOOKBACK_NS = 3600 * 1_000_000_000
# Objects described or fetched at once: S3 answers many requests in parallel far faster than in turn.
# No more than the client keeps connections for (botocore's `max_pool_connections`, 10 by default):
# beyond that, each extra request opens a connection of its own and throws it away after.
PARALLEL_REQUESTS = 16
# Keys a page of a listing holds: S3's most.
PAGE_SIZE = 1000
CHUNK_BYTES = 1 << 20


def is_s3_uri(value: str) -> bool:
    """Whether a setting names an S3 bucket prefix (`s3://bucket/prefix/`) rather than a local path."""
    return value.startswith("s3://")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` as ("bucket", "some/prefix/"); the prefix always ends in "/" unless
    it is empty, so `s3://bucket/in` never takes in `s3://bucket/inbox/`."""
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"SOURCE_DIR {uri!r} names no bucket: expected s3://<bucket>/<prefix>/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def version_token(etag: str, size: int) -> str:
    return f"etag={etag},size={size}"


def _ns(timestamp: dt.datetime) -> int:
    return int(timestamp.timestamp()) * 1_000_000_000 + timestamp.microsecond * 1000


def _storage_now_ns(response: dict[str, Any]) -> int:
    """The storage's clock, from the `Date` header of one of its answers."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not date:
        raise SourceUnavailable("the storage's answer has no Date header, so its clock cannot be read")
    return _ns(email.utils.parsedate_to_datetime(date))


def _file_of(entry: ListedFile) -> SourceFile:
    name, partition_key, size, modified_ns, _, etag = entry
    return SourceFile(name, partition_key, size, modified_ns, modified_ns, version_token(str(etag), size))


def _parallel_requests(s3: Any) -> int:
    """How many requests to make at once through the client `s3`: as many as its pool keeps connections."""
    pool = getattr(getattr(getattr(s3, "meta", None), "config", None), "max_pool_connections", None)
    return max(1, min(PARALLEL_REQUESTS, pool or PARALLEL_REQUESTS))


@dataclass(frozen=True)
class ListedPart:
    """Part of a listing of the prefix, in key order, and where the next part begins."""

    listing: SourceListing  # the source files among the objects of the pages read
    last_key: str  # the last object key (or subfolder) read: the next part lists the keys after it
    complete: bool  # the pages read reached the end of the prefix


@dataclass(frozen=True)
class BucketSource:
    """Source files as objects directly under an S3 prefix; `client` makes a boto3 S3 client."""

    bucket: str
    prefix: str
    client: Callable[[], Any]
    lookback_ns: int = REWRITE_LOOKBACK_NS
    slack_ns: int = TIMESTAMP_SLACK_NS

    @classmethod
    def from_uri(cls, uri: str, client: Callable[[], Any]) -> BucketSource:
        bucket, prefix = parse_s3_uri(uri)
        return cls(bucket, prefix, client)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def location(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"

    def expected_location(self, partition_key: str) -> str:
        return self.location(file_name_for_key(partition_key))

    def _unavailable(self, doing: str, error: Exception) -> SourceUnavailable:
        return SourceUnavailable(f"Cannot {doing} {self}: {aws_cause(error)}.")

    def list(self) -> SourceListing:
        """One paginated listing of the prefix (1,000 keys a page), taking only its direct children."""
        return self.list_part("", math.inf).listing

    def list_part(self, start_after: str, deadline: float) -> ListedPart:
        """Pages of the prefix in key order, after the object key `start_after` (from the start when it
        is empty), until the last page or until `deadline` (`time.monotonic()`) has passed: at least one,
        and as many as it takes to keep a partition's files in one part (`first_split_name`)."""
        resume = {"StartAfter": start_after} if start_after else {}
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(
                Bucket=self.bucket,
                Prefix=self.prefix,
                Delimiter="/",
                **resume,
                PaginationConfig={"PageSize": PAGE_SIZE},
            )
        )
        found: list[ListedFile] = []
        now_ns, last_key = 0, start_after
        try:
            for page in pages:
                # The first answer's Date: before any object this listing sees was judged.
                now_ns = now_ns or _storage_now_ns(page)
                found.extend(self._objects(page))
                # Subfolders count as entries of a page too, and sort among the objects.
                entries = [o["Key"] for o in page.get("Contents", ())]
                entries += [p["Prefix"] for p in page.get("CommonPrefixes", ())]
                last_key = max(entries, default=last_key)
                if page.get("IsTruncated") and time.monotonic() >= deadline:
                    # Ends before a partition that may have files on the next page, unless none is left.
                    split = first_split_name([f.name for f in found], last_key.removeprefix(self.prefix))
                    kept = [f for f in found if split is None or f.name < split]
                    if split is None or kept:
                        resume = last_key if split is None else self.prefix + kept[-1].name
                        listing = SourceListing.of(kept, now_ns, TIMESTAMP_SLACK_NS, _file_of)
                        return ListedPart(listing, resume, complete=False)
        except Exception as error:
            if is_aws_error(error):
                raise self._unavailable("list", error) from error
            raise
        return ListedPart(SourceListing.of(found, now_ns, TIMESTAMP_SLACK_NS, _file_of), last_key, True)

    def _objects(self, page: dict[str, Any]) -> Iterator[ListedFile]:
        """The source files among a page's objects."""
        kept = len(self.prefix)
        for found in page.get("Contents", ()):
            name = found["Key"][kept:]
            partition_key = key_for_file_name(name)
            if partition_key is not None:
                modified_ns = _ns(found["LastModified"])
                yield ListedFile(
                    name, partition_key, found["Size"], modified_ns, modified_ns, found["ETag"].strip('"')
                )

    def _head(self, s3: Any, name: str) -> FileInfo | None:
        """The object `name` as it is now, or None when there is none."""
        try:
            found = s3.head_object(Bucket=self.bucket, Key=self.prefix + name)
        except Exception as error:
            if error_code(error) in NOT_FOUND:
                return None
            if is_aws_error(error):
                raise self._unavailable("read", error) from error
            raise
        modified_ns = _ns(found["LastModified"])
        return FileInfo(
            name,
            self.location(name),
            found["ContentLength"],
            modified_ns,
            modified_ns,
            version_token(found["ETag"].strip('"'), found["ContentLength"]),
            _storage_now_ns(found),
        )

    def _check_bucket(self, s3: Any) -> None:
        """`SourceUnavailable` if the bucket does not exist.

        A HEAD has no body to carry an error code, so an object missing from a bucket and an object of a
        bucket that does not exist both answer a bare 404: only the bucket itself tells them apart."""
        try:
            s3.head_bucket(Bucket=self.bucket)
        except Exception as error:
            if not is_aws_error(error):
                raise
            code = error_code(error)
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise SourceUnavailable(
                    f"Cannot read {self}: the bucket does not exist (NoSuchBucket)."
                ) from error
            if code is None:  # the storage was not reached at all
                raise self._unavailable("read", error) from error
            # Any other answer comes from a bucket that exists (one refusing to be described, say).

    def info(self, partition_keys: list[str]) -> dict[str, FileInfo | NoFile]:
        """Each partition's object, whichever of its names it has: a HEAD for every name, all at once."""
        return self._find(self.client(), partition_keys)

    def _find(self, s3: Any, partition_keys: list[str]) -> dict[str, FileInfo | NoFile]:
        names = [name for key in partition_keys for name in file_names_for_key(key)]
        with ThreadPoolExecutor(_parallel_requests(s3)) as pool:
            heads = dict(zip(names, pool.map(lambda name: self._head(s3, name), names), strict=True))
        found: dict[str, FileInfo | NoFile] = {}
        for key in partition_keys:
            present = {name: head for name in file_names_for_key(key) if (head := heads[name]) is not None}
            name = only_file(key, list(present))
            found[key] = name if isinstance(name, NoFile) else present[name]
        if MISSING in found.values():
            self._check_bucket(s3)
        return found

    def _download(self, s3: Any, found: FileInfo, path: Path) -> LocalCopy:
        """One GET: exactly one complete version of the object, whatever is written to it meanwhile."""
        try:
            got = s3.get_object(Bucket=self.bucket, Key=self.prefix + found.name)
            with path.open("wb") as spool:
                for chunk in got["Body"].iter_chunks(CHUNK_BYTES):
                    spool.write(chunk)
        except Exception as error:
            code = error_code(error)
            if code in NOT_FOUND:
                return LocalCopy(found.location, None)
            if code in ("AccessDenied", "InvalidObjectState"):
                return LocalCopy(found.location, None, problem=f"it cannot be read: {aws_cause(error)}")
            if is_aws_error(error):
                raise self._unavailable("read", error) from error
            raise
        size = got["ContentLength"]
        return LocalCopy(
            found.location,
            path,
            pinned=version_token(got["ETag"].strip('"'), size),
            size=size,
            mtime_ns=_ns(got["LastModified"]),
        )

    def _copy(self, s3: Any, key: str, found: FileInfo | NoFile, stem: Path) -> LocalCopy:
        """A partition's object copied to `stem` and its suffix, which tells DuckDB whether it is
        compressed; or why there is no copy."""
        if isinstance(found, FileInfo):
            return self._download(s3, found, stem.with_name(stem.name + found.name[len(key) :]))
        problem = None if found.missing else f"it is {found.problem}"
        return LocalCopy(self.expected_location(key), None, problem=problem)

    @contextmanager
    def local_copies(self, partition_keys: list[str]) -> Iterator[dict[str, LocalCopy]]:
        """Each partition's object, found by its names, streamed into a spool folder in the system's
        temporary folder (TMPDIR), which is removed when the block ends, whatever happens in it."""
        s3 = self.client()
        spool = Path(tempfile.mkdtemp(prefix="dagster_and_etl-spool-"))
        try:
            found = self._find(s3, partition_keys)
            stems = {key: spool / str(index) for index, key in enumerate(partition_keys)}
            with ThreadPoolExecutor(_parallel_requests(s3)) as pool:
                copies = list(
                    pool.map(lambda key: self._copy(s3, key, found[key], stems[key]), partition_keys)
                )
            yield dict(zip(partition_keys, copies, strict=True))
        finally:
            shutil.rmtree(spool, ignore_errors=True)

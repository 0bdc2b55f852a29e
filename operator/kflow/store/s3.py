"""`S3ObjectStore`: the `ObjectStore` Protocol over an S3 API (MinIO, SeaweedFS, AWS).

Owns: the only use of the `minio` client in kflow's datastore; retries with
back-off (`kflow.store.retry`) around every request; converting S3 errors at
the edge (missing key → `ObjectNotFound`, missing bucket / bad credentials →
`StoreError` with a hint, transient failures after the budget →
`StoreUnavailable`); and the large-object transfers:

* Upload: objects up to `multipart_threshold` go up with one PUT. Larger ones
  use multipart upload driven here, with parts uploaded in parallel by a
  thread pool straight from memoryview slices of the caller's buffers (no
  copy of the value; a part that straddles two buffers is joined, one part's
  worth). This uses minio's `_create_multipart_upload`, `_upload_part`,
  `_complete_multipart_upload` and `_abort_multipart_upload`: private but
  stable through minio 7.x; the public `put_object(part_size=...)` reads every
  part into a new `bytes` and queues them, which copies the value. If those
  methods are missing (a future minio), we fall back to `put_object`.
* Download: `readinto` splits the range into `part_size` pieces fetched with
  parallel ranged GETs, each written straight into its slice of the caller's
  buffer (in 1 MiB reads), so a large array is downloaded into its own memory.

Each `put_buffers`/`readinto` part is retried on its own, so a transient error
costs one part, not the object.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import urllib3
from minio import Minio
from minio.datatypes import Part
from minio.error import InvalidResponseError, S3Error, ServerError

from kflow.store.backend import Buffer, total_size
from kflow.store.errors import CorruptArtifact, ObjectNotFound, StoreError
from kflow.store.retry import TRANSIENT_S3_CODES, RetryPolicy, with_retries

__all__ = ["S3Config", "S3ObjectStore", "is_transient", "plan_parts"]

T = TypeVar("T")

MiB = 1 << 20
MIN_PART_SIZE = 5 * MiB          # S3's minimum for every part but the last
MAX_PARTS = 10_000               # S3's maximum number of parts
DEFAULT_PART_SIZE = 8 * MiB
_READ_CHUNK = 1 * MiB            # urllib3's readinto copies through a temp of this size
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"})
_AUTH_CODES = frozenset({"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId",
                         "InvalidToken", "ExpiredToken"})


@dataclass(frozen=True)
class S3Config:
    """Where the S3 store is and how to log in."""

    endpoint: str                 # http(s)://host[:port]
    access_key: str
    secret_key: str
    bucket: str = "kflow"
    region: str = "us-east-1"


def is_transient(exc: BaseException) -> bool:
    """Whether a failed S3 request is worth retrying."""
    if isinstance(exc, S3Error):
        status = getattr(exc.response, "status", 0) or 0
        return exc.code in TRANSIENT_S3_CODES or status >= 500 or status == 429
    if isinstance(exc, ServerError):
        return exc.status_code >= 500 or exc.status_code == 429
    if isinstance(exc, InvalidResponseError):
        return True  # a proxy's HTML error page or a cut-off body
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def plan_parts(size: int, part_size: int) -> list[tuple[int, int]]:
    """(offset, length) of each part of a `size`-byte object (pure).

    Parts are `part_size` long (raised so there are at most MAX_PARTS, and at
    least MIN_PART_SIZE), the last one shorter.
    """
    part = max(part_size, MIN_PART_SIZE, -(-size // MAX_PARTS))
    return [(off, min(part, size - off)) for off in range(0, size, part)] or [(0, 0)]


def _slices(buffers: Sequence[memoryview], offset: int, length: int) -> list[memoryview]:
    """The views of `buffers`' concatenation covering [offset, offset + length)."""
    out: list[memoryview] = []
    pos = 0
    end = offset + length
    for buf in buffers:
        n = buf.nbytes
        lo, hi = max(offset, pos), min(end, pos + n)
        if lo < hi:
            out.append(buf[lo - pos:hi - pos])
        pos += n
        if pos >= end:
            break
    return out


def _host(endpoint: str) -> tuple[str, bool]:
    for scheme, secure in (("http://", False), ("https://", True)):
        if endpoint.startswith(scheme):
            host = endpoint[len(scheme):].rstrip("/")
            if host and "/" not in host:
                return host, secure
    raise StoreError(f"S3 endpoint must look like http(s)://host[:port], got {endpoint!r}")


class _ConcatReader(io.RawIOBase):
    """A read-only stream over buffers (the fallback upload path)."""

    def __init__(self, buffers: Sequence[memoryview]) -> None:
        self._buffers = list(buffers)
        self._index = 0
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        out = memoryview(b).cast("B")
        filled = 0
        while filled < out.nbytes and self._index < len(self._buffers):
            buf = self._buffers[self._index]
            n = min(out.nbytes - filled, buf.nbytes - self._pos)
            out[filled:filled + n] = buf[self._pos:self._pos + n]
            filled += n
            self._pos += n
            if self._pos == buf.nbytes:
                self._index, self._pos = self._index + 1, 0
        return filled


class S3ObjectStore:
    """Objects in one bucket of an S3-compatible server.

    Parameters
    ----------
    config:
        Endpoint, keys, bucket and region.
    retry:
        The budget for each request (and each part of a large transfer).
    part_size:
        Multipart part size and ranged-GET size.
    multipart_threshold:
        Objects larger than this are uploaded in parts.
    workers:
        Threads for parallel parts (shared by all transfers of this store).
    """

    def __init__(self, config: S3Config, *, retry: RetryPolicy | None = None,
                 part_size: int = DEFAULT_PART_SIZE, multipart_threshold: int | None = None,
                 workers: int = 8, connect_timeout: float = 5.0,
                 read_timeout: float = 60.0) -> None:
        self.config = config
        self.bucket = config.bucket
        self.retry = retry or RetryPolicy()
        self.part_size = max(part_size, MIN_PART_SIZE)
        self.multipart_threshold = multipart_threshold or self.part_size
        self.workers = workers
        host, secure = _host(config.endpoint)
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=False, maxsize=max(64, 2 * workers), block=False,
        )
        self._client = Minio(host, access_key=config.access_key, secret_key=config.secret_key,
                             secure=secure, region=config.region, http_client=http)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.config.endpoint!r}, bucket={self.bucket!r})"

    @property
    def client(self) -> Minio:
        """The underlying minio client (for tools; the datastore never needs it)."""
        return self._client

    def close(self) -> None:
        """Stop the transfer threads (the store can still be used; they restart)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="kflow-s3")
            return self._pool

    # ------------------------------------------------------------------ plumbing

    def _call(self, what: str, op: Callable[[], T], key: str | None = None) -> T:
        """Run one request with retries; convert S3 errors at the edge."""
        try:
            return with_retries(op, self.retry, is_transient, what)
        except S3Error as exc:
            raise self._convert(exc, key) from exc

    def _convert(self, exc: S3Error, key: str | None) -> Exception:
        if exc.code in _MISSING_KEY_CODES and key is not None:
            return ObjectNotFound(key)
        if exc.code == "NoSuchBucket":
            return StoreError(f"bucket {self.bucket!r} does not exist at {self.config.endpoint}",
                              hint="Create it (the embedded cluster does) or set KFLOW_S3_BUCKET.")
        if exc.code in _AUTH_CODES:
            return StoreError(f"the S3 server at {self.config.endpoint} refused the "
                              f"credentials ({exc.code})",
                              hint="Check KFLOW_S3_ACCESS_KEY / KFLOW_S3_SECRET_KEY or "
                              "KFLOW_S3_CREDENTIALS.")
        return StoreError(f"S3 request failed: {exc.code}: {exc.message}")

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists."""
        def op() -> None:
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
        self._call("create bucket", op)

    # ------------------------------------------------------------------- writes

    def put(self, key: str, data: Buffer) -> None:
        self.put_buffers(key, (data,))

    def put_buffers(self, key: str, buffers: Sequence[Buffer]) -> None:
        views = [memoryview(b).cast("B") for b in buffers]
        size = total_size(views)
        if size <= self.multipart_threshold:
            body = views[0] if len(views) == 1 else b"".join(views)
            self._call(f"PUT {key}", lambda: self._put_single(key, body), key)
            return
        if not hasattr(self._client, "_upload_part"):  # pragma: no cover - future minio
            self._call(f"PUT {key}", lambda: self._client.put_object(
                self.bucket, key, io.BufferedReader(_ConcatReader(views)), size,
                part_size=self.part_size, num_parallel_uploads=self.workers), key)
            return
        self._put_multipart(key, views, size)

    def _put_single(self, key: str, body: memoryview | bytes) -> None:
        self._client._put_object(self.bucket, key, cast(bytes, body),
                                 {"Content-Type": "application/octet-stream"})

    def _put_multipart(self, key: str, views: Sequence[memoryview], size: int) -> None:
        c = self._client
        upload_id: str = self._call(
            f"start multipart upload of {key}",
            lambda: c._create_multipart_upload(self.bucket, key, {}), key)

        def upload(number: int, offset: int, length: int) -> Part:
            pieces = _slices(views, offset, length)
            body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            etag = self._call(f"upload part {number} of {key}", lambda: c._upload_part(
                self.bucket, key, cast(bytes, body), None, upload_id, number), key)
            return Part(number, etag)

        futures: list[Future[Part]] = []
        try:
            for number, (offset, length) in enumerate(plan_parts(size, self.part_size), 1):
                futures.append(self._executor().submit(upload, number, offset, length))
            parts = [f.result() for f in futures]
            self._complete(key, upload_id, parts, size)
        except BaseException:
            for f in futures:
                f.cancel()
            with contextlib.suppress(Exception):  # best effort; stale uploads expire
                c._abort_multipart_upload(self.bucket, key, upload_id)
            raise

    def _complete(self, key: str, upload_id: str, parts: list[Part], size: int) -> None:
        try:
            self._call(f"complete multipart upload of {key}",
                       lambda: self._client._complete_multipart_upload(
                           self.bucket, key, upload_id, parts), key)
        except StoreError as exc:
            # A retried complete whose first try succeeded finds no upload any more.
            cause = exc.__cause__
            if isinstance(cause, S3Error) and cause.code == "NoSuchUpload" \
                    and self.size(key) == size:
                return
            raise

    def delete(self, key: str) -> None:
        self._call(f"DELETE {key}", lambda: self._client.remove_object(self.bucket, key), key)

    # -------------------------------------------------------------------- reads

    def _read_range_into(self, key: str, out: memoryview, offset: int) -> None:
        """One ranged GET of len(out) bytes from `offset` into `out`."""
        response = self._client.get_object(self.bucket, key, offset=offset, length=out.nbytes)
        try:
            filled = 0
            while filled < out.nbytes:
                n = response.readinto(out[filled:filled + _READ_CHUNK])
                if not n:
                    break
                filled += n
        finally:
            response.close()
            response.release_conn()
        if filled != out.nbytes:
            raise CorruptArtifact(f"object {key!r} ended after {offset + filled} bytes, "
                                  f"expected {offset + out.nbytes}")

    def _read(self, key: str, offset: int, length: int | None) -> bytes:
        response = self._client.get_object(self.bucket, key, offset=offset,
                                           length=length or 0)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def get(self, key: str) -> bytes:
        return self._call(f"GET {key}", lambda: self._read(key, 0, None), key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        return self._call(f"GET {key} [{offset}:+{length}]",
                          lambda: self._read(key, offset, length), key)

    def readinto(self, key: str, buffer: memoryview, offset: int = 0) -> None:
        out = memoryview(buffer).cast("B")
        ranges = plan_parts(out.nbytes, self.part_size) if out.nbytes else []
        if len(ranges) <= 1:
            if out.nbytes:
                self._call(f"GET {key}", lambda: self._read_range_into(key, out, offset), key)
            return

        def fetch(start: int, length: int) -> None:
            self._call(f"GET {key} [{offset + start}:+{length}]", lambda: self._read_range_into(
                key, out[start:start + length], offset + start), key)

        futures: list[Future[None]] = [self._executor().submit(fetch, s, n) for s, n in ranges]
        try:
            for f in futures:
                f.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        stat = self._call(f"HEAD {key}", lambda: self._client.stat_object(self.bucket, key), key)
        return int(stat.size or 0)

    def list(self, prefix: str, recursive: bool = True) -> Iterator[str]:
        def op() -> list[str]:
            return [str(o.object_name) for o in self._client.list_objects(
                self.bucket, prefix=prefix, recursive=recursive)]
        return iter(sorted(self._call(f"LIST {prefix}", op)))

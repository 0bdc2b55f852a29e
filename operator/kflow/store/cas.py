"""Content-addressed artifacts: save a value once under its sha256, load it back.

Owns: turning values into blobs at ``data/<sha[:2]>/<sha>`` and back, dedup
(the addresses this process already knows to be stored; for a blob of
`SMALL_BLOB` bytes or more, an existence check before upload; a smaller one
is simply written, which is idempotent for a content address and costs
about what the check would), parallelism (a thread pool for many artifacts; the
backend parallelises the parts of a large one), and integrity (a loaded
blob must hash to its address).

Memory: a large numpy array is hashed and uploaded from its own memory, and
downloaded with ranged reads straight into a new array (`np.empty`), so
saving or loading it costs about 1x its size. Other large values cost
their pickle (save) or their stored bytes (load) on top, about 2x.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kflow.store.backend import ObjectStore
from kflow.store.encoding import (
    Encoded,
    Header,
    decode_payload,
    empty_ndarray,
    encode,
    parse_header,
)
from kflow.store.errors import CorruptArtifact
from kflow.store.layout import StoreLayout, validate_sha256
from kflow.store.records import ArtifactRef

__all__ = ["ContentAddressedStore"]

MiB = 1 << 20
DEFAULT_WORKERS = 16
SMALL_BLOB = 256 * 1024       # below this, PUT without checking for the blob first
LARGE_BLOB = 8 * MiB          # above this, load with ranged reads into place
_HEAD_PROBE = 64 * 1024       # first read of a large blob: enough for any header


class ContentAddressedStore:
    """Artifacts by content address in `objects` under `layout`.

    `workers` threads save or load many artifacts at once (uploads and
    existence checks overlap); `verify` re-hashes every loaded blob. Blobs
    smaller than `small_blob` bytes are uploaded without an existence check
    (rewriting a content-addressed blob writes the same bytes).
    """

    def __init__(self, objects: ObjectStore, layout: StoreLayout | None = None, *,
                 workers: int = DEFAULT_WORKERS, verify: bool = True,
                 large_blob: int = LARGE_BLOB, small_blob: int = SMALL_BLOB) -> None:
        self.objects = objects
        self.layout = layout or StoreLayout()
        self.workers = workers
        self.verify = verify
        self.large_blob = large_blob
        self.small_blob = small_blob
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="kflow-cas")
            return self._pool

    def close(self) -> None:
        """Stop the worker threads (they restart on the next parallel call)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def is_known(self, sha256: str) -> bool:
        """Whether this process has stored or loaded the blob `sha256`."""
        with self._lock:
            return sha256 in self._known

    def _remember(self, sha256: str) -> None:
        with self._lock:
            self._known.add(sha256)

    # --------------------------------------------------------------------- save

    def save(self, value: object, name: str = "") -> ArtifactRef:
        """Store `value` unless its blob exists; its ref. `name` is for errors only.

        A blob this process has stored or loaded is not touched again; a small
        one (< `small_blob` bytes) is otherwise written without asking the
        store first (one request instead of two), a larger one only if the
        store does not have it.

        `value` may be an `Encoded` (from `encode`), e.g. one already hashed to
        see whether it changed: it is stored as is, not encoded again.
        """
        encoded = value if isinstance(value, Encoded) else encode(value, name)
        sha = encoded.sha256()
        if not self.is_known(sha):
            key = self.layout.blob(sha)
            if encoded.size < self.small_blob or not self.objects.exists(key):
                self.objects.put_buffers(key, encoded.buffers)
            self._remember(sha)
        return ArtifactRef(sha256=sha, size=encoded.size, type_name=encoded.type_name,
                           encoding=encoded.encoding)

    def save_many(self, values: Mapping[str, object]) -> dict[str, ArtifactRef]:
        """Store many values in parallel; name → ref. One object under several
        names is encoded and stored once."""
        by_id: dict[int, list[str]] = {}
        for name, value in values.items():
            by_id.setdefault(id(value), []).append(name)
        groups = list(by_id.values())
        if len(groups) <= 1:
            refs = [self.save(values[g[0]], g[0]) for g in groups]
        else:
            refs = list(self._executor().map(lambda g: self.save(values[g[0]], g[0]), groups))
        return {name: ref for group, ref in zip(groups, refs, strict=True) for name in group}

    # --------------------------------------------------------------------- load

    def load(self, ref: ArtifactRef | str) -> object:
        """The value stored under `ref` (an `ArtifactRef` or a sha256)."""
        sha = validate_sha256(ref.sha256 if isinstance(ref, ArtifactRef) else ref)
        key = self.layout.blob(sha)
        size = ref.size if isinstance(ref, ArtifactRef) else self.objects.size(key)
        if size <= self.large_blob:
            data = self.objects.get(key)
            self._check(sha, (data,))
            parsed = parse_header(data)
            if isinstance(parsed, int):
                raise CorruptArtifact(f"artifact {sha} is truncated")
            header, start = parsed
            value = decode_payload(header, memoryview(data)[start:])
        else:
            value = self._load_large(sha, key, size)
        self._remember(sha)
        return value

    def _header(self, key: str, size: int) -> tuple[Header, int, bytes]:
        head = self.objects.get_range(key, 0, min(size, _HEAD_PROBE))
        parsed = parse_header(head)
        if isinstance(parsed, int):
            if parsed > size:
                raise CorruptArtifact(f"blob {key} is truncated (header)")
            head = self.objects.get_range(key, 0, parsed)
            parsed = parse_header(head)
            if isinstance(parsed, int):
                raise CorruptArtifact(f"blob {key} has an unreadable header")
        header, start = parsed
        return header, start, head[:start]

    def _load_large(self, sha: str, key: str, size: int) -> object:
        header, start, prefix = self._header(key, size)
        if header.kind == "ndarray" and header.codec is None:
            array, out = empty_ndarray(header)
            if out.nbytes != size - start:
                raise CorruptArtifact(f"artifact {sha}: array payload size does not match "
                                      "its shape and dtype")
            self.objects.readinto(key, out, offset=start)
            self._check(sha, (prefix, out))
            return array
        buf = bytearray(size)
        self.objects.readinto(key, memoryview(buf))
        self._check(sha, (buf,))
        return decode_payload(header, memoryview(buf)[start:])

    def _check(self, sha: str, parts: tuple[Any, ...]) -> None:
        if not self.verify:
            return
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        if digest.hexdigest() != sha:
            raise CorruptArtifact(f"artifact {sha} is corrupt: its bytes hash to "
                                  f"{digest.hexdigest()}")

    def load_many(self, refs: Mapping[str, ArtifactRef | str]) -> dict[str, object]:
        """Load many artifacts in parallel; name → value."""
        names = list(refs)
        if len(names) <= 1:
            return {name: self.load(refs[name]) for name in names}
        values = self._executor().map(lambda n: self.load(refs[n]), names)
        return dict(zip(names, values, strict=True))

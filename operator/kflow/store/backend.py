"""The object-store seam: the `ObjectStore` Protocol every backend implements.

Owns: the byte-level contract between the datastore and a storage backend
(`kflow.store.local.LocalObjectStore`, `kflow.store.s3.S3ObjectStore`). Keys are
'/'-separated strings relative to the store's root (bucket or directory). Tests
wrap this Protocol (e.g. to count puts); nothing above it knows about minio.

Errors: a missing key raises `ObjectNotFound`; a backend that keeps failing
with transient errors raises `StoreUnavailable` after its retry budget.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, TypeAlias, runtime_checkable

__all__ = ["Buffer", "ObjectStore", "total_size"]

# What can be stored without a copy: anything exposing a contiguous byte buffer.
Buffer: TypeAlias = bytes | bytearray | memoryview


def total_size(buffers: Sequence[Buffer]) -> int:
    """The number of bytes in the concatenation of `buffers`."""
    return sum(memoryview(b).nbytes for b in buffers)


@runtime_checkable
class ObjectStore(Protocol):
    """Bytes in and out under string keys. Implementations are thread-safe."""

    def put(self, key: str, data: Buffer) -> None:
        """Store `data` under `key` (replacing it atomically if it exists)."""

    def put_buffers(self, key: str, buffers: Sequence[Buffer]) -> None:
        """Store the concatenation of `buffers` under `key` without joining them.

        This is the streaming / multipart upload: large objects go up in parts,
        in parallel where the backend can, read straight from the buffers
        (e.g. a header plus a numpy array's memory); at most a part-sized copy
        is made where a part straddles two buffers.
        """

    def get(self, key: str) -> bytes:
        """The whole object."""

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` (fewer if the object ends first)."""

    def readinto(self, key: str, buffer: memoryview, offset: int = 0) -> None:
        """Fill writable `buffer` with the object's bytes from `offset` on.

        Large reads are split into parallel ranged GETs that write straight into
        their slice of `buffer`. Raises `CorruptArtifact` if the object is shorter.
        """

    def exists(self, key: str) -> bool:
        """Whether `key` exists."""

    def size(self, key: str) -> int:
        """The size in bytes of the object at `key`."""

    def list(self, prefix: str, recursive: bool = True) -> Iterator[str]:
        """Keys starting with `prefix`, sorted.

        With `recursive=False`, only the level just below `prefix`: object keys
        with no further '/', and "directories" as their prefix ending in '/'.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""

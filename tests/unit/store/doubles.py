"""Test doubles of kflow's own `ObjectStore` Protocol (not of any library)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence

from kflow.store import Buffer, ObjectStore


class CountingStore:
    """Wraps an `ObjectStore` and counts calls per method (and keys written)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.written: list[str] = []
        self._lock = threading.Lock()

    def _count(self, name: str, key: str | None = None) -> None:
        with self._lock:
            self.calls[name] += 1
            if key is not None:
                self.written.append(key)

    @property
    def puts(self) -> int:
        return self.calls["put"] + self.calls["put_buffers"]

    def put(self, key: str, data: Buffer) -> None:
        self._count("put", key)
        self.inner.put(key, data)

    def put_buffers(self, key: str, buffers: Sequence[Buffer]) -> None:
        self._count("put_buffers", key)
        self.inner.put_buffers(key, buffers)

    def get(self, key: str) -> bytes:
        self._count("get")
        return self.inner.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        self._count("get_range")
        return self.inner.get_range(key, offset, length)

    def readinto(self, key: str, buffer: memoryview, offset: int = 0) -> None:
        self._count("readinto")
        self.inner.readinto(key, buffer, offset)

    def exists(self, key: str) -> bool:
        self._count("exists")
        return self.inner.exists(key)

    def size(self, key: str) -> int:
        self._count("size")
        return self.inner.size(key)

    def list(self, prefix: str, recursive: bool = True) -> Iterator[str]:
        self._count("list")
        return self.inner.list(prefix, recursive)

    def delete(self, key: str) -> None:
        self._count("delete")
        self.inner.delete(key)


class FailingStore(CountingStore):
    """Fails every `put` while `failing` is set (to test log-sink resilience)."""

    failing = False

    def put(self, key: str, data: Buffer) -> None:
        if self.failing:
            raise ConnectionError("store down")
        super().put(key, data)

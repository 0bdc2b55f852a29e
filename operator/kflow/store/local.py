"""`LocalObjectStore`: the `ObjectStore` Protocol over a local directory.

Owns: mapping keys to files under a root directory, atomic writes (write a
temp file in the target's directory, fsync-free, then `os.replace`, so a
reader never sees a partial object and a crash leaves no half-written key),
and listing. Used for tests, local runs and `KFLOW_STORE_DIR`. Temp files
are named ``.<name>.tmp-<random>`` and never listed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

from kflow.store.backend import Buffer
from kflow.store.errors import CorruptArtifact, ObjectNotFound

__all__ = ["LocalObjectStore"]

_TMP_MARK = ".tmp-"


class LocalObjectStore:
    """Objects as files under `root` (created if missing)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or "\\" in key:
            raise ValueError(f"invalid object key {key!r}")
        return self.root.joinpath(*parts)

    def put(self, key: str, data: Buffer) -> None:
        self.put_buffers(key, (data,))

    def put_buffers(self, key: str, buffers: Sequence[Buffer]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}{_TMP_MARK}{secrets.token_hex(6)}")
        try:
            with open(tmp, "wb") as out:
                for buf in buffers:
                    out.write(buf)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            with open(self._path(key), "rb") as src:
                src.seek(offset)
                return src.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def readinto(self, key: str, buffer: memoryview, offset: int = 0) -> None:
        view = memoryview(buffer).cast("B")
        try:
            with open(self._path(key), "rb", buffering=0) as src:
                src.seek(offset)
                filled = 0
                while filled < view.nbytes:
                    n = src.readinto(view[filled:])
                    if not n:
                        raise CorruptArtifact(
                            f"object {key!r} ended after {offset + filled} bytes, "
                            f"expected {offset + view.nbytes}")
                    filled += n
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def list(self, prefix: str, recursive: bool = True) -> Iterator[str]:
        # The directory holding every key that starts with `prefix`.
        head, _, _ = prefix.rpartition("/")
        base = self._path(head) if head else self.root
        if not base.is_dir():
            return iter(())
        found: list[str] = []
        if recursive:
            for dirpath, _dirnames, filenames in os.walk(base):
                rel = Path(dirpath).relative_to(self.root).as_posix()
                for name in filenames:
                    if _TMP_MARK in name and name.startswith("."):
                        continue
                    key = name if rel == "." else f"{rel}/{name}"
                    if key.startswith(prefix):
                        found.append(key)
        else:
            rel = base.relative_to(self.root).as_posix()
            for entry in os.scandir(base):
                if entry.name.startswith(".") and _TMP_MARK in entry.name:
                    continue
                key = entry.name if rel == "." else f"{rel}/{entry.name}"
                if entry.is_dir():
                    key += "/"
                if key.startswith(prefix):
                    found.append(key)
        return iter(sorted(found))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

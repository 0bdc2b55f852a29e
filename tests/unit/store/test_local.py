"""LocalObjectStore: the Protocol's contract on a directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from kflow.store import CorruptArtifact, LocalObjectStore, ObjectNotFound, ObjectStore


def test_contract(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "root")
    assert isinstance(store, ObjectStore)
    store.put("a/b/c", b"hello")
    store.put_buffers("a/d", [b"he", memoryview(b"llo"), bytearray(b"!")])
    assert store.get("a/b/c") == b"hello"
    assert store.get("a/d") == b"hello!"
    assert store.get_range("a/d", 1, 3) == b"ell"
    assert store.get_range("a/d", 4, 100) == b"o!"
    buf = bytearray(4)
    store.readinto("a/d", memoryview(buf), offset=2)
    assert buf == b"llo!"
    assert store.exists("a/d") and not store.exists("a/x") and not store.exists("a/b")
    assert store.size("a/d") == 6
    assert list(store.list("a/")) == ["a/b/c", "a/d"]
    assert list(store.list("a/", recursive=False)) == ["a/b/", "a/d"]
    assert list(store.list("a/b")) == ["a/b/c"]
    assert list(store.list("zzz/")) == []
    store.delete("a/d")
    store.delete("a/d")  # missing is fine
    assert not store.exists("a/d")


def test_missing_and_short(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    for call in (lambda: store.get("nope"), lambda: store.size("nope"),
                 lambda: store.get_range("nope", 0, 1)):
        with pytest.raises(ObjectNotFound) as info:
            call()
        assert "nope" in str(info.value)
        assert isinstance(info.value, KeyError)
    store.put("k", b"abc")
    with pytest.raises(CorruptArtifact):
        store.readinto("k", memoryview(bytearray(5)))


def test_writes_are_atomic_and_temp_files_unlisted(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("x/y", b"1")

    class Boom(Exception):
        pass

    class Exploding:
        def __buffer__(self, flags: int) -> memoryview:
            raise Boom

    with pytest.raises(TypeError):
        store.put_buffers("x/y", [b"22", Exploding()])  # type: ignore[list-item]
    assert store.get("x/y") == b"1"  # the old value survives a failed write
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["y"]  # no temp left
    (tmp_path / "x" / ".y.tmp-abc").write_bytes(b"partial")
    assert list(store.list("x/")) == ["x/y"]


@pytest.mark.parametrize("bad", ["", "/abs", "a//b", "a/../b", "a/./b", "a\\b"])
def test_invalid_keys(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        LocalObjectStore(tmp_path).put(bad, b"x")

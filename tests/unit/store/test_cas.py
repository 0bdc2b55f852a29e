"""Content-addressed artifacts: dedup, parallel batches, large blobs, integrity."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

from kflow.store import (
    CorruptArtifact,
    Datastore,
    LocalObjectStore,
    StoreLayout,
    UnpicklableArtifact,
)
from kflow.store.cas import SMALL_BLOB, ContentAddressedStore
from tests.unit.store.doubles import CountingStore


@pytest.fixture
def counting(tmp_path: Path) -> CountingStore:
    return CountingStore(LocalObjectStore(tmp_path))


def test_address_is_sha256_of_stored_bytes(counting: CountingStore, tmp_path: Path) -> None:
    ref = Datastore(counting).save({"a": 1})
    stored = (tmp_path / "data" / ref.sha256[:2] / ref.sha256).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == ref.sha256
    assert len(stored) == ref.size


def test_same_value_twice_is_stored_once(counting: CountingStore, tmp_path: Path) -> None:
    store = Datastore(counting)
    value = np.random.default_rng(2).random(40_000)  # 320 KB: above SMALL_BLOB, checked first
    first = store.save(value, "a")
    assert counting.puts == 1
    second = store.save(value.copy(), "b")
    assert second == first
    assert counting.puts == 1  # nothing uploaded the second time
    assert counting.calls["exists"] == 1  # and the address was remembered, not re-checked
    assert len(list(counting.list("data/"))) == 1


def test_another_process_finds_existing_blob(counting: CountingStore) -> None:
    value = np.random.default_rng(3).bytes(SMALL_BLOB + 1)  # above SMALL_BLOB
    Datastore(counting).save(value)
    puts = counting.puts
    other = Datastore(counting)  # a second task: no in-process memory of the blob
    other.save(value)
    assert counting.puts == puts
    assert counting.calls["exists"] == 2


def test_small_blobs_are_written_without_an_existence_check(counting: CountingStore) -> None:
    small = np.arange(1000)                                     # 8 KB
    large = np.random.default_rng(1).random(SMALL_BLOB // 8 + 1)  # just over SMALL_BLOB
    index = Datastore(counting).save_many({"small": small, "n": 7, "large": large})
    assert index["small"].size < SMALL_BLOB <= index["large"].size
    assert counting.calls["exists"] == 1          # the large blob only
    assert counting.puts == 3
    other = Datastore(counting)  # a second task: the small blobs are rewritten, not checked
    assert other.save(small) == index["small"] and other.save(7) == index["n"]
    assert counting.calls["exists"] == 1 and counting.puts == 5
    other.save(small)            # remembered in this process: neither checked nor written
    assert other.save(large) == index["large"]   # checked, found, not written
    assert counting.calls["exists"] == 2 and counting.puts == 5
    assert len(list(counting.list("data/"))) == 3
    assert other.load_many(index)["n"] == 7


def test_small_blob_threshold_is_configurable(counting: CountingStore) -> None:
    cas = ContentAddressedStore(counting, small_blob=0)  # always check, as before
    cas.save("x")
    assert counting.calls["exists"] == 1 and counting.puts == 1


def test_one_object_under_two_names_is_encoded_once(counting: CountingStore) -> None:
    big = np.random.default_rng(0).random(10_000)
    index = Datastore(counting).save_many({"a": big, "b": big, "c": 1})
    assert index["a"] == index["b"]
    assert counting.puts == 2


def test_many_small_artifacts_in_parallel(counting: CountingStore) -> None:
    store = Datastore(counting, workers=8)
    values = {f"v{i}": i * 1000 for i in range(300)}
    seen_threads: set[str] = set()
    original = counting.put_buffers

    def record(key: str, buffers: object) -> None:
        seen_threads.add(threading.current_thread().name)
        original(key, buffers)  # type: ignore[arg-type]

    counting.put_buffers = record  # type: ignore[method-assign]
    index = store.save_many(values)
    assert len(index) == 300 and counting.puts == 300
    assert len(seen_threads) > 1
    assert store.load_many(index) == values
    assert store.load_many(index, names=["v3"]) == {"v3": 3000}


def test_large_array_is_read_into_place(counting: CountingStore) -> None:
    cas = ContentAddressedStore(counting, StoreLayout(), large_blob=1024)
    array = np.asfortranarray(np.random.default_rng(2).random((300, 200)))
    ref = cas.save(array)
    loaded = cas.load(ref)
    assert isinstance(loaded, np.ndarray)
    assert np.array_equal(loaded, array) and loaded.flags.f_contiguous
    assert counting.calls["readinto"] == 1 and counting.calls["get"] == 0
    compressible = np.zeros(100_000)
    assert np.array_equal(cas.load(cas.save(compressible)), compressible)
    text = "x" * 5000
    assert cas.load(cas.save(text)) == text


def test_load_by_sha_alone(tmp_path: Path) -> None:
    store = Datastore(LocalObjectStore(tmp_path))
    ref = store.save([1, 2, 3])
    assert Datastore(LocalObjectStore(tmp_path)).load(ref.sha256) == [1, 2, 3]


def test_corruption_is_detected(tmp_path: Path) -> None:
    store = Datastore(LocalObjectStore(tmp_path))
    ref = store.save(b"important" * 100)
    path = tmp_path / "data" / ref.sha256[:2] / ref.sha256
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptArtifact):
        Datastore(LocalObjectStore(tmp_path)).load(ref)


def test_unpicklable_in_a_batch_names_it(tmp_path: Path) -> None:
    store = Datastore(LocalObjectStore(tmp_path))
    with pytest.raises(UnpicklableArtifact) as info:
        store.save_many({"ok": 1, "conn": threading.Lock(), "ok2": 2})
    assert "'conn'" in str(info.value) and "lock" in str(info.value)


def test_an_encoded_value_is_not_encoded_again(counting: CountingStore) -> None:
    from kflow.store import encode

    encoded = encode({"model": [1, 2, 3]}, "model")
    sha = encoded.sha256()  # e.g. the runner checking whether a value changed
    assert encoded.sha256() is sha  # remembered
    ref = Datastore(counting).save(encoded, "model")
    assert ref.sha256 == sha and ref.type_name == "dict"
    assert Datastore(counting).load(ref) == {"model": [1, 2, 3]}

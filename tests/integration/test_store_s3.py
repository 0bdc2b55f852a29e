"""kflow.store against a real S3 server: large multipart transfers, dedup,
many small artifacts, logs, and StoreUnavailable when the server is gone."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from kflow.store import (
    Datastore,
    ObjectNotFound,
    RetryPolicy,
    S3ObjectStore,
    StoreLayout,
    StoreUnavailable,
    TaskKey,
    TaskMetadata,
    store_from_env,
)
from kflow.store.s3 import S3Config
from tests.integration.conftest import S3Server, start_s3_server
from tests.unit.store.doubles import CountingStore

MiB = 1 << 20


class ThreadRecordingStore(S3ObjectStore):
    """Records which threads ran ranged GETs (to see that downloads are parallel)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.get_threads: set[str] = set()
        self.ranges: list[tuple[int, int]] = []

    def _read_range_into(self, key: str, out: memoryview, offset: int) -> None:
        self.get_threads.add(threading.current_thread().name)
        self.ranges.append((offset, out.nbytes))
        super()._read_range_into(key, out, offset)


def config(server: S3Server) -> S3Config:
    c = server.creds
    return S3Config(c.endpoint, c.access_key, c.secret_key, c.bucket, c.region)


def fresh_prefix() -> StoreLayout:
    return StoreLayout.from_prefix(f"test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def objects(s3_server: S3Server) -> S3ObjectStore:
    return S3ObjectStore(config(s3_server), part_size=8 * MiB)


def test_large_array_multipart_round_trip(s3_server: S3Server) -> None:
    objects = ThreadRecordingStore(config(s3_server), part_size=8 * MiB, workers=4)
    store = Datastore(objects, fresh_prefix())
    array = np.random.default_rng(7).random(8 * MiB)  # 64 MiB of float64
    started = time.perf_counter()
    ref = store.save(array, "big")
    saved = time.perf_counter()
    assert ref.encoding == "ndarray" and ref.size > array.nbytes
    stat = objects.client.stat_object(objects.bucket, store.layout.blob(ref.sha256))
    assert stat.etag is not None and stat.etag.endswith("-9")  # 8 full parts + the header's
    loaded = Datastore(objects, store.layout).load(ref)
    loaded_at = time.perf_counter()
    assert isinstance(loaded, np.ndarray)
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    assert loaded.tobytes() == array.tobytes()  # bit-exact
    assert len(objects.get_threads) > 1  # parallel ranged GETs
    print(f"64 MiB: save {saved - started:.2f} s, load {loaded_at - saved:.2f} s")


def test_ranged_parallel_readinto(objects: S3ObjectStore) -> None:
    data = np.random.default_rng(3).integers(0, 256, 30 * MiB + 123, dtype=np.uint8)
    key = f"{fresh_prefix().prefix}raw"
    objects.put_buffers(key, [b"head", memoryview(data), b"tail"])
    assert objects.size(key) == data.nbytes + 8
    out = np.empty(20 * MiB, dtype=np.uint8)
    objects.readinto(key, memoryview(out), offset=4 + 3 * MiB)
    assert np.array_equal(out, data[3 * MiB:23 * MiB])
    assert objects.get_range(key, 0, 4) == b"head"
    assert objects.get_range(key, data.nbytes + 4, 100) == b"tail"


def test_dedup_across_two_tasks(objects: S3ObjectStore) -> None:
    layout = fresh_prefix()
    value = {"weights": np.arange(100_000, dtype=np.float32), "name": "model"}
    first = CountingStore(objects)
    ref1 = Datastore(first, layout).save(value, "model")
    assert first.puts == 1
    second = CountingStore(objects)  # another task, another process: no shared memory
    ref2 = Datastore(second, layout).save(value, "model")
    assert ref2 == ref1
    assert second.puts == 0 and second.calls["exists"] == 1
    assert len(list(objects.list(layout.data_prefix))) == 1


def test_many_small_artifacts_in_one_call(objects: S3ObjectStore) -> None:
    store = Datastore(objects, fresh_prefix(), workers=16)
    values = {f"metric_{i}": {"i": i, "score": i / 7} for i in range(1000)}
    started = time.perf_counter()
    index = store.save_many(values)
    elapsed = time.perf_counter() - started
    assert len(index) == 1000
    assert len(list(objects.list(store.layout.data_prefix))) == 1000
    loaded = store.load_many(index)
    assert loaded == values
    print(f"1000 small artifacts: save {elapsed:.2f} s")


def test_task_attempt_records_and_logs(s3_server: S3Server, tmp_path: Path) -> None:
    creds_file = tmp_path / "s3-credentials.json"
    c = s3_server.creds
    creds_file.write_text(json.dumps({"endpoint": c.endpoint, "accessKey": c.access_key,
                                      "secretKey": c.secret_key, "bucket": c.bucket,
                                      "region": c.region}))
    prefix = fresh_prefix().prefix
    store = store_from_env({"KFLOW_S3_CREDENTIALS": str(creds_file), "KFLOW_S3_PREFIX": prefix})
    task = TaskKey("default", "TrainFlow", "train-0123abcd", "fit", "2.1")
    key = task.attempt(0)
    writer = store.attempt(key)
    meta = TaskMetadata.collect(0, "a" * 64, time.time())
    writer.begin(meta)
    with writer.log_sink("stdout", interval=0.1) as out:
        out.write(b"epoch 1\n")
        deadline = time.monotonic() + 10
        while store.read_log(key, "stdout") != b"epoch 1\n":  # readable while running
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert store.latest_done_attempt(task) is None
        out.write(b"epoch 2\n")
    writer.save_artifacts({"acc": 0.93, "model": b"\0" * 100_000})
    writer.finish(meta.finished(time.time(), 0))
    assert store.latest_done_attempt(task) == 0
    assert store.read_log(key, "stdout") == b"epoch 1\nepoch 2\n"
    assert store.load_many(store.read_index(key)) == {"acc": 0.93, "model": b"\0" * 100_000}
    assert store.list_tasks("default", "TrainFlow", "train-0123abcd", "fit") == ["2.1"]
    assert store.read_meta(key).succeeded
    segments = list(store.objects.list(store.layout.log_prefix(key, "stdout")))
    assert all(s.startswith(prefix) for s in segments) and len(segments) >= 2
    with pytest.raises(ObjectNotFound):
        store.read_meta(task.attempt(1))


def test_store_unavailable_when_server_stopped(tmp_path: Path) -> None:
    server = start_s3_server(tmp_path)
    try:
        policy = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.1, deadline=10)
        store = Datastore(S3ObjectStore(config(server), retry=policy, connect_timeout=1,
                                        read_timeout=2))
        ref = store.save(b"before the outage")
    finally:
        server.stop()
    assert not server.running()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        store.load(ref)
    assert time.monotonic() - started < 10
    assert "3 times" in str(info.value)
    with pytest.raises(StoreUnavailable):
        store.save(b"during the outage")

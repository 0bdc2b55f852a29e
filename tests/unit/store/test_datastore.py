"""Task attempt records: DONE semantics, listing, metadata, logs before DONE."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from kflow.store import (
    CorruptArtifact,
    Datastore,
    LocalObjectStore,
    StoreError,
    TaskKey,
    TaskMetadata,
)

TASK = TaskKey("default", "TrainFlow", "train-1a2b3c4d", "fit", "0")


@pytest.fixture
def store(tmp_path: Path) -> Datastore:
    return Datastore(LocalObjectStore(tmp_path))


def run_attempt(store: Datastore, task: TaskKey, attempt: int, values: dict[str, object],
                done: bool = True, error: BaseException | None = None) -> None:
    key = task.attempt(attempt)
    writer = store.attempt(key)
    meta = TaskMetadata.collect(attempt, "c" * 64, time.time())
    writer.begin(meta)
    writer.save_artifacts(values)
    if done:
        writer.finish(meta.finished(time.time(), 1 if error else 0, error))


def test_attempt_without_done_is_invisible(store: Datastore) -> None:
    run_attempt(store, TASK, 0, {"x": 1}, done=False)
    assert store.latest_done_attempt(TASK) is None
    assert store.list_attempts(TASK) == {0: False}
    assert not store.is_done(TASK.attempt(0))


def test_latest_done_attempt_wins(store: Datastore) -> None:
    run_attempt(store, TASK, 0, {"x": 0})
    run_attempt(store, TASK, 1, {"x": 1})
    run_attempt(store, TASK, 2, {"x": 2}, done=False)  # still running / crashed
    assert store.latest_done_attempt(TASK) == 1
    index = store.read_index(TASK.attempt(1))
    assert store.load(index["x"]) == 1
    run_attempt(store, TASK, 10, {"x": 10})  # numeric, not lexicographic
    assert store.latest_done_attempt(TASK) == 10
    assert list(store.list_attempts(TASK)) == [0, 1, 2, 10]


def test_done_is_written_last(tmp_path: Path) -> None:
    from tests.unit.store.doubles import CountingStore

    counting = CountingStore(LocalObjectStore(tmp_path))
    run_attempt(Datastore(counting), TASK, 0, {"x": 1})
    assert counting.written[-1].endswith("/0/DONE")
    names = [k.rsplit("/", 1)[-1] for k in counting.written]
    assert names.index("artifacts.json") < names.index("DONE")


def test_metadata_round_trip_and_failure(store: Datastore) -> None:
    try:
        raise ValueError("bad input")
    except ValueError as exc:
        run_attempt(store, TASK, 0, {}, error=exc)
    meta = store.read_meta(TASK.attempt(0))
    assert meta.exit_status == 1 and not meta.succeeded
    assert meta.exception is not None
    assert meta.exception.type == "builtins.ValueError"
    assert "bad input" in meta.exception.message
    assert "Traceback" in meta.exception.traceback
    assert "raise ValueError" in meta.exception.traceback
    assert meta.code_sha256 == "c" * 64 and meta.python_version and meta.cloudpickle_version
    assert meta.finished_at is not None and meta.finished_at >= meta.started_at
    assert TaskMetadata.from_json(meta.to_json()) == meta


def test_started_attempt_has_meta_before_done(store: Datastore) -> None:
    run_attempt(store, TASK, 0, {}, done=False)
    meta = store.read_meta(TASK.attempt(0))
    assert meta.finished_at is None and meta.exit_status is None


def test_list_tasks_and_steps(store: Datastore) -> None:
    for task in ("10", "2", "2.1", "0", "2.0"):
        run_attempt(store, TaskKey("default", "F", "r1", "inner", task), 0, {})
    run_attempt(store, TaskKey("default", "F", "r1", "start"), 0, {})
    run_attempt(store, TaskKey("default", "F", "r2", "start"), 0, {})
    assert store.list_tasks("default", "F", "r1", "inner") == ["0", "2", "2.0", "2.1", "10"]
    assert store.list_steps("default", "F", "r1") == ["inner", "start"]
    assert store.list_tasks("default", "F", "r1", "missing") == []


def test_inherited_refs_are_indexed(store: Datastore) -> None:
    parent = store.save_many({"a": 1, "b": 2})
    writer = store.attempt(TASK.attempt(0))
    writer.add_refs(parent)
    writer.save_artifacts({"b": 3})
    meta = TaskMetadata.collect(0, None, time.time())
    writer.finish(meta.finished(time.time(), 0))
    index = store.read_index(TASK.attempt(0))
    assert store.load_many(index) == {"a": 1, "b": 3}


def test_code_packages(store: Datastore) -> None:
    data = b"fake tar.gz"
    sha = hashlib.sha256(data).hexdigest()
    assert store.put_code_package(sha, data) == f"code/{sha}.tar.gz"
    assert store.get_code_package(sha) == data
    with pytest.raises(StoreError):
        store.put_code_package("0" * 64, data)
    store.objects.put(f"code/{'1' * 64}.tar.gz", b"x")
    with pytest.raises(CorruptArtifact):
        store.get_code_package("1" * 64)


def test_clone_attempt_copies_the_records_not_the_data(store: Datastore) -> None:
    origin = TaskKey("default", "TrainFlow", "train-1-aaaa", "fit", "0")
    clone = TaskKey("default", "TrainFlow", "train-2-bbbb", "fit", "0")
    run_attempt(store, origin, 100, {"model": [1, 2, 3]})
    meta = store.clone_attempt(origin.attempt(100), clone.attempt(0))
    assert meta.extra["cloned_from"] == "TrainFlow/train-1-aaaa/fit/0/100"
    assert store.latest_done_attempt(clone) == 0
    assert store.read_index(clone.attempt(0)) == store.read_index(origin.attempt(100))
    index = store.read_index(clone.attempt(0))
    assert store.load(index["model"]) == [1, 2, 3]
    assert store.read_meta(clone.attempt(0)).succeeded
    assert store.clone_attempt(origin.attempt(100), clone.attempt(0)) == meta  # idempotent
    with pytest.raises(StoreError, match="no DONE marker"):
        store.clone_attempt(origin.attempt(7), clone.attempt(0))


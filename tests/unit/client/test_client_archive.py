"""The client API over the store alone (a local store directory: a real store, no
cluster): what the archive of finished runs answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import kflow.client as client
from kflow.client import Flow, KflowNotFound, Run, Source, Task
from kflow.store import Datastore, LocalObjectStore, TaskKey, TaskMetadata
from kflow.store.records import ExceptionInfo

NS = "ml"


def _task(store: Datastore, run_id: str, step: str, task: str = "0", *, attempt: int = 0,
          started: float, values: dict[str, object] | None = None, ok: bool | None = True,
          extra: dict[str, str] | None = None) -> None:
    """One attempt as the runner records it (ok None: started, never committed)."""
    writer = store.attempt(TaskKey(NS, "TrainFlow", run_id, step, task).attempt(attempt))
    meta = TaskMetadata(attempt=attempt, started_at=started, user="alice", host="node",
                        code_sha256=None, python_version="3.11", cloudpickle_version="3",
                        kflow_version="0.1.0", extra=extra or {})
    writer.begin(meta)
    if ok is None:
        return
    writer.save_artifacts(values or {})
    error = None if ok else ExceptionInfo("builtins.ValueError", "bad", "Traceback ...")
    writer.finish(meta.finished(started + 1, 0 if ok else 1, error))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Datastore]:
    store = Datastore(LocalObjectStore(tmp_path))
    params = {"extra": {"parameters": json.dumps({"epochs": "epochs"}), "tags": "nightly"}}
    # r1: succeeded; r2: failed in train; r3: still running (no end)
    _task(store, "r1-aaaaaaaa", "start", started=100, values={"epochs": 2}, **params)
    for i in range(3):
        _task(store, "r1-aaaaaaaa", "train", str(i), started=101,
              values={"score": i / 10}, extra={"foreach_index": str(i)})
    _task(store, "r1-aaaaaaaa", "end", started=103, values={"model": "m1"})
    _task(store, "r2-bbbbbbbb", "start", started=200, values={"epochs": 3}, **params)
    _task(store, "r2-bbbbbbbb", "train", started=201, ok=False)
    _task(store, "r2-bbbbbbbb", "train", attempt=1, started=202, ok=False)
    _task(store, "r3-cccccccc", "start", started=300, values={"epochs": 4}, **params)
    _task(store, "r3-cccccccc", "end", started=301, ok=None)
    client.set_source(Source(store, NS, None))
    yield store
    client.namespace(None)
    client.set_source(None)


def test_runs_newest_first_with_status_from_the_end_task(store: Datastore) -> None:
    runs = list(Flow("TrainFlow"))
    assert [r.id for r in runs] == ["r3-cccccccc", "r2-bbbbbbbb", "r1-aaaaaaaa"]
    assert [r.status for r in runs] == ["Unknown", "Unknown", "Succeeded"]
    assert [r.finished for r in runs] == [False, False, True]
    assert Flow("TrainFlow").latest_successful_run.id == "r1-aaaaaaaa"  # type: ignore[union-attr]
    assert Flow("TrainFlow").latest_run.id == "r3-cccccccc"  # type: ignore[union-attr]
    r1 = Run("TrainFlow/r1-aaaaaaaa")
    assert r1.flowrun is None and r1.user == "alice"
    assert r1.data is not None and r1.data.model == "m1"
    assert r1.parameters == {"epochs": 2}
    assert r1.created_at.timestamp() == 100 and r1.finished_at.timestamp() == 104  # type: ignore[union-attr]
    assert r1.tags == {"nightly", "runtime:kflow", "user:alice"}
    assert Flow("TrainFlow")["r1"].id == "r1-aaaaaaaa"     # a deleted FlowRun's name


def test_steps_tasks_attempts_and_exceptions(store: Datastore) -> None:
    r1 = Run("TrainFlow/r1-aaaaaaaa")
    assert [s.id for s in r1] == ["end", "train", "start"]
    train = r1["train"]
    assert len(train) == 3 and [t.index for t in train] == [0, 1, 2]
    assert r1["start"].task.index is None
    assert [t.data.score for t in train] == [0.0, 0.1, 0.2]
    failed = Task("TrainFlow/r2-bbbbbbbb/train/0")
    assert failed.current_attempt == 1 and failed.finished and not failed.successful
    assert failed.exception is not None and failed.exception.type == "builtins.ValueError"
    assert Task("TrainFlow/r2-bbbbbbbb/train/0", attempt=0).current_attempt == 0
    running = Task("TrainFlow/r3-cccccccc/end/0")
    assert not running.finished and running.finished_at is None and list(running) == []
    with pytest.raises(KflowNotFound, match="attempt 5"):
        Task("TrainFlow/r2-bbbbbbbb/train/0", attempt=5)
    with pytest.raises(KeyError, match="no step"):
        r1["nope"]


def test_tags_outlive_the_run_and_namespaces_filter(store: Datastore) -> None:
    Run("TrainFlow/r2-bbbbbbbb").add_tags(["bad", "look"])
    Run("TrainFlow/r2-bbbbbbbb").remove_tag("look")
    assert [r.id for r in Flow("TrainFlow").runs("bad")] == ["r2-bbbbbbbb"]
    assert Run("TrainFlow/r2-bbbbbbbb").user_tags == {"nightly", "bad"}
    Run("TrainFlow/r2-bbbbbbbb").remove_tag("nightly")     # a tag given at start
    assert "nightly" not in Run("TrainFlow/r2-bbbbbbbb").tags
    client.namespace("user:alice")
    assert len(list(Flow("TrainFlow"))) == 3
    client.namespace("user:bob")
    with pytest.raises(client.KflowNamespaceMismatch):
        Flow("TrainFlow")
    with pytest.raises(client.KflowNamespaceMismatch):
        Run("TrainFlow/r1-aaaaaaaa")


def test_missing_things_say_what_to_write(store: Datastore) -> None:
    with pytest.raises(KflowNotFound, match="does not exist"):
        Flow("OtherFlow")
    with pytest.raises(KflowNotFound, match="looks like 'Flow/run_id/step'"):
        client.Step("TrainFlow/r1")
    with pytest.raises(KflowNotFound, match="no run with that run id"):
        Run("TrainFlow/r9")
    with pytest.raises(client.ClientError, match="system tag"):
        Run("TrainFlow/r1-aaaaaaaa").add_tag("user:mallory")

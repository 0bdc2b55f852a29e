"""A ``resumeFrom`` run's runner reads a cloned parent from the origin run (local store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kflow.runner.inputs import TaskRef
from kflow.runner.loading import CLONED_ATTEMPT, RunReader
from kflow.store import Datastore, LocalObjectStore, TaskKey
from tests.unit.store.test_datastore import run_attempt


@pytest.fixture
def store(tmp_path: Path) -> Datastore:
    return Datastore(LocalObjectStore(tmp_path))


def test_a_resume_from_reader_clones_a_parent_missing_in_its_run(store: Datastore) -> None:
    origin = TaskKey("default", "TrainFlow", "train-1-aaaa", "fit", "0")
    run_attempt(store, origin, 0, {"model": "m"})
    failed = TaskKey("default", "TrainFlow", "train-1-aaaa", "score", "0")
    run_attempt(store, failed, 0, {}, error=RuntimeError("boom"))
    reader = RunReader(store, "default", "TrainFlow", "train-2-bbbb", "train-1-aaaa")
    attempt, meta = reader.done(TaskRef("fit", ())) or (None, None)
    assert attempt == CLONED_ATTEMPT and meta is not None and meta.succeeded
    mine = TaskKey("default", "TrainFlow", "train-2-bbbb", "fit", "0")
    assert store.latest_done_attempt(mine) == CLONED_ATTEMPT
    assert reader.done(TaskRef("score", ())) is None        # failed there: not cloned
    assert RunReader(store, "default", "TrainFlow", "train-3-cccc").done(
        TaskRef("fit", ())) is None                          # no origin: nothing to clone

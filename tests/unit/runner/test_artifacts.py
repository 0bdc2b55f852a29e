"""Lazy parent artifacts, merges by reference and what a task persists (kflow.runner.artifacts)."""

from __future__ import annotations

from typing import Any

import pytest

from kflow import FlowSpec, Parameter, step
from kflow.exceptions import UnhandledInMergeArtifactsException
from kflow.inputs import Inputs
from kflow.runner.artifacts import TaskArtifacts, attach, plan_persist, task_flow_class
from kflow.store import ArtifactRef, encode


class FakeStore:
    """Values by content address; counts loads."""

    def __init__(self) -> None:
        self.blobs: dict[str, Any] = {}
        self.loads: list[str] = []

    def save(self, value: Any) -> ArtifactRef:
        encoded = encode(value)
        sha = encoded.sha256()
        self.blobs[sha] = value
        return ArtifactRef(sha, encoded.size, encoded.type_name, encoded.encoding)

    def index(self, **values: Any) -> dict[str, ArtifactRef]:
        return {name: self.save(value) for name, value in values.items()}

    def load(self, ref: ArtifactRef) -> Any:
        self.loads.append(ref.sha256)
        return self.blobs[ref.sha256]


class LazyFlow(FlowSpec):
    rate = Parameter("rate", default=0.5)
    UNIT = "cm"

    @step
    def start(self):  # type: ignore[no-untyped-def]
        self.next(self.a, self.b)

    @step
    def a(self):  # type: ignore[no-untyped-def]
        self.next(self.join)

    @step
    def b(self):  # type: ignore[no-untyped-def]
        self.next(self.join)

    @step
    def join(self, inputs):  # type: ignore[no-untyped-def]
        self.next(self.end)

    @step
    def end(self):  # type: ignore[no-untyped-def]
        pass


def child(store: FakeStore, refs: dict[str, ArtifactRef], origin: str | None = "step 'a' (task 0), "
          "the parent of 'end'", params: dict[str, str] | None = None) -> FlowSpec:
    flow = task_flow_class(LazyFlow)(use_cli=False)
    attach(flow, TaskArtifacts(refs, store, origin), params)
    return flow


def test_task_class_looks_like_the_users() -> None:
    cls = task_flow_class(LazyFlow)
    assert cls.__name__ == "LazyFlow" and issubclass(cls, LazyFlow)
    assert task_flow_class(LazyFlow) is cls
    assert cls(use_cli=False).name == "LazyFlow"


def test_artifacts_load_on_first_touch_only() -> None:
    store = FakeStore()
    flow = child(store, store.index(model={"w": 1}, big=list(range(1000))))
    assert store.loads == []
    assert flow.model == {"w": 1}  # type: ignore[attr-defined]
    assert flow.model == {"w": 1}  # type: ignore[attr-defined]
    assert len(store.loads) == 1
    assert hasattr(flow, "big") and len(store.loads) == 2
    assert not hasattr(flow, "nothing")


def test_missing_artifact_names_the_parent() -> None:
    store = FakeStore()
    flow = child(store, {}, origin="step 'train' (task 3), the parent of 'choose'")
    with pytest.raises(AttributeError) as info:
        flow.model  # type: ignore[attr-defined]  # noqa: B018
    assert str(info.value) == ("artifact 'model' was not set by step 'train' (task 3), "
                               "the parent of 'choose'")


def test_parameters_are_read_from_the_start_tasks_artifacts() -> None:
    store = FakeStore()
    flow = child(store, store.index(rate=0.25), params={"rate": "rate"})
    assert store.loads == []
    assert flow.rate == 0.25  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="read-only"):
        flow.rate = 1  # type: ignore[attr-defined]
    assert flow.UNIT == "cm"  # type: ignore[attr-defined]


def test_persist_uploads_only_what_changed() -> None:
    store = FakeStore()
    refs = store.index(untouched=[1], read_only="text", grown=[1, 2], replaced=5, dropped=9)
    flow = child(store, refs)
    assert flow.read_only == "text"  # type: ignore[attr-defined]
    flow.grown.append(3)  # type: ignore[attr-defined]
    flow.replaced = 6  # type: ignore[attr-defined]
    flow.new = "n"  # type: ignore[attr-defined]
    del flow.dropped  # type: ignore[attr-defined]
    hashed: list[str] = []

    def sha_of(value: Any, name: str) -> str:
        hashed.append(name)
        return encode(value, name).sha256()

    plan = plan_persist(flow, sha_of)
    assert plan.values == {"grown": [1, 2, 3], "replaced": 6, "new": "n"}
    assert plan.carried == {"untouched": refs["untouched"], "read_only": refs["read_only"]}
    assert hashed == ["grown"]  # immutable values are never re-hashed
    with pytest.raises(AttributeError):
        del flow.never_there  # type: ignore[attr-defined]


def test_persist_skips_bookkeeping() -> None:
    store = FakeStore()
    flow = child(store, {})
    flow._run_step("end")
    plan = plan_persist(flow, lambda v, n: "")
    assert set(plan.values) == {"_current_step", "_transition", "_foreach_var",
                                "_foreach_num_splits"}


def join_with(store: FakeStore, a: dict[str, Any], b: dict[str, Any]) -> tuple[FlowSpec, Inputs]:
    inputs = []
    for name, values in (("a", a), ("b", b)):
        flow = child(store, store.index(**values), origin=f"step '{name}'")
        flow.__dict__["_current_step"] = name
        inputs.append(flow)
    join = child(store, {}, origin=None)
    join._current_step = "join"
    return join, Inputs(inputs)


def test_merge_artifacts_copies_refs_without_loading() -> None:
    store = FakeStore()
    join, inputs = join_with(store, {"x": [1], "same": "s", "only_a": 1},
                             {"x": [2], "same": "s", "only_b": 2})
    join.x = "mine"  # type: ignore[attr-defined]
    join.merge_artifacts(inputs)
    assert store.loads == []
    plan = plan_persist(join, lambda v, n: "")
    assert plan.values["x"] == "mine"
    assert plan.carried == {
        "same": store.index(same="s")["same"],
        "only_a": store.index(only_a=1)["only_a"],
        "only_b": store.index(only_b=2)["only_b"],
    }
    assert join.only_b == 2  # type: ignore[attr-defined]  # readable after the merge
    assert len(store.loads) == 1


def test_merge_conflict_points_at_the_users_call() -> None:
    store = FakeStore()
    join, inputs = join_with(store, {"x": [1]}, {"x": [2]})
    with pytest.raises(UnhandledInMergeArtifactsException) as info:
        join.merge_artifacts(inputs)
    assert info.value.file == __file__
    assert info.value.artifacts == ["x"]
    assert store.loads == []


def test_merge_exclude_and_inputs_by_step() -> None:
    store = FakeStore()
    join, inputs = join_with(store, {"x": [1], "y": 1}, {"x": [2], "y": 1})
    join.merge_artifacts(inputs, exclude=["x"])
    assert join.y == 1  # type: ignore[attr-defined]
    assert inputs.a.x == [1] and inputs.b.x == [2]  # type: ignore[attr-defined]


class BatchStore(FakeStore):
    """A FakeStore that also loads batches (as the Datastore does)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def load_many(self, refs: dict[str, ArtifactRef]) -> dict[str, Any]:
        self.batches.append(list(refs))
        return {name: self.blobs[ref.sha256] for name, ref in refs.items()}


def test_many_lazy_reads_switch_to_read_ahead_batches() -> None:
    from kflow.runner.artifacts import READAHEAD_AFTER, READAHEAD_BATCH

    store = BatchStore()
    count = READAHEAD_AFTER + 2 * READAHEAD_BATCH
    refs = store.index(**{f"a{i:04d}": i for i in range(count)})
    flow = child(store, refs)
    for i in range(READAHEAD_AFTER):
        assert getattr(flow, f"a{i:04d}") == i
    assert len(store.loads) == READAHEAD_AFTER and store.batches == []  # one at a time so far
    assert sum(getattr(flow, f"a{i:04d}") for i in range(count)) == count * (count - 1) // 2
    assert len(store.loads) == READAHEAD_AFTER
    assert [len(b) for b in store.batches] == [READAHEAD_BATCH, READAHEAD_BATCH]
    view = flow.__dict__["_kflow_view"]
    assert len(view.loaded) == count
    assert plan_persist(flow, lambda value, name: "unused").carried == refs


def test_read_ahead_values_count_as_loaded_only_once_read() -> None:
    from kflow.runner.artifacts import READAHEAD_AFTER

    store = BatchStore()
    refs = store.index(**{f"a{i:03d}": [i] for i in range(READAHEAD_AFTER + 10)})
    flow = child(store, refs)
    for i in range(READAHEAD_AFTER + 1):
        getattr(flow, f"a{i:03d}")
    assert len(store.batches) == 1  # the rest was read ahead
    view = flow.__dict__["_kflow_view"]
    assert len(view.loaded) == READAHEAD_AFTER + 1
    del flow.a020  # type: ignore[attr-defined]
    plan = plan_persist(flow, lambda value, name: encode(value, name).sha256())
    assert plan.values == {} and set(plan.carried) == set(refs) - {"a020"}


def test_a_failing_batch_falls_back_to_one_at_a_time() -> None:
    from kflow.runner.artifacts import READAHEAD_AFTER

    class Broken(BatchStore):
        def load_many(self, refs: dict[str, ArtifactRef]) -> dict[str, Any]:
            super().load_many(refs)
            raise ModuleNotFoundError("a value's class is not importable here")

    store = Broken()
    refs = store.index(**{f"a{i:03d}": i for i in range(READAHEAD_AFTER + 10)})
    flow = child(store, refs)
    assert [getattr(flow, name) for name in refs] == list(range(len(refs)))
    assert len(store.batches) == 1 and len(store.loads) == len(refs)


def test_no_read_ahead_from_a_local_store(tmp_path: Any) -> None:
    from kflow.runner.artifacts import READAHEAD_AFTER
    from kflow.store import Datastore, LocalObjectStore

    store = Datastore(LocalObjectStore(tmp_path))
    refs = dict(store.save_many({f"a{i:03d}": i for i in range(READAHEAD_AFTER + 10)}))
    calls: list[int] = []
    store.load_many = lambda *a, **k: calls.append(1) or {}  # type: ignore[method-assign]
    flow = child(store, refs)  # type: ignore[arg-type]
    assert [getattr(flow, name) for name in refs] == list(range(len(refs)))
    assert calls == []

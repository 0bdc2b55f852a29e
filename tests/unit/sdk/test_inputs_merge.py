"""A join's `inputs` and `merge_artifacts`' rules."""

from __future__ import annotations

from typing import Any

import pytest

from kflow import FlowSpec, step
from kflow.exceptions import (
    MergeArtifactsException,
    MissingInMergeArtifactsException,
    UnhandledInMergeArtifactsException,
)
from kflow.inputs import Inputs, MemoryArtifacts, artifact_sha, plan_merge


class JoinFlow(FlowSpec):
    """`a` and `b` set artifacts from `values`; `join` merges as `how` says."""

    @step
    def start(self) -> None:
        self.next(self.a, self.b)

    @step
    def a(self) -> None:
        for key, value in self.values.items():  # type: ignore[attr-defined]
            setattr(self, key, value)
        self.next(self.join)

    @step
    def b(self) -> None:
        for key, value in self.values.items():  # type: ignore[attr-defined]
            setattr(self, key, value)
        self.next(self.join)

    @step
    def join(self, inputs: Inputs) -> None:
        for key, value in self.preset.items():  # type: ignore[attr-defined]
            setattr(self, key, value)
        self.merge_artifacts(inputs, **self.how)  # type: ignore[attr-defined]
        self.next(self.end)

    @step
    def end(self) -> None:
        self.merge_artifacts(Inputs([]))


def branch(name: str, **values: Any) -> JoinFlow:
    flow = JoinFlow(use_cli=False)
    flow.values = values
    flow._run_step(name)
    del flow.values  # type: ignore[attr-defined]  # differs per branch: not part of the test
    return flow


def join(a: JoinFlow, b: JoinFlow, preset: dict[str, Any] | None = None,
         **how: Any) -> JoinFlow:
    flow = JoinFlow(use_cli=False)
    flow.preset = preset or {}
    flow.how = how
    flow._run_step("join", Inputs([a, b]))
    return flow


def test_inputs_are_iterable_indexable_and_named_by_step() -> None:
    a, b = branch("a", x=1), branch("b", x=2)
    inputs = Inputs([a, b])
    assert len(inputs) == 2 and list(inputs) == [a, b] and inputs[1] is b
    assert inputs.a.x == 1 and inputs.b.x == 2  # type: ignore[attr-defined]
    assert [i.x for i in inputs] == [1, 2]  # type: ignore[attr-defined]
    assert inputs[:1] == [a]
    with pytest.raises(AttributeError, match="come from: a, b"):
        _ = inputs.c


def test_merge_copies_agreeing_artifacts() -> None:
    merged = join(branch("a", same=[1, 2], only_a="a"), branch("b", same=[1, 2], only_b="b"))
    assert (merged.same, merged.only_a, merged.only_b) == ([1, 2], "a", "b")  # type: ignore[attr-defined]
    assert merged._transition == (["end"], None)  # internal artifacts were not merged over


def test_conflicts_list_the_names_and_merge_nothing() -> None:
    with pytest.raises(UnhandledInMergeArtifactsException) as info:
        join(branch("a", x=1, y=1, ok=0), branch("b", x=2, y=3, ok=0))
    assert info.value.artifacts == ["x", "y"]
    assert "x, y" in str(info.value) and "in step join" in str(info.value)


def test_presetting_resolves_a_conflict() -> None:
    merged = join(branch("a", x=1, z=5), branch("b", x=2, z=5), preset={"x": 0})
    assert (merged.x, merged.z) == (0, 5)  # type: ignore[attr-defined]


def test_exclude_skips_conflicts() -> None:
    merged = join(branch("a", x=1, z=5), branch("b", x=2, z=5), exclude=["x"])
    assert merged.z == 5 and not hasattr(merged, "x")  # type: ignore[attr-defined]


def test_include_takes_only_those() -> None:
    merged = join(branch("a", x=1, z=5, w=1), branch("b", x=2, z=5, w=1), include=["z"])
    assert merged.z == 5 and not hasattr(merged, "w")  # type: ignore[attr-defined]


def test_include_missing_names_fail() -> None:
    with pytest.raises(MissingInMergeArtifactsException) as info:
        join(branch("a", z=5), branch("b", z=5), include=["z", "nope"])
    assert info.value.artifacts == ["nope"]


def test_include_of_a_preset_name_is_not_missing() -> None:
    merged = join(branch("a", z=5), branch("b", z=5), preset={"q": 1}, include=["z", "q"])
    assert merged.q == 1  # type: ignore[attr-defined]


def test_include_and_exclude_together_fail() -> None:
    with pytest.raises(MergeArtifactsException, match="not both"):
        join(branch("a"), branch("b"), include=["x"], exclude=["y"])


def test_include_must_be_a_list() -> None:
    with pytest.raises(MergeArtifactsException, match="list of artifact names"):
        join(branch("a", x=1), branch("b", x=1), include="x")


def test_merge_outside_a_join_fails() -> None:
    flow = JoinFlow(use_cli=False)
    with pytest.raises(MergeArtifactsException, match="only be called in a join") as info:
        flow._run_step("end")
    assert info.value.step == "end"


def test_memory_artifacts_and_sha() -> None:
    flow = branch("a", x=[1, 2])
    source = MemoryArtifacts(flow)
    assert "x" in source.artifact_names()
    assert "_parameter_values" not in source.artifact_names()
    assert source.artifact_sha("x") == artifact_sha([1, 2]) != artifact_sha([2, 1])
    assert len(artifact_sha(None)) == 64


class FakeSource:
    """A store-backed source stand-in: names and hashes only, no values."""

    def __init__(self, shas: dict[str, str]) -> None:
        self.shas = shas

    def artifact_names(self) -> list[str]:
        return list(self.shas)

    def artifact_sha(self, name: str) -> str:
        return self.shas[name]


def test_plan_merge_is_pure_over_hashes() -> None:
    sources = [FakeSource({"a": "1", "b": "2", "_transition": "t1"}),
               FakeSource({"a": "1", "c": "3", "_transition": "t2"})]
    assert plan_merge(lambda name: False, sources) == {"a": 0, "b": 0, "c": 1}
    assert plan_merge(lambda name: name == "a", sources, exclude=["c"]) == {"b": 0}

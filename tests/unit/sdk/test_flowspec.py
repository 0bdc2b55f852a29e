"""FlowSpec: name, steps, inheritance, constants, pickling, the CLI hook."""

from __future__ import annotations

import pickle
import sys
import types
from typing import Any, NoReturn

import pytest

from kflow import FlowSpec, KflowException, Parameter, retry, step
from kflow.flowspec import flow_constants, flow_steps, is_join


class BaseFlow(FlowSpec):
    LIMIT = 10
    alpha = Parameter("alpha", default=1)

    @step
    def start(self) -> None:
        self.next(self.end)

    @retry
    @step
    def end(self) -> None: ...

    def helper(self) -> int:
        return 1


class ChildFlow(BaseFlow):
    LABELS = ("a", "b")

    @step
    def start(self) -> None:
        self.next(self.middle)

    @step
    def middle(self) -> None:
        self.next(self.end)


def test_flow_name_is_the_class_name() -> None:
    assert ChildFlow(use_cli=False).name == "ChildFlow"


def test_steps_are_inherited_and_overridable() -> None:
    assert list(flow_steps(BaseFlow)) == ["start", "end"]
    assert list(flow_steps(ChildFlow)) == ["start", "end", "middle"]
    assert flow_steps(ChildFlow)["start"] is ChildFlow.__dict__["start"]
    assert [d.name for d in ChildFlow.end.decorators] == ["retry"]  # type: ignore[attr-defined]
    flow = ChildFlow(use_cli=False)
    flow._run_step("start")
    assert flow._transition == (["middle"], None)


def test_constants_are_class_values_and_read_only() -> None:
    assert flow_constants(ChildFlow) == {"LIMIT": 10, "LABELS": ("a", "b")}
    flow = ChildFlow(use_cli=False)
    assert flow.LIMIT == 10
    with pytest.raises(AttributeError, match="constant"):
        flow.LIMIT = 11
    flow.other = 1  # ordinary artifacts are fine
    assert vars(flow)["other"] == 1


def test_is_join() -> None:
    def join(self: Any, inputs: Any) -> None: ...

    assert is_join(join) and not is_join(BaseFlow.start)


def test_flow_objects_cannot_be_pickled() -> None:
    with pytest.raises(KflowException, match="cannot be pickled"):
        pickle.dumps(BaseFlow(use_cli=False))


def test_unknown_step() -> None:
    with pytest.raises(KflowException, match="no step 'nope'"):
        BaseFlow(use_cli=False)._run_step("nope")


def test_use_cli_hands_the_class_to_flowcli(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def main(flow_cls: type[FlowSpec], argv: list[str] | None = None) -> NoReturn:
        seen.append(flow_cls)
        raise SystemExit(0)

    fake = types.ModuleType("kflow.flowcli")
    fake.main = main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kflow.flowcli", fake)
    with pytest.raises(SystemExit):
        BaseFlow()
    assert seen == [BaseFlow]


def test_exception_format() -> None:
    err = KflowException("bad thing", file="flow.py", line=12, step="train", hint="Do this.")
    assert str(err) == "flow.py:12: in step train: bad thing. Do this."
    assert str(KflowException("plain")) == "plain"
    assert str(KflowException("x", file="f.py")) == "f.py: x"

"""``self.next(...)`` at run time: every form's transition and every misuse."""

from __future__ import annotations

from typing import Any

import pytest

from kflow import FlowSpec, step
from kflow.exceptions import InvalidNextException
from kflow.flowspec import ForeachFrame


class NextFlow(FlowSpec):
    """Each step exercises one form; `how` picks a misuse in `bad`."""

    @step
    def start(self) -> None:
        self.next(self.a)

    @step
    def branch(self) -> None:
        self.next(self.a, self.b)

    @step
    def fan(self) -> None:
        self.items = [3, 1, 2]
        self.next(self.a, foreach="items")

    @step
    def fan_generator(self) -> None:
        self.items = (i for i in range(4))  # type: ignore[assignment]
        self.next(self.a, foreach="items")

    @step
    def switch(self) -> None:
        self.mode = "slow"
        self.next({"fast": self.a, "slow": self.b}, condition="mode")

    @step
    def a(self) -> None:
        self.next(self.join)

    @step
    def b(self) -> None:
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.next(self.end)

    @step
    def bad(self) -> None:
        self.items = self.payload  # type: ignore[attr-defined]
        self.mode = self.payload  # type: ignore[attr-defined]
        args, kwargs = self.how  # type: ignore[attr-defined]
        self.next(*args(self), **kwargs)

    @step
    def twice(self) -> None:
        self.next(self.a)
        self.next(self.b)

    @step
    def end(self) -> None: ...


def run(step_name: str, **attrs: Any) -> NextFlow:
    flow = NextFlow(use_cli=False)
    for key, value in attrs.items():
        setattr(flow, key, value)
    flow._run_step(step_name)
    return flow


def test_linear() -> None:
    assert run("start")._transition == (["a"], None)


def test_static_branch_keeps_order() -> None:
    assert run("branch")._transition == (["a", "b"], None)


def test_foreach_records_variable_and_split_count() -> None:
    flow = run("fan")
    assert flow._transition == (["a"], "items")
    assert (flow._foreach_var, flow._foreach_num_splits) == ("items", 3)
    assert run("fan_generator")._foreach_num_splits == 4


def test_switch_records_only_the_chosen_step() -> None:
    assert run("switch")._transition == (["b"], None)


def test_join_and_end() -> None:
    assert run("join")._transition == (["end"], None)
    assert run("end")._transition is None


def bad(args: Any, payload: Any = None, **kwargs: Any) -> InvalidNextException:
    with pytest.raises(InvalidNextException) as info:
        run("bad", how=(args, kwargs), payload=payload)
    err = info.value
    assert err.step == "bad" and err.file == __file__ and err.line
    return err


@pytest.mark.parametrize(
    ("args", "kwargs", "payload", "fragment"),
    [
        (lambda f: (f.a,), {"foreach_var": "items"}, [1], "unknown keyword argument 'foreach_var'"),
        (lambda f: (), {}, None, "at least one step"),
        (lambda f: (f.a, "b"), {}, None, "argument 2 of self.next() is not a step"),
        (lambda f: (f.end.__func__,), {}, None, "argument 1"),  # unbound function
        (lambda f: (f.foreach_stack,), {}, None, "is not a step"),  # a method, not a step
        (lambda f: ({"x": f.a},), {}, "x", "no condition"),
        (lambda f: ({"x": f.a},), {"condition": 3}, "x", "condition must be a string"),
        (lambda f: ({"x": f.a},), {"condition": "nope"}, "x", "self.nope does not exist"),
        (lambda f: ({"x": f.a, "y": f.b},), {"condition": "mode"}, "z",
         "'z', which is not one of the cases: 'x', 'y'"),
        (lambda f: ({"x": "a"},), {"condition": "mode"}, "x", "does not go to a step"),
        (lambda f: ({"x": f.a},), {"condition": "mode", "foreach": "items"}, "x",
         "cannot also be a foreach"),
        (lambda f: (f.a,), {"condition": "mode"}, "x", "not a dict of cases"),
        (lambda f: (f.a,), {"foreach": 1}, [1], "foreach must be a string"),
        (lambda f: (f.a, f.b), {"foreach": "items"}, [1], "exactly one step"),
        (lambda f: (f.a,), {"foreach": "missing"}, [1], "self.missing does not exist"),
        (lambda f: (f.a,), {"foreach": "items"}, 5, "not iterable: int"),
        (lambda f: (f.a,), {"foreach": "items"}, [], "zero splits"),
        (lambda f: (f.a,), {"num_parallel": 2}, None, "not supported"),
    ],
)
def test_misuse(args: Any, kwargs: dict[str, Any], payload: Any, fragment: str) -> None:
    err = bad(args, payload, **kwargs)
    assert fragment in str(err)


def test_numeric_switch_cases() -> None:
    flow = run("bad", how=(lambda f: ({1: f.a, 2: f.b},), {"condition": "mode"}), payload=2)
    assert flow._transition == (["b"], None)


def test_second_call_is_rejected() -> None:
    with pytest.raises(InvalidNextException, match="more than once") as info:
        run("twice")
    assert "in step twice" in str(info.value)


def test_foreach_hooks() -> None:
    flow = NextFlow(use_cli=False)
    assert (flow.input, flow.index, flow.foreach_stack()) == (None, None, [])
    flow._foreach_stack = (ForeachFrame("fan", "items", 3, 1, "x"),
                           ForeachFrame("a", "inner", 2, 0, 10))
    assert flow.input == 10 and flow.index == 0
    assert flow.foreach_stack() == [(1, 3, "x"), (0, 2, 10)]
    with pytest.raises(AttributeError):
        flow.input = 3  # type: ignore[misc]

"""Running a step (kflow.runner.step): transitions checked, @catch, fallback, @timeout."""

from __future__ import annotations

import time

import pytest

from kflow import FlowSpec, catch, step, timeout
from kflow.exceptions import InvalidNextException
from kflow.graph import build_graph
from kflow.runner.artifacts import TaskArtifacts, attach, task_flow_class
from kflow.runner.guards import StepTimeoutError, deadline
from kflow.runner.step import StepSpec, run_step
from kflow.store import ExceptionInfo


class StepsFlow(FlowSpec):
    @step
    def start(self):  # type: ignore[no-untyped-def]
        self.items = [1, 2]
        self.next(self.work, foreach="items")

    @catch(var="err")
    @step
    def work(self):  # type: ignore[no-untyped-def]
        if self.input == 2:
            raise ValueError("two")
        self.next(self.join)

    @step
    def join(self, inputs):  # type: ignore[no-untyped-def]
        self.next(self.end)

    @timeout(seconds=1)
    @step
    def end(self):  # type: ignore[no-untyped-def]
        time.sleep(getattr(self, "nap", 0))


GRAPH = build_graph(StepsFlow)


def flow_with(**values: object) -> FlowSpec:
    flow = task_flow_class(StepsFlow)(use_cli=False)
    attach(flow, TaskArtifacts({}, reader=None, origin=None))  # type: ignore[arg-type]
    flow.__dict__.update(values)
    return flow


def spec(name: str, **kw: object) -> StepSpec:
    return StepSpec(node=GRAPH[name], **kw)  # type: ignore[arg-type]


def test_success_reports_the_transition() -> None:
    flow = flow_with()
    outcome = run_step(flow, spec("start"), None, 0)
    assert (outcome.ok, outcome.next_steps, outcome.foreach_var, outcome.foreach_splits) == \
        (True, ("work",), "items", 2)
    assert flow.__dict__["_task_ok"] is True and flow.__dict__["_success"] is True


def frame(value: int) -> tuple[object, ...]:
    from kflow.flowspec import ForeachFrame

    return (ForeachFrame("start", "items", 2, value - 1, value),)


def test_catch_on_the_last_attempt() -> None:
    flow = flow_with(_foreach_stack=frame(2))
    outcome = run_step(flow, spec("work", has_catch=True, catch_var="err"), None, 0)
    assert outcome.ok and outcome.caught and outcome.next_steps == ("join",)
    err = flow.__dict__["err"]
    assert isinstance(err, ExceptionInfo) and err.message == "two"
    assert flow.__dict__["_success"] is False and flow.__dict__["_task_ok"] is True
    assert flow.__dict__["_transition"] == (["join"], None)


def test_catch_waits_for_the_last_retry() -> None:
    flow = flow_with(_foreach_stack=frame(2))
    work = spec("work", has_catch=True, catch_var="err", max_user_code_retries=2)
    outcome = run_step(flow, work, None, 1)
    assert not outcome.ok and isinstance(outcome.error, ValueError)
    assert "last attempt" in outcome.notes[0]


def test_catch_sets_its_variable_to_none_on_success() -> None:
    flow = flow_with(_foreach_stack=frame(1))
    assert run_step(flow, spec("work", has_catch=True, catch_var="err"), None, 0).ok
    assert flow.__dict__["err"] is None


def test_fallback_attempt_does_not_run_the_step() -> None:
    flow = flow_with(_foreach_stack=frame(1))  # would succeed if it ran
    outcome = run_step(flow, spec("work", has_catch=True, catch_var="err",
                                  max_user_code_retries=1), None, 2)
    assert outcome.ok and outcome.caught
    assert "fallback" in flow.__dict__["err"].message


def test_failure_without_catch() -> None:
    flow = flow_with(_foreach_stack=frame(2))
    outcome = run_step(flow, spec("work"), None, 0)
    assert not outcome.ok and isinstance(outcome.error, ValueError)
    assert flow.__dict__["_task_ok"] is False


def test_transition_must_match_the_graph() -> None:
    other = build_graph(StepsFlow).steps["start"]
    lying = StepSpec(node=type(other)(**{**other.__dict__, "out": ("end",)}))
    outcome = run_step(flow_with(), lying, None, 0)
    assert isinstance(outcome.error, InvalidNextException)
    assert "its source says end" in str(outcome.error)


def test_timeout() -> None:
    started = time.monotonic()
    outcome = run_step(flow_with(nap=5), spec("end", timeout_seconds=1), None, 0)
    assert time.monotonic() - started < 3
    assert isinstance(outcome.error, StepTimeoutError)
    assert "timed out after 1 second" in str(outcome.error)


def test_deadline_is_disarmed_after_the_block() -> None:
    with deadline(0.2, "s"):
        pass
    time.sleep(0.3)  # no alarm fires later
    with deadline(None, "s"):
        time.sleep(0.01)
    with pytest.raises(StepTimeoutError), deadline(0.1, "s"):
        time.sleep(2)

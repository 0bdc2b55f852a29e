"""A resumeFrom run's origin: the checks and the pinned results (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from kflow.planning import ObservedAttempt, TaskId, TaskResult
from kflow_operator.origin import MAX_PINNED_BYTES, OriginError, origin_attempts, pin_origin

FLOW = {"flowName": "BranchFlow", "start": "start",
        "steps": [{"name": n} for n in ("start", "counts", "sums", "merge", "end")]}


def run(**resume_from: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"flowRef": {"name": "branch-flow"},
                            "resumeFrom": {"run": "origin-1", **resume_from}}
    return {"metadata": {"name": "run-2", "namespace": "ml", "uid": "u2"}, "spec": spec}


def origin(phase: str = "Failed", flow: str = "branch-flow",
           succeeded: int = 2) -> dict[str, Any]:
    return {"metadata": {"name": "origin-1", "namespace": "ml",
                         "uid": "abcdef12-0000-0000-0000-000000000000"},
            "spec": {"flowRef": {"name": flow}},
            "status": {"phase": phase, "steps": [
                {"name": "start", "tasks": {"succeeded": 1}},
                {"name": "counts", "tasks": {"succeeded": succeeded - 1}}]}}


PODS = [
    ObservedAttempt(TaskId("start"), 0, "succeeded",
                    result=TaskResult(ok=True, foreach_splits=None)),
    ObservedAttempt(TaskId("counts"), 0, "failed"),
    ObservedAttempt(TaskId("counts"), 100, "succeeded"),       # after an in-place resume
    ObservedAttempt(TaskId("sums"), 0, "succeeded"),
    ObservedAttempt(TaskId("sums"), 100, "failed"),            # re-run and failed: not kept
]


def test_pins_each_tasks_newest_attempt_when_it_succeeded() -> None:
    pinned = pin_origin(run(), origin(), PODS, FLOW)
    assert pinned == {"run": "origin-1", "runId": "origin-1-abcdef12",
                      "tasks": [["counts", "0", 100, None, None],
                                ["start", "0", 0, None, None]]}
    run_id, attempts = origin_attempts(pinned)
    assert run_id == "origin-1-abcdef12"
    assert [(a.task, a.attempt, a.state) for a in attempts] == [
        (TaskId("counts"), 100, "succeeded"), (TaskId("start"), 0, "succeeded")]
    assert origin_attempts(None) == (None, [])


@pytest.mark.parametrize(("the_run", "the_origin", "pods", "text"), [
    (run(), None, [], "FlowRun origin-1 not found in namespace ml"),
    (run(), origin(flow="train-flow"), PODS, "origin-1 is a run of flow train-flow, not of "
                                             "branch-flow"),
    (run(), origin(phase="Running"), PODS, "origin-1 is Running, not finished"),
    (run(), origin(phase="Succeeded"), PODS, "set spec.resumeFrom.step"),
    (run(step="nosuch"), origin(), PODS, "spec.resumeFrom.step: nosuch is not a step"),
    ({**run(), "spec": {**run()["spec"], "parameters": {"rows": "3"}}}, origin(), PODS,
     "spec.parameters: a run resumed from another keeps the origin's parameters"),
    (run(), origin(succeeded=5), PODS, "the pods of origin-1 are gone (2 of its 5"),
])
def test_an_unusable_origin_says_why(the_run: dict[str, Any], the_origin: dict[str, Any] | None,
                                     pods: list[ObservedAttempt], text: str) -> None:
    with pytest.raises(OriginError, match="spec\\.") as caught:
        pin_origin(the_run, the_origin, pods, FLOW)
    assert text in str(caught.value)


def test_parameters_are_allowed_when_the_start_step_runs_again() -> None:
    fresh = {**run(step="start"), "spec": {**run(step="start")["spec"],
                                           "parameters": {"rows": "3"}}}
    assert pin_origin(fresh, origin(phase="Succeeded"), PODS, FLOW)["run"] == "origin-1"


def test_too_many_tasks_to_pin_is_an_error() -> None:
    many = [ObservedAttempt(TaskId("counts", str(i)), 0, "succeeded") for i in range(40_000)]
    with pytest.raises(OriginError, match=f"at most {MAX_PINNED_BYTES}"):
        pin_origin(run(), origin(succeeded=1), many, FLOW)

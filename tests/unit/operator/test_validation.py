"""A FlowRun's parameters against its Flow's (what the apiserver cannot check)."""

from __future__ import annotations

from typing import Any

import pytest

from kflow_operator.validation import check_parameters, check_resume

SPEC: dict[str, Any] = {"flowName": "TrainFlow", "parameters": [
    {"name": "alpha", "type": "float", "default": 0.5},
    {"name": "epochs", "type": "int", "default": 3},
    {"name": "full", "type": "bool", "default": False},
    {"name": "config", "type": "json", "default": {}},
    {"name": "mode", "type": "str", "required": True},
]}


@pytest.mark.parametrize("values", [
    {"mode": "x"},
    {"mode": "", "alpha": "0.7", "epochs": " 4 ", "full": "Yes", "config": '{"a": [1]}'},
    {"mode": "x", "full": "0"},
])
def test_values_that_fit(values: dict[str, str]) -> None:
    assert check_parameters(SPEC, values) is None


@pytest.mark.parametrize(("values", "text"), [
    ({}, "spec.parameters.mode: parameter mode is required"),
    ({"mode": "x", "epochs": "3.5"}, "'3.5' is not a whole number"),
    ({"mode": "x", "alpha": "fast"}, "'fast' is not a number"),
    ({"mode": "x", "full": "maybe"}, "'maybe' is not true or false"),
    ({"mode": "x", "config": "{"}, "'{' is not JSON"),
    ({"mode": "x", "alpah": "1"}, "alpah is not a parameter of flow TrainFlow (its "
                                  "parameters: alpha, config, epochs, full, mode)"),
])
def test_values_that_do_not(values: dict[str, str], text: str) -> None:
    problem = check_parameters(SPEC, values)
    assert problem is not None and text in problem


def test_a_flow_without_parameters_takes_none() -> None:
    assert check_parameters({"flowName": "F"}, None) is None
    assert "x is not a parameter" in (check_parameters({"flowName": "F"}, {"x": "1"}) or "")


# -- spec.resume.step and spec.resumeFrom ------------------------------------------------

FLOW: dict[str, Any] = {"flowName": "BranchFlow", "steps": [
    {"name": n} for n in ("start", "counts", "sums", "merge", "end")]}


def _run(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"spec": {"flowRef": {"name": "branch-flow"}, **spec}, "status": status or {}}


def _accepted_false(reason: str) -> list[dict[str, str]]:
    return [{"type": "Accepted", "status": "False", "reason": reason}]


@pytest.mark.parametrize("flowrun", [
    _run({}),
    _run({"resume": {"attempt": 1}}),
    _run({"resume": {"attempt": 1, "step": "merge"}}),
    _run({"resume": {"attempt": 2, "step": "sums"}}, {"phase": "Failed", "resumeAttempt": 1}),
    # a bump on a running or finished run is recorded and does nothing: no check
    _run({"resume": {"attempt": 2, "step": "nosuch"}}, {"phase": "Running"}),
    _run({"resume": {"attempt": 2, "step": "nosuch"}}, {"phase": "Succeeded"}),
    # already acted on, and not what failed the run
    _run({"resume": {"attempt": 1, "step": "nosuch"}}, {"phase": "Failed", "resumeAttempt": 1}),
    # a resumeFrom run that ended before this check existed keeps its outcome
    _run({"resumeFrom": {"run": "origin"}}, {"phase": "Succeeded"}),
])
def test_resumes_that_can_be_acted_on(flowrun: dict[str, Any]) -> None:
    assert check_resume(FLOW, flowrun) is None


def test_an_unknown_resume_step_names_the_steps() -> None:
    new = check_resume(FLOW, _run({"resume": {"attempt": 1, "step": "nosuch"}}))
    assert new == ("InvalidResume", "spec.resume.step: nosuch is not a step of flow BranchFlow "
                   "(its steps: start, counts, sums, merge, end); name one of them (bump "
                   "spec.resume.attempt again, or create a new run)")
    bumped = _run({"resume": {"attempt": 3, "step": "nosuch"}},
                  {"phase": "Failed", "resumeAttempt": 2})
    assert check_resume(FLOW, bumped) == new


def test_a_run_failed_for_its_resume_step_stays_failed_for_it() -> None:
    """Once failed (the request recorded as handled), every later reconcile gives the
    same answer, so the status does not flip back to Accepted."""
    failed = {"phase": "Failed", "resumeAttempt": 1,
              "conditions": _accepted_false("InvalidResume")}
    problem = check_resume(FLOW, _run({"resume": {"attempt": 1, "step": "nosuch"}}, failed))
    assert problem is not None and problem[0] == "InvalidResume"
    # a new request with a real step is acted on
    assert check_resume(FLOW, _run({"resume": {"attempt": 2, "step": "merge"}}, failed)) is None


def test_resume_from_is_left_to_the_origin_check() -> None:
    # checked against the origin run when the run starts (kflow_operator.origin)
    assert check_resume(FLOW, _run({"resumeFrom": {"run": "origin-1", "step": "merge"}},
                                   {})) is None

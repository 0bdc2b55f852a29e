"""Resume: which origin runs can be resumed and which steps are kept (kflow.local.origin),
checked against the planner's own decisions."""

from __future__ import annotations

from collections import Counter

import pytest

from kflow.local.origin import OriginError, check_origin, kept_steps
from kflow.local.record import RunRecord
from kflow.planning import FlowModel, ObservedAttempt, RunModel, TaskId, TaskResult, plan
from tests.unit.planning.driver import T0, flow_spec, step

BRANCHY = FlowModel.from_spec(flow_spec(
    step("start", "split-static", "left", "right"), step("left", "linear", "join"),
    step("right", "linear", "join"), step("join", "join", "fan"),
    step("fan", "split-foreach", "body", foreach="xs"), step("body", "linear", "gather"),
    step("gather", "join", "end"), step("end", "end")))
RECORD = RunRecord(flow="F", run_id="old", namespace="local", flow_file="f.py",
                   code_sha256="a" * 64, user="u")


def done(step_name: str, task: str = "0", splits: int | None = None) -> ObservedAttempt:
    return ObservedAttempt(TaskId(step_name, task), 0, "succeeded",
                           result=TaskResult(ok=True, foreach_splits=splits))


ORIGIN = [done("start"), done("left"), done("right"), done("join"), done("fan", splits=3),
          done("body", "0"), done("body", "1"), done("body", "2"), done("gather"), done("end")]


@pytest.mark.parametrize("resume_step", [None, "start", "right", "fan", "body", "end"])
def test_kept_steps_are_what_the_planner_keeps(resume_step: str | None) -> None:
    origin = ORIGIN if resume_step else [a for a in ORIGIN if a.task.step != "end"]
    kept = kept_steps(BRANCHY, resume_step)
    run = RunModel(name="new", resume_from_run="old", resume_from_step=resume_step)
    decided = plan(BRANCHY, run, [], T0, origin=origin)
    cloned = Counter({s["name"]: s["tasks"]["cloned"] for s in decided.status["steps"]})
    expected = Counter({s: sum(1 for a in origin if a.task.step == s) for s in kept})
    assert +cloned == +expected


def test_check_origin_accepts_a_failed_run() -> None:
    assert check_origin(RECORD, "old", BRANCHY, None, "Failed") is RECORD
    assert check_origin(RECORD, "old", BRANCHY, "fan", "Succeeded") is RECORD


@pytest.mark.parametrize(("record", "step_name", "phase", "match"), [
    (None, None, None, "no local run old"),
    (RECORD, "nope", "Failed", "--step nope: not a step"),
    (RECORD, None, "Running", "is Running .* wait for it to end"),
    (RECORD, None, "Succeeded", "succeeded, so nothing failed .* --step"),
])
def test_check_origin_refuses_with_what_to_do(record: RunRecord | None, step_name: str | None,
                                              phase: str | None, match: str) -> None:
    with pytest.raises(OriginError, match=match):
        check_origin(record, "old", BRANCHY, step_name, phase)

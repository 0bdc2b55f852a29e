"""Orchestration overhead: `StartTask.ready_at`, the runner's clock in `TaskResult`, and
the bounded `overhead` summaries of the status (kflow.planning.overhead)."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import pytest

from kflow.planning import FlowModel, ObservedAttempt, RunModel, TaskId, TaskResult, plan
from kflow.planning.overhead import AttemptTimes, format_seconds, run_overhead, step_overhead
from tests.unit.planning.driver import T0, flow_spec, flowrun, step

LINEAR = FlowModel.from_spec(flow_spec(step("start", "start", "a"), step("a", "linear", "end"),
                                       step("end", "end")))
FOREACH = FlowModel.from_spec(flow_spec(step("start", "split-foreach", "body", foreach="xs"),
                                        step("body", "linear", "join"),
                                        step("join", "join", "end"), step("end", "end")))


def ms(milliseconds: int) -> datetime:
    return T0 + timedelta(milliseconds=milliseconds)


def clock(start: int, user_start: int, user_end: int, end: int) -> dict[str, float]:
    return {"startedAt": ms(start).timestamp(), "userStartedAt": ms(user_start).timestamp(),
            "userFinishedAt": ms(user_end).timestamp(), "finishedAt": ms(end).timestamp()}


def done(task: TaskId, *, ready: int | None, created: int, start: int, user_start: int,
         user_end: int, end: int, attempt: int = 0, ok: bool = True, splits: int | None = None,
         exit_code: int = 0) -> ObservedAttempt:
    """A finished attempt with every clock reading (ms after T0); the pod's own times are
    whole seconds, as Kubernetes gives them."""
    text = json.dumps({"ok": ok, "next": [], "foreach": {"splits": splits},
                       "at": clock(start, user_start, user_end, end)})
    return ObservedAttempt(task, attempt, "succeeded" if ok else "failed",
                           exit_code=exit_code, result=TaskResult.parse(text),
                           created_at=ms(created // 1000 * 1000),
                           finished_at=ms(end // 1000 * 1000),
                           ready_at=None if ready is None else ms(ready),
                           pod_created_at=ms(created))


# -- the runner's clock in the termination message ------------------------------------


def test_result_parses_the_runners_clock() -> None:
    parsed = TaskResult.parse(json.dumps({"ok": True, "at": clock(10, 20, 1020, 1030)}))
    assert parsed is not None
    assert parsed.runner_started_at == ms(10)
    assert parsed.user_started_at == ms(20)
    assert parsed.user_finished_at == ms(1020)
    assert parsed.runner_finished_at == ms(1030)


@pytest.mark.parametrize("at", [None, "x", [], {"startedAt": "2026"}, {"startedAt": True},
                                {"startedAt": -1}, {"startedAt": float("nan")},
                                {"startedAt": 1e300}])
def test_result_tolerates_bad_or_missing_clock_readings(at: object) -> None:
    text = json.dumps({"ok": True, "at": at}) if at is not None else '{"ok": true}'
    parsed = TaskResult.parse(text)
    assert parsed is not None and parsed.ok
    assert parsed.runner_started_at is None and parsed.runner_finished_at is None


# -- StartTask.ready_at -----------------------------------------------------------------


def test_first_attempt_is_ready_when_its_parent_finished_by_the_runners_clock() -> None:
    start = done(TaskId("start"), ready=None, created=0, start=300, user_start=400,
                 user_end=900, end=1234)
    result = plan(LINEAR, RunModel.from_cr(flowrun()), [start], ms(2000))
    (a,) = result.starts
    assert a.task == TaskId("a") and a.ready_at == ms(1234)      # not the pod's 1 s time


def test_the_start_step_has_no_ready_time() -> None:
    (first,) = plan(LINEAR, RunModel.from_cr(flowrun()), [], T0).starts
    assert first.ready_at is None


def test_a_join_is_ready_when_its_last_input_finished() -> None:
    observed = [done(TaskId("start"), ready=None, created=0, start=100, user_start=200,
                     user_end=300, end=400, splits=3)]
    for i, end in enumerate((2100, 5678, 3000)):
        observed.append(done(TaskId("body", str(i)), ready=400, created=500, start=600,
                             user_start=700, user_end=end - 10, end=end))
    (join,) = plan(FOREACH, RunModel.from_cr(flowrun()), observed, ms(9000)).starts
    assert join.task == TaskId("join") and join.ready_at == ms(5678)


def test_a_retry_is_ready_when_its_previous_attempt_finished() -> None:
    flow = FlowModel.from_spec(flow_spec(step("start", "start", "end", retry={"times": 1}),
                                         step("end", "end")))
    failed = done(TaskId("start"), ready=None, created=0, start=100, user_start=200,
                  user_end=700, end=777, ok=False, exit_code=1)
    (retry,) = plan(flow, RunModel.from_cr(flowrun()), [failed], ms(1500)).starts
    assert retry.attempt == 1 and retry.ready_at == ms(777)


def test_a_retry_after_a_back_off_is_ready_when_the_back_off_ends() -> None:
    flow = FlowModel.from_spec(flow_spec(
        step("start", "start", "end", retry={"times": 1, "minutesBetweenRetries": 1}),
        step("end", "end")))
    failed = done(TaskId("start"), ready=None, created=0, start=100, user_start=200,
                  user_end=700, end=777, ok=False, exit_code=1)
    later = T0 + timedelta(minutes=2)
    (retry,) = plan(flow, RunModel.from_cr(flowrun()), [failed], later).starts
    assert retry.ready_at == T0 + timedelta(minutes=1)       # pod finished_at + back-off


def test_a_resume_does_not_date_its_first_tasks_from_kept_parents() -> None:
    observed = [done(TaskId("start"), ready=None, created=0, start=100, user_start=200,
                     user_end=300, end=400),
                done(TaskId("a"), ready=400, created=500, start=600, user_start=700,
                     user_end=800, end=900, ok=False, exit_code=1)]
    first = plan(LINEAR, RunModel.from_cr(flowrun()), observed, ms(1000))
    assert first.status["phase"] == "Failed"
    resumed_run = flowrun(resume={"attempt": 1})
    resumed_run["status"] = first.status
    (again,) = plan(LINEAR, RunModel.from_cr(resumed_run), observed, ms(60_000)).starts
    assert again.task == TaskId("a") and again.attempt == 100 and again.ready_at is None


# -- the overhead summaries ---------------------------------------------------------


def test_attempt_phases_add_up() -> None:
    attempt = done(TaskId("a"), ready=1000, created=1120, start=1500, user_start=1800,
                   user_end=4800, end=5000)
    times = AttemptTimes.of(attempt)
    assert times is not None
    assert times.to_create == pytest.approx(0.12)
    assert times.to_start == pytest.approx(0.38)
    assert times.prepare == pytest.approx(0.3)
    assert times.user_code == pytest.approx(3.0)
    assert times.persist == pytest.approx(0.2)
    assert times.kflow == pytest.approx(1.0)


def test_unfinished_or_unmeasured_attempts_are_not_samples() -> None:
    running = ObservedAttempt(TaskId("a"), 0, "running", pod_created_at=T0)
    old_runner = ObservedAttempt(TaskId("a"), 0, "succeeded",
                                 result=TaskResult.parse('{"ok": true}'))
    assert AttemptTimes.of(running) is None and AttemptTimes.of(old_runner) is None
    assert step_overhead([running, old_runner]) is None
    assert run_overhead([running]) is None


def test_clock_skew_never_gives_negative_phases() -> None:
    skewed = done(TaskId("a"), ready=1000, created=1100, start=900, user_start=950,
                  user_end=2000, end=2100)
    times = AttemptTimes.of(skewed)
    assert times is not None and times.to_start == 0.0


def test_step_summary_is_bounded_and_deterministic() -> None:
    attempts = [done(TaskId("body", str(i)), ready=0, created=10 * (i + 1),
                     start=10 * (i + 1) + 300, user_start=10 * (i + 1) + 400,
                     user_end=10 * (i + 1) + 1400, end=10 * (i + 1) + 1450)
                for i in range(1000)]
    summary = step_overhead(attempts)
    assert summary == {"samples": 1000, "toCreateP50": "5.000s", "toCreateMax": "10.000s",
                       "toStartP50": "0.300s", "toStartMax": "0.300s",
                       "userCode": "1000.000s", "kflow": "5455.000s"}
    shuffled = list(attempts)
    random.Random(7).shuffle(shuffled)
    assert step_overhead(shuffled) == summary
    assert run_overhead(shuffled) == {"samples": 1000, "userCode": "1000.000s",
                                      "kflow": "5455.000s"}


def test_format_seconds() -> None:
    assert format_seconds(0.1234) == "0.123s"
    assert format_seconds(-0.5) == "0.000s"
    assert format_seconds(3600) == "3600.000s"


def test_status_has_the_overhead_and_does_not_change_when_nothing_did() -> None:
    observed = [done(TaskId("start"), ready=None, created=0, start=300, user_start=400,
                     user_end=900, end=1000),
                done(TaskId("a"), ready=1000, created=1200, start=1500, user_start=1600,
                     user_end=2600, end=2700)]
    run = flowrun()
    first = plan(LINEAR, RunModel.from_cr(run), observed, ms(3000))
    steps = {s["name"]: s for s in first.status["steps"]}
    assert "toCreateP50" not in steps["start"]["overhead"]       # the start has no ready
    assert steps["start"]["overhead"]["toStartP50"] == "0.300s"
    assert steps["a"]["overhead"] == {"samples": 1, "toCreateP50": "0.200s",
                                      "toCreateMax": "0.200s", "toStartP50": "0.300s",
                                      "toStartMax": "0.300s", "userCode": "1.000s",
                                      "kflow": "0.700s"}
    assert "overhead" not in steps["end"]
    assert first.status["overhead"] == {"samples": 2, "userCode": "1.500s", "kflow": "1.200s"}
    run["status"] = first.status
    again = plan(LINEAR, RunModel.from_cr(run), list(reversed(observed)), ms(4000))
    assert again.status["steps"] == first.status["steps"]
    assert again.status["overhead"] == first.status["overhead"]

"""A finished runner process → the planner's ObservedAttempt (kflow.local.observe)."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime

import pytest

from kflow.local.observe import ProcessExit, exit_code_of, observe_exit, observe_running
from kflow.planning import TaskId
from kflow.planning.failures import Budget, classify

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
TASK = TaskId("train", "3")


def ended(returncode: int | None, result: dict[str, object] | None = None,
          **extra: object) -> ProcessExit:
    text = json.dumps(result) if result is not None else None
    return ProcessExit(TASK, 1, returncode, result_text=text, created_at=T0,
                       finished_at=T0, **extra)  # type: ignore[arg-type]


def test_exit_zero_succeeds_with_its_result() -> None:
    seen = observe_exit(ended(0, {"ok": True, "next": ["join"], "foreach": {"splits": 4}}))
    assert (seen.state, seen.exit_code, seen.task, seen.attempt) == ("succeeded", 0, TASK, 1)
    assert seen.result is not None and seen.result.foreach_splits == 4
    assert not seen.deleted


@pytest.mark.parametrize(("returncode", "result", "extra", "reason", "budget"), [
    (1, {"ok": False, "error": {"type": "ValueError", "message": "bad"}}, {}, "UserError",
     Budget.USER),
    (1, {"ok": False, "error": {"type": "StepTimeoutError", "message": "slow"}}, {},
     "DeadlineExceeded", Budget.USER),
    (1, None, {}, "UserError", Budget.USER),
    (2, None, {}, "InvalidSpec", Budget.NONE),
    (65, None, {}, "LaunchError", Budget.NONE),
    (66, None, {}, "LaunchError", Budget.INFRA),
    (75, None, {}, "LaunchError", Budget.INFRA),
    (143, None, {}, "Evicted", Budget.INFRA),
    (-signal.SIGTERM, None, {}, "Evicted", Budget.INFRA),
    (-signal.SIGKILL, None, {}, "UserError", Budget.USER),
    (-signal.SIGKILL, None, {"deadline": True, "timeout_seconds": 5}, "DeadlineExceeded",
     Budget.USER),
    (143, None, {"stop_reason": "RunFailed"}, "RunFailed", Budget.INFRA),
    (None, None, {"spawn_error": "No such file"}, "LaunchError", Budget.NONE),
])
def test_failures_classify_as_on_the_cluster(returncode: int | None,
                                             result: dict[str, object] | None,
                                             extra: dict[str, object], reason: str,
                                             budget: Budget) -> None:
    seen = observe_exit(ended(returncode, result, **extra))
    assert seen.state == "failed"
    assert seen.reason == reason
    assert seen.message
    assert classify(seen)[0] is budget
    assert seen.deleted == ("stop_reason" in extra)


def test_messages_say_what_happened() -> None:
    assert "ValueError: bad" in observe_exit(ended(1, {
        "ok": False, "error": {"type": "ValueError", "message": "bad"}})).message
    assert "SIGKILL" in observe_exit(ended(-9)).message
    assert "5 s" in observe_exit(ended(-9, deadline=True, timeout_seconds=5)).message
    assert "No such file" in observe_exit(ended(None, spawn_error="No such file")).message


def test_a_task_that_finished_as_it_was_stopped_succeeded() -> None:
    seen = observe_exit(ended(0, {"ok": True}, stop_reason="RunFailed"))
    assert seen.state == "succeeded" and seen.deleted


def test_exit_code_of_maps_signals_like_a_container_runtime() -> None:
    assert exit_code_of(-9) == 137
    assert exit_code_of(-15) == 143
    assert exit_code_of(3) == 3
    assert exit_code_of(None) is None


def test_running_and_stopping() -> None:
    running = observe_running(TASK, 0, T0, None)
    assert running.state == "running" and not running.deleted
    assert observe_running(TASK, 0, T0, T0, stopping=True).deleted

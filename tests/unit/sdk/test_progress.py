"""`kflow.progress`: the lines `python flow.py run` prints from a FlowRun's status."""

from __future__ import annotations

from typing import Any

import pytest

from kflow.progress import ProgressLog, bar, interrupted_lines, outcome_lines, step_lines


def _step(name: str, phase: str, total: int = 1, succeeded: int = 0, running: int = 0,
          failed: int = 0, **extra: Any) -> dict[str, Any]:
    pending = total - succeeded - running - failed
    return {"name": name, "phase": phase, **extra,
            "tasks": {"total": total, "pending": pending, "running": running,
                      "succeeded": succeeded, "failed": failed, "cloned": 0}}


def _run(phase: str, steps: list[dict[str, Any]], **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "fanout-flow-x7k2p", "namespace": "ml"},
            "status": {"phase": phase, "steps": steps, **status}}


@pytest.mark.parametrize(("done", "total", "expected"), [
    (0, 100, "[............]"), (70, 100, "[########....]"), (99, 100, "[###########.]"),
    (100, 100, "[############]"), (0, 0, "[............]"), (3, 2, "[############]"),
])
def test_bar_fills_in_proportion_and_is_full_only_when_all_are_done(
        done: int, total: int, expected: str) -> None:
    assert bar(done, total) == expected


def test_step_lines_show_started_steps_aligned_and_a_bar_for_a_running_foreach() -> None:
    status = _run("Running", [
        _step("start", "Succeeded", 1, 1),
        _step("body", "Running", 100, 70, running=3),
        _step("gather", "Pending", 0),
        _step("end", "Pending", 0),
    ])["status"]
    assert step_lines(status) == [
        ("start", "  start   Succeeded  1/1"),
        ("body", "  body    [########....] 70/100 (3 running, 0 failed)"),
    ]


def test_a_finished_foreach_and_a_failed_step_say_their_phase_indexes_and_reason() -> None:
    status = _run("Failed", [
        _step("body", "Failed", 12, 10, failed=2, failedIndexes="3,7",
              reason="UserError", message="task 3: RuntimeError: boom"),
        _step("check", "Skipped", 0),
    ])["status"]
    assert [line for _, line in step_lines(status)] == [
        "  body   Failed     10/12  failed: 3,7  UserError: task 3: RuntimeError: boom",
        "  check  Skipped    0/0",
    ]


def test_a_single_task_step_never_gets_a_bar() -> None:
    status = _run("Running", [_step("train", "Running", 1, 0, running=1)])["status"]
    assert step_lines(status) == [("train", "  train  Running    0/1")]


def test_progress_log_prints_each_line_once_and_again_only_when_it_changes() -> None:
    log = ProgressLog()
    first = _run("Running", [_step("start", "Running", 1, 0, running=1)])["status"]
    assert log.feed(first) == ["  start  Running    0/1"]
    assert log.feed(first) == []
    second = _run("Running", [_step("start", "Succeeded", 1, 1),
                              _step("body", "Running", 4, 1, running=3)])["status"]
    assert log.feed(second) == ["  start  Succeeded  1/1",
                                "  body   [###.........] 1/4 (3 running, 0 failed)"]
    assert log.feed(second) == []


def test_progress_log_shows_why_a_running_run_is_stuck_once() -> None:
    log = ProgressLog()
    stuck = _run("Running", [], reason="Unschedulable",
                 message="0/1 nodes are available: 1 Insufficient memory")["status"]
    assert log.feed(stuck) == ["  (Unschedulable: 0/1 nodes are available: 1 Insufficient "
                               "memory)"]
    assert log.feed(stuck) == []
    assert log.feed({"phase": "Failed", "reason": "Unschedulable", "steps": []}) == []


def test_outcome_of_a_success_gives_the_duration_and_where_to_look() -> None:
    run = _run("Succeeded", [_step("end", "Succeeded", 1, 1)], duration="1m30s")
    assert outcome_lines(run, "fanout.py") == [
        "FlowRun fanout-flow-x7k2p Succeeded in 1m30s",
        "  kubectl get fr fanout-flow-x7k2p -n ml",
    ]


def test_outcome_of_a_failure_names_the_step_reason_and_the_logs_command() -> None:
    run = _run("Failed", [_step("check", "Failed", 1, 0, failed=1)], duration="12s",
               failure={"step": "check", "task": "0", "attempt": 0, "reason": "UserError",
                        "message": "RuntimeError: marker file is missing"})
    assert outcome_lines(run, "marker_flow.py") == [
        "FlowRun fanout-flow-x7k2p Failed after 12s: step check, task 0, attempt 0: "
        "UserError: RuntimeError: marker file is missing",
        "  kubectl get fr fanout-flow-x7k2p -n ml",
        "  python marker_flow.py logs fanout-flow-x7k2p/check",
    ]


def test_outcome_of_a_run_failed_before_any_step_uses_the_run_reason() -> None:
    run = _run("Failed", [], reason="InvalidSpec", message="parameter 'width' is not an int",
               failure={"reason": "InvalidSpec", "message": "parameter 'width' is not an int"})
    assert outcome_lines(run)[0] == ("FlowRun fanout-flow-x7k2p Failed: InvalidSpec: "
                                     "parameter 'width' is not an int")
    assert len(outcome_lines(run)) == 2  # no step to show the logs of


def test_outcome_does_not_repeat_what_the_failure_message_says() -> None:
    message = "step check task 0 attempt 0 failed: UserError: RuntimeError: boom"
    run = _run("Failed", [], duration="3s", failure={
        "step": "check", "task": "0", "attempt": 0, "reason": "UserError", "message": message})
    assert outcome_lines(run)[0] == f"FlowRun fanout-flow-x7k2p Failed after 3s: {message}"


def test_outcome_of_a_stopped_run() -> None:
    run = _run("Stopped", [_step("body", "Stopped", 4, 1)], duration="5s", reason="Stopped",
               message="stopped by spec.stop")
    lines = outcome_lines(run)
    assert lines[0] == "FlowRun fanout-flow-x7k2p Stopped after 5s: stopped by spec.stop"


def test_interrupted_lines_say_the_run_goes_on_and_how_to_stop_it() -> None:
    text = "\n".join(interrupted_lines("r-1", "ml", "flow.py"))
    assert "continues in the cluster" in text
    assert "kubectl get fr r-1 -n ml -w" in text
    assert """kubectl patch fr r-1 -n ml --type merge -p '{"spec":{"stop":true}}'""" in text

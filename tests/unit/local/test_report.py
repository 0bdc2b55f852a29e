"""What a local run prints at its start and end (kflow.local.report)."""

from __future__ import annotations

from pathlib import Path

from kflow.local.report import header_lines, interrupt_lines, outcome_lines


def test_header_names_the_run_and_the_store() -> None:
    lines = header_lines("F", "r1", Path("/s"), 4, "r0", 3)
    assert lines[0] == "Local run F/r1 started (store /s, at most 4 tasks at once)"
    assert "resuming F/r0: 3 task(s)" in lines[1]


def test_success_says_how_to_read_it() -> None:
    lines = outcome_lines("F", "r1", {"phase": "Succeeded", "duration": "3s"})
    assert lines[0] == "Run F/r1 Succeeded in 3s"
    assert "Run('F/r1')" in lines[1]


def test_failure_says_why_without_kubectl_and_how_to_resume() -> None:
    status = {"phase": "Failed", "duration": "1s", "failure": {
        "step": "fit", "task": "0", "reason": "UserError",
        "message": "step fit task 0 attempt 0 failed: UserError: ValueError: x. Logs: "
                   "kubectl logs -n local -l kflow.dev/run=r1"}}
    lines = outcome_lines("F", "r1", status, "train.py")
    assert lines[0] == ("Run F/r1 Failed after 1s: step fit task 0 attempt 0 failed: "
                        "UserError: ValueError: x")
    assert "kubectl" not in "\n".join(lines)
    assert "python train.py logs --local r1/fit" in lines[1]
    assert "python train.py resume --local r1" in lines[2]


def test_interrupts() -> None:
    assert "Ctrl-C again" in interrupt_lines(True)[0]
    assert "killing" in interrupt_lines(False)[0]

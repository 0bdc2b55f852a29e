"""`python flow.py resume RUN [--step STEP]`: argument handling and the resume it asks for."""

from __future__ import annotations

from typing import Any

import pytest

from kflow import flowcli, submit
from kflow.flowspec import FlowSpec
from kflow.submit import ResumeResult, SubmitError, next_resume


class SomeFlow(FlowSpec):
    """Never run: `resume` does not look at the flow's graph."""


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        flowcli.main(SomeFlow, argv)
    return int(exited.value.code or 0)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def fake(name: str, *, step: str | None = None, namespace: str | None = None,
             settings: object = None) -> ResumeResult:
        seen.append({"name": name, "step": step, "namespace": namespace})
        if name == "missing":
            raise SubmitError("FlowRun missing in namespace ml not found")
        return ResumeResult(name, namespace or "ml", 3, step)

    monkeypatch.setattr(submit, "resume_run", fake)
    return seen


def test_resume_passes_the_run_step_and_namespace(
        calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["resume", "train-1"]) == 0
    assert _run(["resume", "train-1", "--step", "train", "--namespace", "dev"]) == 0
    assert calls == [{"name": "train-1", "step": None, "namespace": None},
                     {"name": "train-1", "step": "train", "namespace": "dev"}]
    out = capsys.readouterr().out
    assert "flowrun.kflow.dev/train-1 in namespace ml: resume 3 requested (its failed steps" in out
    assert "resume 3 requested (from step train; attempts numbered from 300)" in out


def test_resume_errors_exit_1_with_the_message_and_usage_errors_exit_2(
        calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFLOW_CONFIG", "")              # no config file, no store
    for name in ("KFLOW_S3_ENDPOINT", "KFLOW_S3_CREDENTIALS", "KFLOW_S3_ACCESS_KEY",
                 "KFLOW_S3_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert _run(["resume", "missing"]) == 1
    assert "error: FlowRun missing in namespace ml not found" in capsys.readouterr().err
    # Without a run: the flow's newest one, found through the client API, which needs
    # the object store (not configured here): one line saying how to configure it.
    assert _run(["resume"]) == 1
    assert "is not configured" in capsys.readouterr().err
    assert _run(["resume", "a", "b"]) == 2
    assert len(calls) == 1


def _flowrun(phase: str | None, spec_attempt: int = 0, status_attempt: int = 0,
             step: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"flowRef": {"name": "f"}}
    if spec_attempt:
        spec["resume"] = {"attempt": spec_attempt, **({"step": step} if step else {})}
    status: dict[str, Any] = {"steps": [{"name": "start"}, {"name": "train"}]}
    if phase:
        status["phase"] = phase
    if status_attempt:
        status["resumeAttempt"] = status_attempt
    return {"metadata": {"name": "r", "namespace": "ml"}, "spec": spec, "status": status}


@pytest.mark.parametrize(("spec_attempt", "status_attempt", "expected"),
                         [(0, 0, 1), (1, 1, 2), (4, 2, 5), (0, 3, 4)])
def test_next_resume_is_one_more_than_the_last_asked_or_acted_on(
        spec_attempt: int, status_attempt: int, expected: int) -> None:
    assert next_resume(_flowrun("Failed", spec_attempt, status_attempt)) == {
        "attempt": expected, "step": None}


def test_next_resume_clears_or_sets_the_step() -> None:
    run = _flowrun("Failed", 1, 1, step="train")
    assert next_resume(run) == {"attempt": 2, "step": None}   # merge patch: removes it
    assert next_resume(run, "start") == {"attempt": 2, "step": "start"}
    with pytest.raises(SubmitError, match="has no step 'trian'; its steps: start, train"):
        next_resume(run, "trian")


@pytest.mark.parametrize(("phase", "message"), [
    ("Running", "FlowRun r in namespace ml is Running, not Failed"),
    ("Succeeded", "is Succeeded, not Failed"),
    (None, "is not started yet, not Failed"),
    ("Stopped", "a stopped run cannot be resumed in place. Create a new run with "
                "spec.resumeFrom.run"),
])
def test_only_a_failed_run_can_be_resumed(phase: str | None, message: str) -> None:
    with pytest.raises(SubmitError, match=message.replace(".", r"\.")):
        next_resume(_flowrun(phase))

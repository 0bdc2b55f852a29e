"""The termination message (kflow.runner.result): format, size cap, where it goes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kflow.runner.result import MAX_BYTES, TaskResult, termination_path, write_termination_message


def test_success_message_format() -> None:
    result = TaskResult(ok=True, step="start", task="0", attempt=1, next_steps=("train",),
                        foreach_var="rates", foreach_splits=3, artifacts=4, bytes=1234,
                        timings={"code": 0.01234, "total": 1.5})
    assert json.loads(result.to_json()) == {
        "v": 1, "ok": True, "step": "start", "task": "0", "attempt": 1, "next": ["train"],
        "foreach": {"var": "rates", "splits": 3}, "switch": None, "artifacts": 4,
        "bytes": 1234, "timings": {"code": 0.012, "total": 1.5}, "error": None,
    }


def test_clock_readings_have_milliseconds_and_survive_a_cut() -> None:
    at = {"startedAt": 1795946400.1234, "userStartedAt": 1795946400.5, "finishedAt": 1764410401.0}
    result = TaskResult(ok=False, step="s", task="0", attempt=0, error_type="E",
                        error_message="x" * 10_000, at=at)
    doc = json.loads(result.to_json())
    assert doc["at"] == {"startedAt": 1795946400.123, "userStartedAt": 1795946400.5,
                         "finishedAt": 1764410401.0}
    assert len(result.to_json().encode()) <= MAX_BYTES


def test_failure_message_has_the_error() -> None:
    result = TaskResult(ok=False, step="a", task="3.1", attempt=0,
                        error_type="ValueError", error_message="bad")
    doc = json.loads(result.to_json())
    assert doc["ok"] is False and doc["next"] == [] and doc["foreach"] is None
    assert doc["error"] == {"type": "ValueError", "message": "bad"}


@pytest.mark.parametrize("size", [4000, 10_000, 1_000_000])
def test_long_messages_are_cut_to_4_kb(size: int) -> None:
    message = "é" * size  # two bytes each in UTF-8
    result = TaskResult(ok=False, step="s", task="0", attempt=0, error_type="E",
                        error_message=message, next_steps=("x",) * 10)
    text = result.to_json()
    assert len(text.encode()) <= MAX_BYTES
    doc = json.loads(text)
    assert doc["error"]["message"].endswith("…")
    assert len(text.encode()) > MAX_BYTES - 10  # cut to fit, not to nothing


def test_absurd_results_still_fit() -> None:
    result = TaskResult(ok=False, step="s" * 5000, task="0", attempt=0, error_type="E" * 5000,
                        error_message="m")
    text = result.to_json()
    assert len(text.encode()) <= MAX_BYTES
    assert json.loads(text)["error"]["message"] == "(result too large)"


def test_where_it_is_written(tmp_path: Path) -> None:
    target = tmp_path / "term"
    env = {"KFLOW_TERMINATION_MESSAGE_PATH": str(target)}
    assert termination_path(env) == target
    result = TaskResult(ok=True, step="end", task="0", attempt=0)
    assert write_termination_message(result, env) == target
    assert json.loads(target.read_text())["step"] == "end"


def test_unwritable_path_is_not_an_error(tmp_path: Path) -> None:
    env = {"KFLOW_TERMINATION_MESSAGE_PATH": str(tmp_path / "missing-dir" / "term")}
    result = TaskResult(ok=True, step="end", task="0", attempt=0)
    assert write_termination_message(result, env) is None

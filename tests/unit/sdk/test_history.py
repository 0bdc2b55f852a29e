"""The history texts (`kflow runs`, `kflow describe`), from plain summaries."""

from __future__ import annotations

from datetime import UTC, datetime

from kflow.history import RunDetails, RunRow, StepRow, describe_text, runs_table

T0 = datetime(2026, 11, 29, 9, 0, 0, tzinfo=UTC)


def _row(name: str, status: str, duration: float | None) -> RunRow:
    return RunRow(name=name, flow="TrainFlow", status=status, started=T0,
                  duration_s=duration, user="alice" if duration else None,
                  tags=("nightly",) if duration else ())


def test_runs_table_aligns_columns_and_shows_unknowns_as_dashes() -> None:
    text = runs_table([_row("good", "Succeeded", 95.0), _row("r-2", "Running", None)])
    assert text.splitlines() == [
        "RUN   FLOW       STATUS     STARTED               DURATION  USER   TAGS",
        "good  TrainFlow  Succeeded  2026-11-29 09:00:00Z  1m35s     alice  nightly",
        "r-2   TrainFlow  Running    2026-11-29 09:00:00Z  -         -      -",
    ]


def test_describe_names_the_failed_task_and_the_log_command() -> None:
    details = RunDetails(
        row=_row("bad", "Failed", 12.0), run_id="bad-1234abcd", flowrun=None, finished=None,
        code_sha256="ab" * 32, parameters={"epochs": 2}, origin_run_id=None,
        message="start/0 failed", steps=[StepRow("start", 1, 0, 1, 0, T0, T0)],
        failures=[("TrainFlow/bad-1234abcd/start/0", 0, "builtins.ValueError: x")])
    text = describe_text(details)
    assert "Run:         TrainFlow/bad-1234abcd  (FlowRun deleted: from the store)" in text
    assert "Status:      Failed: start/0 failed" in text
    assert "Parameters:  epochs=2" in text
    assert "  start  1      0   1       0        2026-11-29 09:00:00Z" in text
    assert ("Failed: TrainFlow/bad-1234abcd/start/0 (attempt 0): builtins.ValueError: x"
            in text)
    assert "  logs: kflow logs TrainFlow/bad-1234abcd/start/0" in text
    assert "kubectl describe" not in text

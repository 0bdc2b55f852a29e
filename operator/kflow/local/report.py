"""What a local run prints: its start, per-step progress, its end (pure).

Owns: the text of a local run. The per-step lines are the cluster run's
(`kflow.progress.ProgressLog` over the planner's status, so ``start  Succeeded  1/1``
and the foreach bars look the same); `header_lines` names the run and where it is
stored, `outcome_lines` says how it ended and what to do next (the logs, the client
API, a resume), with ``--local`` where the cluster's lines say ``kubectl``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kflow.api_types import RunPhase

__all__ = ["header_lines", "interrupt_lines", "outcome_lines"]

INDENT = "  "


def header_lines(flow: str, run_id: str, store: Path, max_workers: int,
                 origin_run_id: str | None = None, cloned: int = 0) -> list[str]:
    """The first lines of a local run."""
    lines = [f"Local run {flow}/{run_id} started (store {store}, at most {max_workers} "
             f"tasks at once)"]
    if origin_run_id is not None:
        lines.append(f"{INDENT}resuming {flow}/{origin_run_id}: {cloned} task(s) of it kept")
    return lines


def _failure(status: Mapping[str, Any]) -> str:
    failure = status.get("failure") or {}
    message = str(failure.get("message") or status.get("message") or "")
    reason = str(failure.get("reason") or status.get("reason") or "")
    # the planner's message ends with a kubectl hint that does not apply locally
    message = message.split(". kubectl ", 1)[0].split(". Logs: ", 1)[0]
    return message if reason and reason in message else ": ".join(
        p for p in (reason, message) if p)


def outcome_lines(flow: str, run_id: str, status: Mapping[str, Any],
                  prog: str = "flow.py") -> list[str]:
    """The end of a local run: phase, duration, why it failed, and what to do next."""
    phase = str(status.get("phase") or "Unknown")
    duration = status.get("duration")
    if phase == RunPhase.SUCCEEDED.value:
        head = f"Run {flow}/{run_id} Succeeded" + (f" in {duration}" if duration else "")
        return [head, f"{INDENT}read it: Run('{flow}/{run_id}').data  (kflow client API; "
                      "see docs/api.md, local runs)"]
    head = f"Run {flow}/{run_id} {phase}" + (f" after {duration}" if duration else "")
    why = _failure(status) if phase == RunPhase.FAILED.value else ""
    lines = [head + (f": {why}" if why else "")]
    failed = (status.get("failure") or {}).get("step")
    if failed:
        lines.append(f"{INDENT}logs:   python {prog} logs --local {run_id}/{failed}")
    lines.append(f"{INDENT}resume: python {prog} resume --local {run_id}")
    return lines


def interrupt_lines(first: bool) -> list[str]:
    """What Ctrl-C does (the first one stops the tasks, a second kills them)."""
    if first:
        return ["Interrupted: stopping the run's tasks (Ctrl-C again to kill them at once)"]
    return ["Interrupted again: killing the run's tasks"]

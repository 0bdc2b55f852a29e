"""What `python flow.py run` shows of a FlowRun while it runs and when it ends (pure).

Owns: turning the bounded `FlowRun.status` the operator writes (docs/api.md,
"FlowRun.status": ``phase``, ``duration``, ``reason``/``message``, ``failure``
and one ``steps[]`` entry per step with ``name``, ``phase`` and ``tasks`` counts)
into lines of text:

- `step_lines`: one line per step that has started, a progress bar for a step
  of many tasks (a foreach) while it runs; `status_lines` adds why a run that is
  still going cannot make progress (``Unschedulable``, ...): the block a terminal
  redraws in place;
- `ProgressLog`: the lines that changed since the last status it was fed, for
  output that is not a terminal (CI logs, tests): nothing is printed twice;
- `outcome_lines` and `interrupted_lines`: the end of a run, and what to do
  when the person following it presses Ctrl-C.

No I/O and no clock: `kflow.launch` watches the run and prints. Must not import
kubernetes or anything that talks to a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kflow.api_types import RunPhase, StepPhase

__all__ = ["BAR_WIDTH", "ProgressLog", "bar", "interrupted_lines", "outcome_lines",
           "status_lines", "step_lines"]

BAR_WIDTH = 12
INDENT = "  "
RUN_KEY = "\0run"  # `ProgressLog` key of the run-level reason line (no step has this name)


def _steps(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in status.get("steps") or [] if isinstance(s, Mapping) and s.get("name")]


def _count(step: Mapping[str, Any], key: str) -> int:
    value = (step.get("tasks") or {}).get(key)
    return value if isinstance(value, int) else 0


def _shown(step: Mapping[str, Any]) -> bool:
    """Started, finished or skipped: a step still waiting for its parents is not shown."""
    return step.get("phase") != StepPhase.PENDING.value or _count(step, "total") > 0


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[#######.....]``: `done` of `total` as `width` cells, full only when all are done."""
    filled = width if total and done >= total else (done * width // total if total > 0 else 0)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _step_line(step: Mapping[str, Any], width: int) -> str:
    name = str(step["name"]).ljust(width)
    phase = str(step.get("phase") or StepPhase.PENDING.value)
    total, succeeded = _count(step, "total"), _count(step, "succeeded")
    running, failed = _count(step, "running"), _count(step, "failed")
    if phase == StepPhase.RUNNING.value and total > 1:
        line = (f"{INDENT}{name}  {bar(succeeded, total)} {succeeded}/{total} "
                f"({running} running, {failed} failed)")
    else:
        line = f"{INDENT}{name}  {phase:<9}  {succeeded}/{total}"
        if step.get("failedIndexes"):
            line += f"  failed: {step['failedIndexes']}"
    if step.get("reason"):
        line += f"  {_reason(step)}"
    return line


def _reason(entry: Mapping[str, Any]) -> str:
    """``Reason: message`` of a step or run entry (the message only when there is one)."""
    message = entry.get("message")
    return f"{entry['reason']}: {message}" if message else str(entry["reason"])


def step_lines(status: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(step name, line)`` of every step shown, in the flow's order.

    A step is shown once it has started (or was skipped); names are padded to
    the longest step name so that the columns line up.
    """
    steps = _steps(status)
    width = max((len(str(s["name"])) for s in steps), default=0)
    return [(str(s["name"]), _step_line(s, width)) for s in steps if _shown(s)]


def _run_reason(status: Mapping[str, Any]) -> str | None:
    """Why a run that is still going cannot make progress now (``Unschedulable``, ...)."""
    if status.get("phase") in {p.value for p in RunPhase if p.terminal}:
        return None
    if not status.get("reason"):
        return None
    return f"{INDENT}({_reason(status)})"


def status_lines(status: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`step_lines`, then why a run still going is stuck (``Unschedulable``, ...) if it is."""
    lines = step_lines(status)
    reason = _run_reason(status)
    if reason is not None:
        lines.append((RUN_KEY, reason))
    return lines


class ProgressLog:
    """Feeds of successive statuses → only the lines that changed (plain, append-only)."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def feed(self, status: Mapping[str, Any]) -> list[str]:
        """The lines of `status` not printed before for the same step (or run reason)."""
        current = dict(status_lines(status))
        changed = [line for key, line in current.items() if self._last.get(key) != line]
        self._last.update(current)
        return changed


def _where(run: Mapping[str, Any]) -> tuple[str, str]:
    metadata = run.get("metadata") or {}
    return str(metadata.get("name") or "?"), str(metadata.get("namespace") or "default")


def _failure(status: Mapping[str, Any]) -> str:
    """Where and why a run failed; the parts the failure's message says already left out."""
    failure = status.get("failure") or {}
    reason = str(failure.get("reason") or status.get("reason") or "")
    message = str(failure.get("message") or status.get("message") or "")
    where = []
    if failure.get("step") and f"step {failure['step']}" not in message:
        where.append(f"step {failure['step']}")
        if failure.get("task") not in (None, ""):
            where.append(f"task {failure['task']}")
        if failure.get("attempt") is not None:
            where.append(f"attempt {failure['attempt']}")
    text = message if reason in message else ": ".join(p for p in (reason, message) if p)
    return ": ".join(part for part in (", ".join(where), text) if part)


def _failed_step(status: Mapping[str, Any]) -> str | None:
    failure = status.get("failure") or {}
    if failure.get("step"):
        return str(failure["step"])
    return next((str(s["name"]) for s in _steps(status)
                 if s.get("phase") == StepPhase.FAILED.value), None)


def outcome_lines(run: Mapping[str, Any], prog: str = "flow.py") -> list[str]:
    """The end of a run: phase, duration, why it failed, and where to look next."""
    name, namespace = _where(run)
    status = run.get("status") or {}
    phase = str(status.get("phase") or "Unknown")
    duration = status.get("duration")
    if phase == RunPhase.SUCCEEDED.value:
        head = f"FlowRun {name} Succeeded" + (f" in {duration}" if duration else "")
    else:
        head = f"FlowRun {name} {phase}" + (f" after {duration}" if duration else "")
        why = _failure(status) if phase == RunPhase.FAILED.value else status.get("message")
        if why:
            head += f": {why}"
    lines = [head, f"{INDENT}kubectl get fr {name} -n {namespace}"]
    step = _failed_step(status) if phase != RunPhase.SUCCEEDED.value else None
    if step:
        lines.append(f"{INDENT}python {prog} logs {name}/{step}")
    return lines


def interrupted_lines(name: str, namespace: str, prog: str = "flow.py") -> list[str]:
    """What to say when Ctrl-C stops the following (not the run)."""
    return [
        f"Stopped following; FlowRun {name} continues in the cluster (namespace {namespace}).",
        f"{INDENT}follow it: kubectl get fr {name} -n {namespace} -w",
        f"{INDENT}stop it:   kubectl patch fr {name} -n {namespace} --type merge "
        """-p '{"spec":{"stop":true}}'""",
        f"{INDENT}logs:      python {prog} logs {name}/<step>",
    ]

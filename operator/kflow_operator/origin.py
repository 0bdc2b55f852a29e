"""A ``resumeFrom`` run's origin: checked, and its results pinned at the run's start (pure).

Owns: `pin_origin` (is the origin usable by this run, and which of its tasks succeeded:
the compact document kept in the run's Flow snapshot, so the run keeps cloning the same
tasks whatever later happens to the origin) and `origin_attempts` (that document back
as the planner's `ObservedAttempt`s, plus the origin's run id for the runner's
``--origin-run-id``).

A task of the origin counts as succeeded when its newest attempt (its highest attempt
number, across in-place resumes) succeeded; only those are cloned. The origin must be
a finished run of the same Flow in the same namespace. Its pods are the record of its
results (each keeps kflow's finalizer while its run exists), so an origin whose
succeeded pods are gone cannot be cloned: that is an error, not a silent re-run of
everything.

Imports only the standard library, `kflow.api_types`, `kflow.planning` and
`kflow_operator`'s pure modules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from kflow import api_types
from kflow.api_types import TERMINAL_PHASES, RunPhase
from kflow.planning import ObservedAttempt, TaskId, TaskResult

__all__ = ["MAX_PINNED_BYTES", "OriginError", "origin_attempts", "pin_origin"]

MAX_PINNED_BYTES: Final = 800_000
"""The pinned origin lives in a ConfigMap (at most 1 MiB with the Flow)."""


class OriginError(ValueError):
    """The origin cannot be used; the message says why and what to do."""


def _succeeded(observed: Iterable[ObservedAttempt]) -> list[ObservedAttempt]:
    newest: dict[TaskId, ObservedAttempt] = {}
    for attempt in observed:
        known = newest.get(attempt.task)
        if known is None or attempt.attempt > known.attempt:
            newest[attempt.task] = attempt
    return sorted((a for a in newest.values() if a.state == "succeeded"),
                  key=lambda a: (a.task.step, a.task.indexes))


def _recorded_successes(origin: Mapping[str, Any]) -> int:
    steps = (origin.get("status") or {}).get("steps") or []
    return sum(int(((s.get("tasks") or {}).get("succeeded")) or 0) for s in steps
               if isinstance(s, Mapping))


def pin_origin(run: Mapping[str, Any], origin: Mapping[str, Any] | None,
               observed: Sequence[ObservedAttempt], flow_spec: Mapping[str, Any]
               ) -> dict[str, Any]:
    """The pinned origin of `run` (``spec.resumeFrom``): ``{"run", "runId", "tasks"}``.

    `origin` is the origin FlowRun as read (None: not found), `observed` its pods,
    `flow_spec` the Flow this run starts with. Raises `OriginError` saying what is wrong.
    """
    spec = run.get("spec") or {}
    wanted = spec.get("resumeFrom") or {}
    name = str(wanted.get("run") or "")
    step = wanted.get("step")
    namespace = str((run.get("metadata") or {}).get("namespace") or "")
    flow = str((spec.get("flowRef") or {}).get("name") or "")
    if origin is None:
        raise OriginError(f"spec.resumeFrom.run: FlowRun {name} not found in namespace "
                          f"{namespace}; name a finished run of flow {flow}")
    origin_flow = str(((origin.get("spec") or {}).get("flowRef") or {}).get("name") or "")
    if origin_flow != flow:
        raise OriginError(f"spec.resumeFrom.run: {name} is a run of flow {origin_flow}, not "
                          f"of {flow}; name a run of {flow}")
    phase = (origin.get("status") or {}).get("phase")
    if phase not in TERMINAL_PHASES:
        raise OriginError(f"spec.resumeFrom.run: {name} is {phase or 'not started'}, not "
                          "finished; wait for it to end (or stop it), then create this run "
                          "again")
    steps = [str(s.get("name")) for s in flow_spec.get("steps") or []
             if isinstance(s, Mapping)]
    if step is not None and step not in steps:
        raise OriginError(f"spec.resumeFrom.step: {step} is not a step of flow "
                          f"{flow_spec.get('flowName')} (its steps: {', '.join(steps)})")
    if phase == RunPhase.SUCCEEDED and step is None:
        raise OriginError(f"spec.resumeFrom: {name} succeeded, so nothing failed to re-run; "
                          "set spec.resumeFrom.step to the step to re-run from")
    if spec.get("parameters") and step != flow_spec.get("start"):
        raise OriginError("spec.parameters: a run resumed from another keeps the origin's "
                          "parameters (its start task is cloned); remove spec.parameters, "
                          f"or set spec.resumeFrom.step: {flow_spec.get('start')} to run "
                          "with new ones")
    kept = _succeeded(observed)
    if len(kept) < _recorded_successes(origin):
        raise OriginError(f"spec.resumeFrom.run: the pods of {name} are gone "
                          f"({len(kept)} of its {_recorded_successes(origin)} succeeded "
                          "tasks left), so its results cannot be cloned; resume from "
                          "another run, or run the flow again")
    tasks = [[a.task.step, a.task.task, a.attempt,
              a.result.foreach_splits if a.result else None,
              a.result.switch if a.result else None] for a in kept]
    pinned = {"run": name, "runId": api_types.run_id(origin), "tasks": tasks}
    size = len(json.dumps(pinned))
    if size > MAX_PINNED_BYTES:
        raise OriginError(f"spec.resumeFrom.run: {name} has too many tasks to clone "
                          f"({len(tasks)}; {size} bytes pinned, at most {MAX_PINNED_BYTES})")
    return pinned


def origin_attempts(pinned: Mapping[str, Any] | None
                    ) -> tuple[str | None, list[ObservedAttempt]]:
    """The origin's run id and its succeeded tasks, from a pinned document (None: the
    run has no origin)."""
    if not pinned:
        return None, []
    attempts = []
    for step, task, attempt, splits, switch in pinned.get("tasks") or []:
        attempts.append(ObservedAttempt(
            TaskId(str(step), str(task)), int(attempt), "succeeded",
            result=TaskResult(ok=True, foreach_splits=splits, switch=switch)))
    return str(pinned["runId"]), attempts

"""The local run's loop: observe → `plan(...)` → act, until the run has ended.

Owns: `drive`, the local counterpart of the operator's reconcile
(`kflow_operator.reconcile`), minus the cluster: the attempts come from an
`Executor`, the planner's status is kept in memory (the previous status is the
planner's input, as ``FlowRun.status`` is on the cluster) and handed to
`on_status` whenever it changed (the session prints it and writes the run record).

Each turn: read every attempt from the executor, plan, apply the stops then the
starts (the planner caps them at the run's ``max_parallelism``: ``--max-workers``),
then sleep until an attempt changes or the planner's ``requeue_after`` (a retry's
back-off) is due. Several ends that arrive together are planned once. A turn that
started tasks plans again at once and reports its status only then, with the new
tasks running (one progress line per change a user can see, not two). The run is over
when its phase is terminal and no attempt still runs (a failed run's other tasks are
stopped first, fail-fast as on the cluster).

`interrupted` (Ctrl-C, SIGTERM) sets ``spec.stop`` on the run: the planner then stops
every attempt and ends the run ``Stopped``; a second interruption leaves the loop at
once (the caller's `Executor.close` kills what is left).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from kflow.api_types import RunPhase
from kflow.local.executor import Executor
from kflow.planning import FlowModel, ObservedAttempt, PlannerConfig, RunModel, plan

__all__ = ["IDLE_WAIT_SECONDS", "drive"]

IDLE_WAIT_SECONDS = 5.0
"""Longest sleep without any event (a safety net: every change wakes the loop)."""


def _now() -> datetime:
    return datetime.now(UTC)


def drive(flow: FlowModel, run: RunModel, executor: Executor, *,
          origin: Sequence[ObservedAttempt] = (),
          on_status: Callable[[Mapping[str, Any]], None] = lambda status: None,
          interrupted: threading.Event | None = None,
          config: PlannerConfig = PlannerConfig(),  # noqa: B008 (frozen, immutable)
          clock: Callable[[], datetime] = _now) -> dict[str, Any]:
    """Run `run` to its end with `executor`; its final status (the planner's)."""
    stop = interrupted or threading.Event()
    status: dict[str, Any] = dict(run.status)
    while True:
        if stop.is_set() and not run.stop:
            run = replace(run, stop=True)
        decided = plan(flow, run, executor.observe(), clock(), config, origin=origin)
        for stopping in decided.stops:
            executor.stop(stopping.task, stopping.attempt, stopping.reason)
        for starting in decided.starts:
            executor.start(starting)
        if decided.status != status:
            status = dict(decided.status)
            if not decided.starts:   # else the next turn (at once) reports them running
                on_status(status)
        run = replace(run, status=status)
        phase = RunPhase(status["phase"])
        if phase.terminal and executor.active() == 0 and not decided.starts:
            return status
        wait = IDLE_WAIT_SECONDS
        if decided.requeue_after is not None:
            wait = min(wait, max(decided.requeue_after, 0.0))
        if decided.starts:
            wait = 0.0       # a start that failed to spawn is already observable
        executor.wait(wait)

"""The planner's value types: what it observes and what it asks for (pure).

Owns: `TaskId`, `TaskResult` (the parsed termination message of the runner,
see `kflow.runner.result`, including its millisecond clock readings),
`ObservedAttempt` (one pod, as the operator shell saw it), the actions
`StartTask`, `StopTask`, `Event`, and `Plan`.

The operator shell (`kflow_operator`) imports these types: fields may be
added with defaults, never renamed. Imports nothing beyond the standard
library (no kopf, kubernetes, minio, kflow.store or kflow.runner).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "ORIGIN_ATTEMPT",
    "Action",
    "Event",
    "ObservedAttempt",
    "Plan",
    "StartTask",
    "StopTask",
    "TaskId",
    "TaskResult",
    "TaskState",
]

TaskState = Literal["pending", "running", "succeeded", "failed"]

ORIGIN_ATTEMPT = -1
"""The attempt number under which the planner sees a ``resumeFrom`` origin's result of a
task (older than any attempt of the run itself, which start at 0)."""


@dataclass(frozen=True, order=True)
class TaskId:
    """One task of a run: a step and its foreach index path ("0" outside a foreach,
    "3" inside one, "3.1" inside a nested one)."""

    step: str
    task: str = "0"

    @property
    def indexes(self) -> tuple[int, ...]:
        """The index path as numbers ("3.1" → (3, 1)); "0" outside a foreach → (0,)."""
        return tuple(int(part) for part in self.task.split("."))

    def __str__(self) -> str:
        return f"{self.step}/{self.task}"


@dataclass(frozen=True)
class TaskResult:
    """The part of the runner's termination message the planner needs."""

    ok: bool
    next: tuple[str, ...] = ()
    foreach_splits: int | None = None
    switch: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    # The runner's own clock (ms resolution, unlike the pod's timestamps): its process
    # start, the step function's start and end, and the commit of the task's record.
    runner_started_at: datetime | None = None
    user_started_at: datetime | None = None
    user_finished_at: datetime | None = None
    runner_finished_at: datetime | None = None

    @classmethod
    def parse(cls, text: str | None) -> TaskResult | None:
        """Parse the termination message JSON; None for anything that is not one
        (empty, not JSON, wrong types): the pod status is then all we know."""
        if not text:
            return None
        try:
            data = json.loads(text)
        except (ValueError, TypeError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
            return None
        raw_next = data.get("next") or []
        if not isinstance(raw_next, list) or not all(isinstance(s, str) for s in raw_next):
            return None
        splits: int | None = None
        foreach = data.get("foreach")
        if isinstance(foreach, dict):
            value = foreach.get("splits")
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                splits = value
        switch = data.get("switch")
        error = data.get("error")
        error_type = error_message = None
        if isinstance(error, dict):
            if isinstance(error.get("type"), str):
                error_type = error["type"]
            if isinstance(error.get("message"), str):
                error_message = error["message"]
        at = data.get("at")
        clock = at if isinstance(at, Mapping) else {}
        return cls(ok=data["ok"], next=tuple(raw_next), foreach_splits=splits,
                   switch=switch if isinstance(switch, str) else None,
                   error_type=error_type, error_message=error_message,
                   runner_started_at=_epoch(clock.get("startedAt")),
                   user_started_at=_epoch(clock.get("userStartedAt")),
                   user_finished_at=_epoch(clock.get("userFinishedAt")),
                   runner_finished_at=_epoch(clock.get("finishedAt")))


def _epoch(value: object) -> datetime | None:
    """Epoch seconds (a JSON number) → aware UTC datetime; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class ObservedAttempt:
    """One attempt of one task (one pod), as the operator shell observed it."""

    task: TaskId
    attempt: int
    state: TaskState
    reason: str | None = None          # api_types.FailureReason value when failed
    message: str = ""                  # (or Unschedulable while pending)
    exit_code: int | None = None
    result: TaskResult | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    deleted: bool = False              # the pod is being deleted (stop / eviction)
    # The operator's own clock (ms), from the pod's annotations: when the task became
    # runnable (StartTask.ready_at) and just before the pod was created.
    ready_at: datetime | None = None
    pod_created_at: datetime | None = None

    @property
    def done_at(self) -> datetime | None:
        """When the attempt finished: the runner's ms clock, else the pod's (1 s)."""
        ran = self.result.runner_finished_at if self.result is not None else None
        return ran or self.finished_at


@dataclass(frozen=True)
class StartTask:
    """Create the pod of this attempt."""

    task: TaskId
    attempt: int
    last_user_attempt: int             # passed to the runner as --max-user-code-retries
    # When the task became runnable: its parents' (or, for a retry, its previous
    # attempt's) finish, or a retry's back-off end; None when unknown (the start step,
    # the first tasks of a resume). The pod records it (annotation kflow.dev/ready-at).
    ready_at: datetime | None = None


@dataclass(frozen=True)
class StopTask:
    """Delete the pod of this attempt."""

    task: TaskId
    attempt: int
    reason: str


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to record on the FlowRun."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = StartTask | StopTask | Event


@dataclass(frozen=True)
class Plan:
    """What one reconcile must do: the actions, in order, and the new status."""

    actions: tuple[Action, ...]
    status: dict[str, Any]             # the FlowRun's complete new .status (docs/api.md)
    requeue_after: float | None        # seconds until a timed decision
    delete_run: bool = False           # spec.ttlSecondsAfterFinished has passed: delete it

    @property
    def starts(self) -> tuple[StartTask, ...]:
        """The StartTask actions."""
        return tuple(a for a in self.actions if isinstance(a, StartTask))

    @property
    def stops(self) -> tuple[StopTask, ...]:
        """The StopTask actions."""
        return tuple(a for a in self.actions if isinstance(a, StopTask))

    @property
    def events(self) -> tuple[Event, ...]:
        """The Event actions."""
        return tuple(a for a in self.actions if isinstance(a, Event))

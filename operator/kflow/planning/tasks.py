"""One task's state from its observed attempts: retries, budgets, resume generations (pure).

Owns: `TaskView` and `evaluate_task`, the whole attempt policy of one task.

Attempt numbers. Attempts of the first execution are 0, 1, 2, …; an in-place
resume N (`spec.resume.attempt` = N) starts its attempts at
``base = N * ATTEMPTS_PER_RESUME`` (100, 200, …). So which resume generation an
attempt belongs to is read off its number, with no per-task bookkeeping in the
bounded status, and the rule survives an operator restart and a lagging pod
cache (a new attempt is always the same number, a repeated create is a 409):

* attempts ≥ base decide the task; their failures spend fresh budgets;
* a task with no attempt ≥ base keeps its older result when that succeeded (a
  kept task), unless it must run again: its step is the resume's `step`, or a
  parent task ran in this generation (Metaflow re-runs everything downstream
  of a re-run task); otherwise (it failed, was stopped, never ran) it starts
  attempt ``base``.

Budgets within a generation: user failures (`failures.Budget.USER`) allow
``retry.times`` retries, each after ``minutesBetweenRetries``; infrastructure
failures allow `PlannerConfig.infrastructure_retries` retries, at once, and
shift the last user-code attempt by one each (``last_user_attempt = base +
retry.times + infrastructure failures so far``, passed to the runner as
``--max-user-code-retries``; the runner applies @catch on that attempt). When
the infrastructure budget runs out on a step with @catch, one more attempt
``last_user_attempt + 1`` starts: the runner's catch fallback, which does not
run the step and stores "failed on every attempt" in the catch variable.

Must not import: kopf, kubernetes, minio, kflow.store, kflow.runner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from kflow.api_types import FailureReason
from kflow.planning.failures import Budget, classify
from kflow.planning.flow import StepModel
from kflow.planning.model import ObservedAttempt, TaskId, TaskResult
from kflow.planning.run import PlannerConfig

__all__ = ["TaskView", "ViewState", "evaluate_task"]

_STUCK_REASONS = {r.value: r for r in (FailureReason.UNSCHEDULABLE, FailureReason.IMAGE_ERROR,
                                       FailureReason.LAUNCH_ERROR)}
"""Reasons of a pending pod that is stuck: shown at once, failed after the pending timeout."""

ViewState = Literal["waiting", "pending", "running", "succeeded", "failed"]
"""`waiting`: a new attempt is due (now or after `due`); the others as observed."""


@dataclass(frozen=True)
class TaskView:
    """What the planner knows about one task of the current generation."""

    task: TaskId
    state: ViewState
    latest: ObservedAttempt | None = None      # the attempt that decides the state
    next_attempt: int | None = None            # when waiting
    last_user_attempt: int = 0                 # when waiting
    due: datetime | None = None                # when waiting on a back-off
    reason: FailureReason | None = None        # failed: why; waiting: why the last one failed
    message: str = ""
    kept: bool = False                         # succeeded in an earlier generation
    fresh: bool = False                        # its deciding attempt is of this generation
    unschedulable: bool = False                # pending and stuck (Unschedulable, ImageError,
                                               # LaunchError): `reason`, `message` say why
    pending_deadline: datetime | None = None   # when an unschedulable pod fails
    ready_at: datetime | None = None           # when waiting: since when it could run

    @property
    def result(self) -> TaskResult | None:
        """The runner's result of the deciding attempt."""
        return self.latest.result if self.latest is not None else None

    @property
    def active(self) -> bool:
        """A pod of this task is pending or running."""
        return self.state in ("pending", "running")


def _error_text(attempt: ObservedAttempt) -> str:
    if attempt.result is not None and attempt.result.error_type:
        text = attempt.result.error_type
        if attempt.result.error_message:
            text += f": {attempt.result.error_message}"
        return text
    return attempt.message


def evaluate_task(step: StepModel, task: TaskId, attempts: Sequence[ObservedAttempt], *,
                  base: int, rerun: bool, config: PlannerConfig, now: datetime,
                  parents_done_at: datetime | None = None) -> TaskView:
    """The state of `task` given all its observed attempts (any order).

    `base` is the first attempt number of the current generation; `rerun`
    says that an older success must not be kept (see the module docstring).
    `parents_done_at` (when its last parent finished) becomes the `ready_at` of a
    first attempt; a retry is ready when its previous attempt finished, or when its
    back-off ends if that is later.
    """
    ordered = sorted(attempts, key=lambda a: a.attempt)
    current = [a for a in ordered if a.attempt >= base]
    if not current:
        older = ordered[-1] if ordered else None
        if older is not None and older.state == "succeeded" and not rerun:
            return TaskView(task, "succeeded", older, kept=True)
        if older is not None and older.state in ("pending", "running"):
            return TaskView(task, older.state, older)   # e.g. still being stopped
        return TaskView(task, "waiting", next_attempt=base,
                        last_user_attempt=base + step.retry_times, ready_at=parents_done_at)
    user_used = infra_used = 0
    for earlier in current[:-1]:
        if earlier.state == "failed":
            budget, _ = classify(earlier)
            user_used += budget is Budget.USER
            infra_used += budget is Budget.INFRA
    latest = current[-1]
    if latest.state == "pending":
        stuck = _STUCK_REASONS.get(latest.reason or "")
        if stuck is not None:
            deadline = (latest.created_at or now) + timedelta(
                seconds=config.pending_timeout_seconds)
            if now >= deadline:
                return TaskView(task, "failed", latest, reason=stuck,
                                message=f"still pending after "
                                        f"{config.pending_timeout_seconds:g}s: "
                                        f"{latest.message}", fresh=True)
            return TaskView(task, "pending", latest, fresh=True, unschedulable=True,
                            reason=stuck, message=latest.message, pending_deadline=deadline)
        return TaskView(task, "pending", latest, fresh=True)
    if latest.state in ("running", "succeeded"):
        return TaskView(task, latest.state, latest, fresh=True)
    # failed
    budget, reason = classify(latest)
    message = _error_text(latest)
    gave_up = TaskView(task, "failed", latest, reason=reason, message=message, fresh=True)
    if infra_used > config.infrastructure_retries:
        return gave_up          # this was the catch fallback: nothing more to try
    if budget is Budget.USER and user_used + 1 <= step.retry_times:
        finished = latest.finished_at or latest.started_at or latest.created_at or now
        due = finished + timedelta(minutes=step.minutes_between_retries)
        return TaskView(task, "waiting", latest, next_attempt=latest.attempt + 1,
                        last_user_attempt=base + step.retry_times + infra_used,
                        due=due if due > now else None, reason=reason, message=message,
                        fresh=True,
                        ready_at=due if step.minutes_between_retries > 0 else latest.done_at)
    if budget is Budget.INFRA:
        infra_used += 1
        last_user = base + step.retry_times + infra_used
        if infra_used <= config.infrastructure_retries:
            return TaskView(task, "waiting", latest, next_attempt=latest.attempt + 1,
                            last_user_attempt=last_user, reason=reason, message=message,
                            fresh=True, ready_at=latest.done_at)
        if step.catch:
            return TaskView(task, "waiting", latest, next_attempt=last_user + 1,
                            last_user_attempt=last_user, reason=reason, message=message,
                            fresh=True, ready_at=latest.done_at)
    return gave_up

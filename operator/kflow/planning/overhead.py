"""How much of a run was kflow and how much the user's code: the `overhead` summaries (pure).

Owns: `AttemptTimes` (one finished attempt's phases, from millisecond clocks only),
`step_overhead` (the bounded ``status.steps[].overhead`` object) and `run_overhead`
(``status.overhead``). Kubernetes' own timestamps have 1 s resolution, so every time
here comes from kflow's clocks:

* ``readyAt``, ``podCreatedAt``: the operator's clock, recorded in the pod's annotations
  (`ObservedAttempt.ready_at`, `.pod_created_at`);
* the runner's process start, the step function's start and end and the record's
  commit: the runner's clock, in its termination message (`TaskResult`).

The phases of one attempt (seconds; a negative difference, i.e. clock skew between
the operator's and the node's clocks, counts as 0)::

    ready ─toCreate─▶ pod created ─toStart─▶ runner started ─prepare─▶ user code
          ─userCode─▶ user code done ─persist─▶ record committed

``toCreate`` also holds the operator noticing that the parents finished (a watch event,
the reconcile queue, ``maxParallelism``, the pod token bucket); ``toStart`` is
scheduling and pod start-up (image, container, Python); ``prepare`` is the code package
and the inputs; ``persist`` the artifacts and the record. ``kflow`` is the sum of
everything but ``userCode``.

Summaries are bounded (a fixed set of keys per step, whatever the number of tasks) and
deterministic (same attempts in any order, same strings: totals use `math.fsum`, which
does not depend on the order), so an unchanged run writes no status.

Must not import: kopf, kubernetes, minio, kflow.store, kflow.runner.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kflow.planning.model import ObservedAttempt

__all__ = ["AttemptTimes", "format_seconds", "run_overhead", "step_overhead"]


def format_seconds(seconds: float) -> str:
    """Seconds with millisecond precision: 0.1234 → "0.123s" (deterministic)."""
    return f"{max(seconds, 0.0):.3f}s"


def _span(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


@dataclass(frozen=True)
class AttemptTimes:
    """The phases of one finished attempt, in seconds (None: a clock reading is missing)."""

    to_create: float | None      # ready → pod created (operator)
    to_start: float | None       # pod created → runner started (scheduling, start-up)
    prepare: float               # runner started → user code started
    user_code: float             # the step function
    persist: float               # user code done → record committed

    @property
    def kflow(self) -> float:
        """Everything but the user's code that kflow measured."""
        return (self.to_create or 0.0) + (self.to_start or 0.0) + self.prepare + self.persist

    @classmethod
    def of(cls, attempt: ObservedAttempt) -> AttemptTimes | None:
        """The phases of `attempt`; None unless it finished with the runner's clock readings."""
        result = attempt.result
        if attempt.state not in ("succeeded", "failed") or result is None:
            return None
        started, finished = result.runner_started_at, result.runner_finished_at
        if started is None or finished is None:
            return None
        # A step that never reached its code (a runner error): all of it was kflow.
        user_start = result.user_started_at or finished
        user_end = result.user_finished_at or user_start
        return cls(to_create=_span(attempt.ready_at, attempt.pod_created_at),
                   to_start=_span(attempt.pod_created_at, started),
                   prepare=_span(started, user_start) or 0.0,
                   user_code=_span(user_start, user_end) or 0.0,
                   persist=_span(user_end, finished) or 0.0)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]          # the lower median: a real sample


def step_overhead(attempts: Iterable[ObservedAttempt]) -> dict[str, Any] | None:
    """``status.steps[].overhead`` over a step's finished attempts (None: none measured).

    Keys: ``samples`` (attempts measured), ``toCreateP50``/``toCreateMax``,
    ``toStartP50``/``toStartMax`` (absent without a sample), ``userCode`` and ``kflow``
    (totals over the samples).
    """
    times = [t for a in attempts if (t := AttemptTimes.of(a)) is not None]
    if not times:
        return None
    summary: dict[str, Any] = {"samples": len(times)}
    for key, values in (("toCreate", [t.to_create for t in times if t.to_create is not None]),
                        ("toStart", [t.to_start for t in times if t.to_start is not None])):
        if values:
            summary[f"{key}P50"] = format_seconds(_median(values))
            summary[f"{key}Max"] = format_seconds(max(values))
    summary["userCode"] = format_seconds(math.fsum(t.user_code for t in times))
    summary["kflow"] = format_seconds(math.fsum(t.kflow for t in times))
    return summary


def run_overhead(attempts: Iterable[ObservedAttempt]) -> dict[str, Any] | None:
    """``status.overhead``: ``samples``, ``userCode`` and ``kflow`` over the whole run."""
    times = [t for a in attempts if (t := AttemptTimes.of(a)) is not None]
    if not times:
        return None
    return {"samples": len(times),
            "userCode": format_seconds(math.fsum(t.user_code for t in times)),
            "kflow": format_seconds(math.fsum(t.kflow for t in times))}

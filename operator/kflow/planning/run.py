"""The FlowRun as the planner sees it, and the planner's settings (pure).

Owns: `RunModel` (parsed once from the FlowRun dict: name, generation, the
spec fields the planner acts on, and the previous status it builds on) and
`PlannerConfig` (infrastructure retry budget, pending timeout, default
parallelism). Timestamps are RFC 3339 strings in the CR and aware
datetimes here.

Must not import: kopf, kubernetes, minio, kflow.store, kflow.runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kflow.api_types import DEFAULT_MAX_PARALLELISM, TERMINAL_PHASES, RunPhase

__all__ = ["ATTEMPTS_PER_RESUME", "PlannerConfig", "RunModel", "format_time", "format_time_ms",
           "parse_time"]

ATTEMPTS_PER_RESUME = 100
"""Attempt numbers of in-place resume N start at N * 100 (see `kflow.planning.tasks`)."""


@dataclass(frozen=True)
class PlannerConfig:
    """Operator-wide planner settings."""

    infrastructure_retries: int = 3          # per task, for platform failures
    pending_timeout_seconds: float = 300.0   # an Unschedulable pod fails after this long
    default_max_parallelism: int = DEFAULT_MAX_PARALLELISM

    def __post_init__(self) -> None:
        # user attempts (≤ 5) + infrastructure retries + the catch fallback must fit
        # in the attempt numbers of one resume generation
        if not 0 <= self.infrastructure_retries <= ATTEMPTS_PER_RESUME - 10:
            raise ValueError("infrastructure_retries must be within 0 … 90")


@dataclass(frozen=True)
class RunModel:
    """A FlowRun: what the planner reads from its metadata, spec and previous status."""

    name: str
    namespace: str = "default"
    generation: int = 1
    max_parallelism: int | None = None
    stop: bool = False
    resume_attempt: int = 0                  # spec.resume.attempt (0: never)
    resume_step: str | None = None           # spec.resume.step
    ttl_seconds_after_finished: int | None = None   # spec.ttlSecondsAfterFinished
    resume_from_run: str | None = None       # spec.resumeFrom.run
    resume_from_step: str | None = None      # spec.resumeFrom.step
    status: Mapping[str, Any] = field(default_factory=dict)   # the previous .status

    @property
    def phase(self) -> RunPhase | None:
        """The previous phase (None for a new run)."""
        value = self.status.get("phase")
        try:
            return RunPhase(value) if value else None
        except ValueError:
            return None

    @property
    def status_resume_attempt(self) -> int:
        """`status.resumeAttempt`: the resume last acted on (or recorded)."""
        value = self.status.get("resumeAttempt", 0)
        return value if isinstance(value, int) else 0

    def expires_at(self, status: Mapping[str, Any]) -> datetime | None:
        """When this run, with the new `status`, is to be deleted: its finishedAt plus
        `spec.ttlSecondsAfterFinished`; None without a TTL or while not finished."""
        finished = parse_time(status.get("finishedAt"))
        phase = status.get("phase")
        if (self.ttl_seconds_after_finished is None or finished is None
                or phase not in TERMINAL_PHASES):
            return None
        return finished + timedelta(seconds=self.ttl_seconds_after_finished)

    def condition(self, kind: str) -> Mapping[str, Any] | None:
        """The previous condition of this type."""
        for item in self.status.get("conditions") or ():
            if isinstance(item, Mapping) and item.get("type") == kind:
                return item
        return None

    def step_status(self, name: str) -> Mapping[str, Any]:
        """The previous `status.steps[]` entry of a step ({} when none)."""
        for item in self.status.get("steps") or ():
            if isinstance(item, Mapping) and item.get("name") == name:
                return item
        return {}

    @classmethod
    def from_cr(cls, flowrun: Mapping[str, Any]) -> RunModel:
        """Parse a FlowRun object (a dict as the API returns it)."""
        meta = flowrun.get("metadata") or {}
        spec = flowrun.get("spec") or {}
        resume = spec.get("resume") or {}
        parallelism = spec.get("maxParallelism")
        ttl = spec.get("ttlSecondsAfterFinished")
        found = spec.get("resumeFrom")
        origin: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "default")),
            generation=int(meta.get("generation", 1) or 1),
            max_parallelism=parallelism if isinstance(parallelism, int) else None,
            stop=bool(spec.get("stop", False)),
            resume_attempt=int(resume.get("attempt", 0) or 0),
            resume_step=resume.get("step") if isinstance(resume.get("step"), str) else None,
            resume_from_run=origin.get("run") if isinstance(origin.get("run"), str) else None,
            resume_from_step=origin.get("step") if isinstance(origin.get("step"),
                                                               str) else None,
            ttl_seconds_after_finished=ttl if isinstance(ttl, int) and not isinstance(
                ttl, bool) and ttl >= 0 else None,
            status=dict(flowrun.get("status") or {}),
        )


def parse_time(value: object) -> datetime | None:
    """RFC 3339 ("2026-11-29T10:00:00Z") → aware datetime; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    """Aware (or naive UTC) datetime → "2026-11-29T10:00:00Z" (whole seconds)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_time_ms(value: datetime) -> str:
    """Aware (or naive UTC) datetime → "2026-11-29T10:00:00.123Z" (milliseconds)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"

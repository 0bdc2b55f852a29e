"""A Flow's schedule: which FlowRuns to start, stop and delete, and when to look again (pure).

Owns: `ScheduleSpec` (``spec.schedule`` parsed and checked), `ScheduledRun` (a FlowRun
the schedule started, as observed), `plan_schedule` and its `SchedulePlan`, and the
names and marks of scheduled FlowRuns (`scheduled_run_name`, `scheduled_run_body`).

The rules, as a Kubernetes CronJob's:

- ``status.nextScheduleTime`` is the schedule's state: the earliest time not yet acted
  on. It is computed from *now* when the Flow gets a schedule, when the cron line or
  time zone changes (a redeploy takes effect at once, nothing old is caught up), or
  when it is missing. Once it has passed, only the *latest* time at or before now is
  due (a burst of missed times never runs; the others are skipped).
- ``startingDeadlineSeconds``: a due time later than that is skipped (Event
  ``MissedSchedule``); absent, a due time runs however late.
- ``concurrencyPolicy``: ``Allow`` starts the run whatever else runs; ``Forbid`` waits
  while a scheduled run is active (the due time stays pending, subject to the deadline;
  when the active run ends the Flow is reconciled again); ``Replace`` stops the active
  scheduled runs (``spec.stop``) and starts the new one.
- A scheduled FlowRun is named ``<flow>-<minutes since the epoch of its time>``, labelled
  ``kflow.dev/started-by=schedule`` and annotated ``kflow.dev/scheduled-at``: a retry
  after a crash finds it (or gets a 409) and never starts a second run for one time.
- History: of the finished scheduled runs, the newest ``successfulRunsHistoryLimit``
  (default 3) Succeeded and ``failedRunsHistoryLimit`` (default 1) Failed or Stopped
  ones are kept, older ones deleted (their records stay in the object store).

Imports only the standard library, `kflow.api_types`, `kflow.planning` (times, Event),
`kflow.cron` and `kflow_operator.naming`: no kopf, no kubernetes client.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kflow import api_types
from kflow.api_types import RunPhase
from kflow.cron import Cron, CronError
from kflow.planning.model import Event
from kflow.planning.run import format_time, parse_time
from kflow_operator import naming

__all__ = [
    "ANNOTATION_SCHEDULED_AT",
    "LABEL_STARTED_BY",
    "STATUS_KEYS",
    "ConcurrencyPolicy",
    "CreateRun",
    "DeleteRun",
    "ScheduleError",
    "SchedulePlan",
    "ScheduleSpec",
    "ScheduledRun",
    "StopRun",
    "plan_schedule",
    "scheduled_run_body",
    "scheduled_run_name",
]

LABEL_STARTED_BY: Final = "kflow.dev/started-by"     # "schedule" or "trigger"
STARTED_BY_SCHEDULE: Final = "schedule"
ANNOTATION_SCHEDULED_AT: Final = "kflow.dev/scheduled-at"
DEFAULT_SUCCESSFUL_HISTORY: Final = 3
DEFAULT_FAILED_HISTORY: Final = 1
STATUS_KEYS: Final = frozenset({"lastScheduleTime", "nextScheduleTime", "lastScheduledRun"})
"""The keys of ``Flow.status`` this module owns."""


class ConcurrencyPolicy(enum.StrEnum):
    """What a due time does while a scheduled run of the flow is still active."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class ScheduleError(ValueError):
    """``spec.schedule`` cannot be used: the message names the field and what to write."""


@dataclass(frozen=True)
class ScheduleSpec:
    """``spec.schedule`` of a Flow, checked (see `ScheduleSpec.from_spec`)."""

    cron: Cron
    zone: ZoneInfo
    text: str                          # status.schedule, "<cron>[ <timezone>]"
    policy: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW
    deadline_seconds: int | None = None
    successful_history: int = DEFAULT_SUCCESSFUL_HISTORY
    failed_history: int = DEFAULT_FAILED_HISTORY

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> ScheduleSpec | None:
        """The Flow spec's schedule, None without one; `ScheduleError` when unusable."""
        schedule = spec.get("schedule")
        if not isinstance(schedule, Mapping) or not str(schedule.get("cron") or "").strip():
            return None
        line = " ".join(str(schedule["cron"]).split())
        try:
            cron = Cron.parse(line)
        except CronError as exc:
            raise ScheduleError(f"spec.schedule.cron: {exc}; fix @schedule(cron=...) and "
                                "deploy again") from None
        timezone = str(schedule.get("timezone") or "").strip()
        try:
            zone = ZoneInfo(timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"spec.schedule.timezone: {timezone} is not a known IANA "
                                "time zone (e.g. Europe/Paris, UTC); fix "
                                "@schedule(timezone=...) and deploy again") from None
        try:
            policy = ConcurrencyPolicy(str(schedule.get("concurrencyPolicy") or "Allow"))
        except ValueError:
            raise ScheduleError(f"spec.schedule.concurrencyPolicy: "
                                f"{schedule.get('concurrencyPolicy')!r} is not one of "
                                "Allow, Forbid, Replace") from None
        return cls(cron=cron, zone=zone, text=f"{line} {timezone}" if timezone else line,
                   policy=policy,
                   deadline_seconds=_count(schedule, "startingDeadlineSeconds", None, 1),
                   successful_history=_count(schedule, "successfulRunsHistoryLimit",
                                             DEFAULT_SUCCESSFUL_HISTORY, 0),
                   failed_history=_count(schedule, "failedRunsHistoryLimit",
                                         DEFAULT_FAILED_HISTORY, 0))


def _count(schedule: Mapping[str, Any], key: str, default: int | None,
           minimum: int) -> Any:
    value = schedule.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScheduleError(f"spec.schedule.{key}: {value!r} must be a whole number >= "
                            f"{minimum}")
    return value


@dataclass(frozen=True)
class ScheduledRun:
    """A FlowRun started by a Flow's schedule, as observed."""

    name: str
    uid: str
    scheduled_at: datetime | None
    created: str                       # creationTimestamp (RFC 3339, sorts as a string)
    phase: RunPhase | None
    stopping: bool = False

    @property
    def active(self) -> bool:
        return self.phase is None or not self.phase.terminal

    @classmethod
    def from_cr(cls, run: Mapping[str, Any], flow: str) -> ScheduledRun | None:
        """`run` as a scheduled run of Flow `flow`; None if it is not one (or is
        being deleted)."""
        metadata = run.get("metadata") or {}
        spec = run.get("spec") or {}
        if ((metadata.get("labels") or {}).get(LABEL_STARTED_BY) != STARTED_BY_SCHEDULE
                or (spec.get("flowRef") or {}).get("name") != flow
                or metadata.get("deletionTimestamp")):
            return None
        phase = (run.get("status") or {}).get("phase")
        try:
            parsed = RunPhase(phase) if phase else None
        except ValueError:
            parsed = None
        return cls(name=str(metadata.get("name") or ""), uid=str(metadata.get("uid") or ""),
                   scheduled_at=parse_time((metadata.get("annotations") or {}).get(
                       ANNOTATION_SCHEDULED_AT)),
                   created=str(metadata.get("creationTimestamp") or ""), phase=parsed,
                   stopping=bool(spec.get("stop")))


@dataclass(frozen=True)
class CreateRun:
    """Start the FlowRun `name` for the schedule's time `scheduled_at`."""

    name: str
    scheduled_at: datetime


@dataclass(frozen=True)
class StopRun:
    """Stop an active scheduled run (``Replace``)."""

    name: str


@dataclass(frozen=True)
class DeleteRun:
    """Delete a finished scheduled run beyond the history limits (by uid)."""

    name: str
    uid: str


@dataclass(frozen=True)
class SchedulePlan:
    """What `plan_schedule` decided. `status` holds the `STATUS_KEYS` to write (a key
    of them absent from it is to be removed)."""

    create: CreateRun | None = None
    stops: tuple[StopRun, ...] = ()
    deletes: tuple[DeleteRun, ...] = ()
    status: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None


def scheduled_run_name(flow: str, scheduled_at: datetime) -> str:
    """``<flow>-<minutes since the epoch>`` (as a CronJob names its Jobs), shortened
    with a hash of the flow's name when it would pass 63 characters."""
    minutes = str(int(scheduled_at.timestamp()) // 60)
    return naming.derived_name(flow, minutes, "schedule")


def scheduled_run_body(namespace: str, flow: str, create: CreateRun) -> dict[str, Any]:
    """The FlowRun `create` starts: the flow's parameters take their defaults."""
    return {
        "apiVersion": api_types.API_VERSION, "kind": api_types.FLOWRUN_KIND,
        "metadata": {
            "name": create.name, "namespace": namespace,
            "labels": {**api_types.common_labels(name="kflow", component="flowrun"),
                       api_types.LABEL_FLOW: naming.label_value(flow),
                       LABEL_STARTED_BY: STARTED_BY_SCHEDULE},
            "annotations": {ANNOTATION_SCHEDULED_AT: format_time(create.scheduled_at)},
        },
        "spec": {"flowRef": {"name": flow}},
    }


def _history(runs: Iterable[ScheduledRun], spec: ScheduleSpec) -> tuple[DeleteRun, ...]:
    """The finished runs beyond the history limits, oldest last-kept first."""
    def newest_first(run: ScheduledRun) -> tuple[str, str, str]:
        when = format_time(run.scheduled_at) if run.scheduled_at else run.created
        return when, run.created, run.name

    finished = sorted((r for r in runs if not r.active), key=newest_first, reverse=True)
    succeeded = [r for r in finished if r.phase == RunPhase.SUCCEEDED]
    failed = [r for r in finished if r.phase != RunPhase.SUCCEEDED]
    extra = succeeded[spec.successful_history:] + failed[spec.failed_history:]
    return tuple(DeleteRun(r.name, r.uid) for r in extra)


def plan_schedule(flow: str, spec: ScheduleSpec | None, old_status: Mapping[str, Any],
                  runs: Sequence[ScheduledRun], now: datetime) -> SchedulePlan:
    """What the schedule of Flow `flow` does now (see the module docstring).

    `spec` None: no schedule (or the Flow is not accepted): nothing starts and
    ``nextScheduleTime`` goes. `old_status` is the Flow's status as read (its
    ``schedule`` string tells whether the schedule changed); `runs` its scheduled runs.
    """
    status: dict[str, Any] = {k: old_status[k] for k in ("lastScheduleTime",
                                                          "lastScheduledRun")
                              if old_status.get(k)}
    if spec is None:
        return SchedulePlan(status=status)
    events: list[Event] = []
    next_time = parse_time(old_status.get("nextScheduleTime"))
    if next_time is None or old_status.get("schedule") != spec.text:
        next_time = spec.cron.next_after(now, spec.zone)
    create: CreateRun | None = None
    stops: tuple[StopRun, ...] = ()
    wake: list[datetime] = []
    due = spec.cron.latest_at_or_before(now, spec.zone) \
        if next_time is not None and next_time <= now else None
    if due is not None:
        name = scheduled_run_name(flow, due)
        existing = next((r for r in runs if r.name == name), None)
        active = [r for r in runs if r.active and r.name != name]
        late = (now - due).total_seconds()
        pending = False
        if existing is not None:
            status.update(lastScheduleTime=format_time(due), lastScheduledRun=name)
        elif spec.deadline_seconds is not None and late > spec.deadline_seconds:
            events.append(Event("Warning", "MissedSchedule", (
                f"skipped the run due at {format_time(due)}: started {late:.0f}s late, more "
                f"than startingDeadlineSeconds={spec.deadline_seconds}")))
        elif spec.policy == ConcurrencyPolicy.FORBID and active:
            pending = True
            if spec.deadline_seconds is not None:
                wake.append(datetime.fromtimestamp(due.timestamp() + spec.deadline_seconds
                                                   + 1, UTC))
        else:
            if spec.policy == ConcurrencyPolicy.REPLACE:
                stops = tuple(StopRun(r.name) for r in active if not r.stopping)
            create = CreateRun(name, due)
            status.update(lastScheduleTime=format_time(due), lastScheduledRun=name)
            events.append(Event("Normal", "Scheduled", f"started FlowRun {name} for the "
                                f"schedule's time {format_time(due)}"))
        if not pending:
            next_time = spec.cron.next_after(now, spec.zone)
    if next_time is not None:
        status["nextScheduleTime"] = format_time(next_time)
        wake.append(next_time if next_time > now else spec.cron.next_after(now, spec.zone)
                    or next_time)
    after = [max((moment - now).total_seconds(), 0.0) for moment in wake]
    return SchedulePlan(create=create, stops=stops,
                        deletes=_history([r for r in runs if r.name != (
                            create.name if create else None)], spec),
                        status=status, events=tuple(events),
                        requeue_after=min(after) if after else None)

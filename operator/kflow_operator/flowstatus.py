"""A Flow's status from its spec and its FlowRuns: `flow_status(flow, runs, now)` (pure).

Owns: what the operator writes in ``Flow.status`` (docs/api.md, "Flow.status"):

- ``observedGeneration``; conditions ``Accepted`` (the graph parses with
  `kflow.planning.FlowModel.from_spec` — what the CRD's CEL rules cannot check, such as
  a cycle — and the schedule parses: its cron line, time zone and policy, see
  `kflow_operator.schedule.ScheduleSpec`) and ``Ready`` (accepted). Conditions
  follow the API conventions: ``lastTransitionTime`` is kept while the status stays.
- ``stepCount`` and ``schedule`` ("<cron> <timezone>", or the cron alone without one);
  both are the Steps and Schedule printer columns.
- ``lastRun``: ``name``, ``phase``, ``startedAt`` of the newest FlowRun of the Flow (the
  latest ``status.startedAt``, else ``creationTimestamp``; the name breaks ties).
- Keys written by someone else (``lastScheduleTime``, ``nextScheduleTime``,
  ``lastScheduledRun``: `kflow_operator.schedule`) are kept.

Also `status_patch` (the JSON merge patch from the old status to the new one) and
`flow_selector` (the label selector of a Flow's runs). Imports only the standard
library, `kflow.planning` and `kflow_operator.naming` / `schedule`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from kflow import api_types
from kflow.api_types import ConditionStatus
from kflow.planning import FlowModel
from kflow.planning.status import condition
from kflow_operator import naming
from kflow_operator.schedule import ScheduleError, ScheduleSpec

__all__ = ["flow_selector", "flow_status", "last_run", "status_patch"]

ACCEPTED: Final = "Accepted"
READY: Final = "Ready"
_OWNED: Final = frozenset({"observedGeneration", "conditions", "stepCount", "schedule",
                           "lastRun"})


def _problem(spec: Mapping[str, Any], generation: int) -> tuple[str, str] | None:
    """(reason, message) of why the Flow cannot be accepted; None if it can."""
    try:
        FlowModel.from_spec(spec, generation)
    except (ValueError, KeyError, TypeError) as exc:
        return "InvalidGraph", f"{exc}; fix the flow and deploy it again"
    try:
        ScheduleSpec.from_spec(spec)
    except ScheduleError as exc:
        return "InvalidSchedule", str(exc)
    return None


def _schedule(spec: Mapping[str, Any]) -> str | None:
    schedule = spec.get("schedule") or {}
    cron = str(schedule.get("cron") or "").strip()
    if not cron:
        return None
    timezone = str(schedule.get("timezone") or "").strip()
    return f"{cron} {timezone}" if timezone else cron


def _started(run: Mapping[str, Any]) -> tuple[str, str, str]:
    """Sort key of a FlowRun: when it started (else was created), created, name."""
    metadata = run.get("metadata") or {}
    created = str(metadata.get("creationTimestamp") or "")
    started = str((run.get("status") or {}).get("startedAt") or created)
    return started, created, str(metadata.get("name") or "")


def last_run(flow_name: str, runs: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """``status.lastRun`` from the FlowRuns of `flow_name` (others are ignored).

    RFC 3339 UTC times ("…Z", as the API server writes them) sort as strings.
    """
    mine = [r for r in runs if ((r.get("spec") or {}).get("flowRef") or {}).get("name")
            == flow_name and not (r.get("metadata") or {}).get("deletionTimestamp")]
    if not mine:
        return None
    newest = max(mine, key=_started)
    status = newest.get("status") or {}
    entry: dict[str, Any] = {"name": str(newest["metadata"]["name"]),
                             "phase": str(status.get("phase") or "Pending")}
    if status.get("startedAt"):
        entry["startedAt"] = str(status["startedAt"])
    return entry


def flow_status(flow: Mapping[str, Any], runs: Iterable[Mapping[str, Any]],
                now: datetime) -> dict[str, Any]:
    """The whole ``status`` of `flow` (see the module docstring)."""
    metadata = flow.get("metadata") or {}
    spec = flow.get("spec") or {}
    old = flow.get("status") or {}
    generation = int(metadata.get("generation") or 0)
    previous = {c.get("type"): c for c in old.get("conditions") or []
                if isinstance(c, Mapping)}
    problem = _problem(spec, generation)
    if problem is None:
        accepted = (ConditionStatus.TRUE, ACCEPTED, "the graph, parameters and schedule "
                    "are valid")
        ready = (ConditionStatus.TRUE, READY, "accepted: FlowRuns of this flow can start")
    else:
        accepted = (ConditionStatus.FALSE, *problem)
        ready = (ConditionStatus.FALSE, "NotAccepted", f"the flow is not accepted: {problem[1]}")
    steps = spec.get("steps")
    status: dict[str, Any] = {key: value for key, value in old.items() if key not in _OWNED}
    status.update({
        "observedGeneration": generation,
        "conditions": [
            condition(previous.get(ACCEPTED), ACCEPTED, *accepted, now, generation),
            condition(previous.get(READY), READY, *ready, now, generation),
        ],
        "stepCount": len(steps) if isinstance(steps, list) else 0,
    })
    schedule = _schedule(spec)
    if schedule is not None:
        status["schedule"] = schedule
    newest = last_run(str(metadata.get("name") or ""), runs)
    if newest is not None:
        status["lastRun"] = newest
    return status


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning `old` into `new` (removed keys → None)."""
    patch = dict(new)
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def flow_selector(flow_name: str) -> str:
    """The label selector of a Flow's FlowRuns (the reconcile labels each run)."""
    return f"{api_types.LABEL_FLOW}={naming.label_value(flow_name)}"

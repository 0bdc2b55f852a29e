"""One reconcile of one Flow: read it and its FlowRuns, act on its schedule, write its status.

Owns: `FlowReconciler`. Runs when a Flow is created or changed, when the operator
starts, and when one of its FlowRuns starts or changes phase (`Reconciler` calls back),
through a `RunQueue` keyed by the Flow, so the reconciles of one Flow never overlap
and the newest status always wins. Level-triggered: the status is recomputed from
what the API server says now, never patched incrementally.

The schedule (`kflow_operator.schedule`): `plan_schedule` decides from the Flow, its
scheduled FlowRuns and the clock; this shell stops (``Replace``), creates (a 409 is "already
started") and deletes (history limits) FlowRuns, then writes the status (``schedule``,
``lastScheduleTime``, ``nextScheduleTime``, ``lastScheduledRun``, ``lastRun``) in one
patch, then the Events on the Flow. It returns the seconds until the next scheduled time:
the Flow's `RunQueue` timer. A redeploy is a Flow update, so a changed or removed
schedule is planned again at once (and the timer re-armed or cancelled).

Imports no kopf.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kflow.planning.run import format_time
from kflow_operator.flowstatus import ACCEPTED, flow_selector, flow_status, status_patch
from kflow_operator.k8s import KubeApi
from kflow_operator.schedule import (
    STATUS_KEYS,
    ScheduledRun,
    ScheduleError,
    SchedulePlan,
    ScheduleSpec,
    plan_schedule,
    scheduled_run_body,
)

__all__ = ["FlowReconciler"]


class FlowReconciler:
    """Writes ``Flow.status`` (see the module docstring)."""

    def __init__(self, kube: KubeApi, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._kube = kube
        self._clock = clock

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Bring Flow `namespace/name` up to date (its schedule, its status); the seconds
        until its next scheduled time (None: no schedule)."""
        flow = self._kube.get_flow(namespace, name)
        if flow is None or (flow.get("metadata") or {}).get("deletionTimestamp"):
            return None
        runs = self._kube.list_flowruns(namespace, flow_selector(name))
        old = flow.get("status") or {}
        now = self._clock()
        status = flow_status(flow, runs, now)
        plan = plan_schedule(name, _schedule(flow, status), old,
                             [r for r in (ScheduledRun.from_cr(run, name) for run in runs)
                              if r is not None], now)
        created = self._act(namespace, name, plan)
        if created is not None or plan.deletes:
            gone = {d.name for d in plan.deletes}
            runs = [r for r in runs if (r.get("metadata") or {}).get("name") not in gone]
            if created is not None:
                runs.append({**created, "metadata": {**created["metadata"],
                                                     "creationTimestamp": format_time(now)}})
            status = flow_status(flow, runs, now)
        status = {k: v for k, v in status.items() if k not in STATUS_KEYS}
        status.update(plan.status)
        if status != old:
            self._kube.patch_flow_status(namespace, name, status_patch(old, status))
        for event in plan.events:
            if event.reason != "Scheduled" or created is not None:
                self._kube.create_event(flow, event)
        return plan.requeue_after

    def _act(self, namespace: str, name: str, plan: SchedulePlan) -> dict[str, Any] | None:
        """Stop, create, delete as planned; the FlowRun created (None: none, or it was
        already there)."""
        for stop in plan.stops:
            self._kube.patch_flowrun(namespace, stop.name, {"spec": {"stop": True}})
        created = None
        if plan.create is not None:
            body = scheduled_run_body(namespace, name, plan.create)
            if self._kube.create_flowrun(body):
                created = body
        for delete in plan.deletes:
            self._kube.delete_flowrun(namespace, delete.name, delete.uid)
        return created


def _schedule(flow: dict[str, Any], status: dict[str, Any]) -> ScheduleSpec | None:
    """The Flow's schedule while the Flow is accepted (else nothing is started)."""
    accepted = any(c.get("type") == ACCEPTED and c.get("status") == "True"
                   for c in status.get("conditions") or [])
    try:
        return ScheduleSpec.from_spec(flow.get("spec") or {}) if accepted else None
    except ScheduleError:
        return None

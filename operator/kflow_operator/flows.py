"""One reconcile of one Flow: read it and its FlowRuns, write `flow_status` if it changed.

Owns: `FlowReconciler`. Runs when a Flow is created or changed, when the operator
starts, and when one of its FlowRuns starts or changes phase (`Reconciler` calls back),
through a `RunQueue` keyed by the Flow, so the reconciles of one Flow never overlap
and the newest status always wins. Level-triggered: the status is recomputed from
what the API server says now, never patched incrementally.

Imports no kopf.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from kflow_operator.flowstatus import flow_selector, flow_status, status_patch
from kflow_operator.k8s import KubeApi

__all__ = ["FlowReconciler"]


class FlowReconciler:
    """Writes ``Flow.status`` (see the module docstring)."""

    def __init__(self, kube: KubeApi, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._kube = kube
        self._clock = clock

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Bring Flow `namespace/name`'s status up to date; never asks for a requeue."""
        flow = self._kube.get_flow(namespace, name)
        if flow is None or (flow.get("metadata") or {}).get("deletionTimestamp"):
            return None
        runs = self._kube.list_flowruns(namespace, flow_selector(name))
        old = flow.get("status") or {}
        status = flow_status(flow, runs, self._clock())
        if status != old:
            self._kube.patch_flow_status(namespace, name, status_patch(old, status))
        return None

"""``@trigger_on_finish``: the FlowRuns a succeeded FlowRun starts, exactly once.

Owns: `triggered_runs` (pure: the upstream run, its flow's class name and the Flows of
the namespace → the downstream FlowRun bodies), `needs_triggering` (pure) and
`TriggerLauncher` (the I/O shell the FlowRun reconcile calls).

A FlowRun of flow ``A`` that reaches ``Succeeded`` starts one FlowRun of every Flow in
its namespace whose ``spec.triggerOnFinish`` names ``A`` (its ``spec.flowName``) and
that existed when the run finished (a Flow deployed later does not fire for old runs).
Exactly once, across operator restarts:

- the downstream run's name is derived from the upstream run id
  (``<downstream flow>-<upstream run name>-<uid8>``, hashed to fit 63 characters), so a
  second attempt gets HTTP 409: "already there";
- once every downstream run exists, the upstream FlowRun is annotated
  ``kflow.dev/triggered`` (the names started, or ``none``). A reconcile seeing the
  annotation does nothing, so a downstream run deleted later (its TTL, history) is not
  started again. A crash between the creates and the annotation only repeats creates
  (409s).

The downstream FlowRun records what started it in ``spec.trigger`` (``flow``: the
upstream class name, ``run``: its FlowRun name, ``runId``: its run id); the step pods
get it as ``--trigger-run <flow>/<runId>`` (`current.trigger`), and ``Run.trigger`` reads
it back. Imports no kopf.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

from kflow import api_types
from kflow.api_types import RunPhase
from kflow_operator import naming
from kflow_operator.k8s import KubeApi
from kflow_operator.schedule import LABEL_STARTED_BY

__all__ = ["ANNOTATION_TRIGGERED", "TriggerLauncher", "needs_triggering", "triggered_runs"]

log = logging.getLogger(__name__)

ANNOTATION_TRIGGERED: Final = "kflow.dev/triggered"
STARTED_BY_TRIGGER: Final = "trigger"
_NONE: Final = "none"


def needs_triggering(run: Mapping[str, Any]) -> bool:
    """True for a Succeeded FlowRun whose downstream runs were not all started yet."""
    metadata = run.get("metadata") or {}
    return ((run.get("status") or {}).get("phase") == RunPhase.SUCCEEDED.value
            and ANNOTATION_TRIGGERED not in (metadata.get("annotations") or {})
            and not metadata.get("deletionTimestamp"))


def _listens_to(flow: Mapping[str, Any], upstream: str) -> bool:
    entries = (flow.get("spec") or {}).get("triggerOnFinish") or []
    return any(isinstance(e, Mapping) and e.get("flow") == upstream for e in entries)


def triggered_runs(run: Mapping[str, Any], upstream_flow: str,
                   flows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The FlowRuns that the success of `run` (a FlowRun of the flow class
    `upstream_flow`, with its status) starts, one per listening Flow, sorted by name."""
    metadata = run["metadata"]
    namespace, name = str(metadata["namespace"]), str(metadata["name"])
    run_id = api_types.run_id(run)
    finished = str((run.get("status") or {}).get("finishedAt") or "")
    bodies = []
    for flow in flows:
        flow_meta = flow.get("metadata") or {}
        flow_name = str(flow_meta.get("name") or "")
        created = str(flow_meta.get("creationTimestamp") or "")
        if (not flow_name or flow_meta.get("deletionTimestamp")
                or not _listens_to(flow, upstream_flow)
                or (finished and created and created > finished)):
            continue
        user = (metadata.get("annotations") or {}).get(api_types.ANNOTATION_USER)
        bodies.append({
            "apiVersion": api_types.API_VERSION, "kind": api_types.FLOWRUN_KIND,
            "metadata": {
                "name": naming.derived_name(flow_name, run_id, "trigger"),
                "namespace": namespace,
                "labels": {**api_types.common_labels(name="kflow", component="flowrun"),
                           api_types.LABEL_FLOW: naming.label_value(flow_name),
                           LABEL_STARTED_BY: STARTED_BY_TRIGGER},
                **({"annotations": {api_types.ANNOTATION_USER: str(user)}} if user else {}),
            },
            "spec": {"flowRef": {"name": flow_name},
                     "trigger": {"flow": upstream_flow, "run": name, "runId": run_id}},
        })
    return sorted(bodies, key=lambda body: str(body["metadata"]["name"]))


class TriggerLauncher:
    """Starts the downstream runs of a succeeded FlowRun (see the module docstring)."""

    def __init__(self, kube: KubeApi) -> None:
        self._kube = kube

    def run_succeeded(self, run: Mapping[str, Any], upstream_flow: str) -> None:
        """`run` (with its new status) succeeded: start its downstream runs once, then
        mark it. Kubernetes errors propagate (the run's reconcile is retried)."""
        if not needs_triggering(run):
            return
        metadata = run["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        bodies = triggered_runs(run, upstream_flow, self._kube.list_flows(namespace))
        for body in bodies:
            started = body["metadata"]["name"]
            if self._kube.create_flowrun(body):
                log.info("FlowRun %s/%s succeeded: started FlowRun %s (@trigger_on_finish)",
                         namespace, name, started)
        names = ",".join(str(b["metadata"]["name"]) for b in bodies) or _NONE
        self._kube.patch_flowrun(namespace, name, {"metadata": {"annotations": {
            ANNOTATION_TRIGGERED: names}}})

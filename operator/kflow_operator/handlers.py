"""kopf handlers: thin adapters that wake `_reconcile` for a FlowRun or a Flow.

Owns: the kopf registrations and the startup settings. Every trigger ends in one
shared `_reconcile(memo, (namespace, name))`, which goes through `RunQueue` (one
reconcile at a time per run, coalesced wake-ups, requeue timers):

- a FlowRun is created, its spec or metadata changes, or the operator (re)starts;
- any event of a step pod (``app.kubernetes.io/managed-by=kflow``,
  ``app.kubernetes.io/component=step``) wakes the FlowRun controlling it at once (on
  the run queue's worker threads: the pod watch never waits behind reconciles);
- the planner's ``requeue_after`` timers (armed by `RunQueue`).

A Flow created, changed, or found at start-up reconciles its status and its schedule
(`kflow_operator.flows`) through its own `RunQueue` (``memo.flows``), whose timer is the
next scheduled time; a FlowRun whose phase changes wakes its Flow the same way
(``lastRun``, a ``Forbid`` schedule waiting for it). A FlowRun reconciled as Succeeded
starts its ``@trigger_on_finish`` runs (`kflow_operator.triggers`). The startup handler also
serves the Prometheus metrics (`kflow_operator.metrics`) unless the port is 0.

The kopf boundary maps `TransientKubeError` to ``kopf.TemporaryError`` (kopf retries
the FlowRun handler after its delay); a pod event has no kopf retry, so it re-arms the
run's timer instead. Handlers are sync (the Kubernetes client is sync): kopf runs
them in its thread pool.

kopf keeps its own state in annotations only (the FlowRun status schema is
structural: a ``status.kopf`` would be pruned), and posts only warnings as Events;
kflow's own Events come from the planner.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http.server import ThreadingHTTPServer
from typing import Any

import kopf

from kflow import api_types
from kflow_operator.flows import FlowReconciler
from kflow_operator.k8s import KubernetesKubeApi, TransientKubeError, load_api_client
from kflow_operator.metrics import OperatorMetrics, serve
from kflow_operator.queue import RunKey, RunQueue
from kflow_operator.reconcile import Reconciler
from kflow_operator.settings import OperatorConfig, from_env
from kflow_operator.triggers import TriggerLauncher

__all__ = ["ANNOTATION_PREFIX"]

log = logging.getLogger(__name__)

ANNOTATION_PREFIX = "operator.kflow.dev"
_FLOWRUNS = (api_types.GROUP, api_types.VERSION, api_types.FLOWRUN_PLURAL)
_FLOWS = (api_types.GROUP, api_types.VERSION, api_types.FLOW_PLURAL)
_STEP_PODS = {api_types.LABEL_APP_MANAGED_BY: api_types.MANAGED_BY,
              api_types.LABEL_APP_COMPONENT: api_types.COMPONENT_STEP}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf settings, then the process-wide reconcilers and their queues (`memo.runs`,
    `memo.flows`), and the metrics endpoint."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration")
    settings.posting.level = logging.WARNING
    # No cluster scanning: kopf would list namespaces and CRDs cluster-wide, rights a
    # namespaced install does not give (the chart's RBAC). kflow's CRDs exist before the
    # operator starts (helm installs crds/ first) and its namespaces are named.
    settings.scanning.disabled = True
    config: OperatorConfig = getattr(memo, "config", None) or from_env()
    metrics = OperatorMetrics()
    kube = KubernetesKubeApi(load_api_client(), on_request=lambda verb, outcome:
                             metrics.kube_requests.inc(verb=verb, outcome=outcome))
    flows = RunQueue(metrics.timed("flow", FlowReconciler(kube).reconcile))
    reconciler = Reconciler(kube, config, metrics=metrics,
                            flow_changed=lambda namespace, flow: _refresh(flows, (namespace,
                                                                                  flow)),
                            run_succeeded=TriggerLauncher(kube).run_succeeded)
    memo.flows, memo.runs = flows, RunQueue(metrics.timed("flowrun", reconciler.reconcile))
    memo.metrics_server = None
    if config.metrics_port:
        try:
            memo.metrics_server = serve(metrics.registry, config.metrics_address,
                                        config.metrics_port)
        except OSError as exc:
            log.error("no metrics: cannot listen on %s:%d: %s", config.metrics_address,
                      config.metrics_port, exc)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Credentials from the kubernetes client only (in-cluster, else the kubeconfig).
    kopf would also try pykube-ng, which ignores a kubeconfig's ``tokenFile`` and so
    logs in as anonymous on the process node (whose pods get a kubeconfig naming their
    service account's token file) and with other token-file kubeconfigs."""
    return kopf.login_via_client(**kwargs)


@kopf.on.cleanup()
def stop(memo: kopf.Memo, **_: Any) -> None:
    """Cancel the requeue timers, stop the metrics endpoint."""
    for name in ("runs", "flows"):
        queue: RunQueue | None = getattr(memo, name, None)
        if queue is not None:
            queue.close()
    server: ThreadingHTTPServer | None = getattr(memo, "metrics_server", None)
    if server is not None:
        server.shutdown()
        server.server_close()


@kopf.on.probe(id="requeueTimers")
def requeue_timers(memo: kopf.Memo, **_: Any) -> int:
    """Liveness detail: how many runs wait on a timer."""
    runs: RunQueue | None = getattr(memo, "runs", None)
    return runs.pending_timers() if runs is not None else 0


def _reconcile(queue: RunQueue, key: RunKey) -> None:
    """The one reconcile path of every trigger (see the module docstring)."""
    try:
        queue.reconcile(key)
    except TransientKubeError as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from exc


def _refresh(flows: RunQueue, key: RunKey) -> None:
    """A FlowRun started or changed phase: its Flow's ``lastRun`` follows (errors: later)."""
    flows.reconcile_or_retry(key, "the Flow status update")


@kopf.on.resume(*_FLOWS, id="flow-resume")
@kopf.on.create(*_FLOWS, id="flow-create")
@kopf.on.update(*_FLOWS, id="flow-update")
def flow_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """A Flow was deployed or redeployed, or the operator restarted: check it and write
    its status (Accepted, Ready, stepCount, schedule, lastRun)."""
    _reconcile(memo.flows, (namespace or "", name))


@kopf.on.resume(*_FLOWRUNS, id="flowrun-resume")
@kopf.on.create(*_FLOWRUNS, id="flowrun-create")
@kopf.on.update(*_FLOWRUNS, id="flowrun-update")
def flowrun_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """A FlowRun appeared, changed, or the operator restarted: reconcile it."""
    _reconcile(memo.runs, (namespace or "", name))


def _owner(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, name) of the FlowRun controlling `pod`, None if none."""
    metadata = pod.get("metadata") or {}
    for ref in metadata.get("ownerReferences") or []:
        if ref.get("kind") == api_types.FLOWRUN_KIND and ref.get("controller"):
            return str(metadata.get("namespace") or ""), str(ref.get("name"))
    return None


@kopf.on.event("", "v1", "pods", labels=_STEP_PODS)
def step_pod_event(body: Mapping[str, Any], memo: Any, **_: Any) -> None:
    """A step pod changed: wake the FlowRun controlling it now (event-driven progress),
    on the run queue's worker threads (`RunQueue.wake`)."""
    run = _owner(body)
    if run is not None:
        memo.runs.wake(run)

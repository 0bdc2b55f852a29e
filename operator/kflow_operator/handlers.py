"""kopf handlers: thin adapters that wake `_reconcile` for a FlowRun.

Owns: the kopf registrations and the startup settings. Every trigger ends in one
shared `_reconcile(memo, (namespace, name))`, which goes through `RunQueue` (one
reconcile at a time per run, coalesced wake-ups, requeue timers):

- a FlowRun is created, its spec or metadata changes, or the operator (re)starts;
- any event of a step pod (``app.kubernetes.io/managed-by=kflow``,
  ``app.kubernetes.io/component=step``) wakes the FlowRun controlling it at once;
- the planner's ``requeue_after`` timers (armed by `RunQueue`).

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
from typing import Any

import kopf

from kflow import api_types
from kflow_operator.k8s import KubernetesKubeApi, TransientKubeError, load_api_client
from kflow_operator.queue import RunKey, RunQueue
from kflow_operator.reconcile import Reconciler
from kflow_operator.settings import OperatorConfig, from_env

__all__ = ["ANNOTATION_PREFIX"]

log = logging.getLogger(__name__)

ANNOTATION_PREFIX = "operator.kflow.dev"
_FLOWRUNS = (api_types.GROUP, api_types.VERSION, api_types.FLOWRUN_PLURAL)
_STEP_PODS = {api_types.LABEL_APP_MANAGED_BY: api_types.MANAGED_BY,
              api_types.LABEL_APP_COMPONENT: api_types.COMPONENT_STEP}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf settings, then the process-wide reconciler and queue (in `memo.runs`)."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration")
    settings.posting.level = logging.WARNING
    config: OperatorConfig = getattr(memo, "config", None) or from_env()
    reconciler = Reconciler(KubernetesKubeApi(load_api_client()), config)
    memo.runs = RunQueue(reconciler.reconcile)


@kopf.on.cleanup()
def stop(memo: kopf.Memo, **_: Any) -> None:
    """Cancel the requeue timers."""
    runs: RunQueue | None = getattr(memo, "runs", None)
    if runs is not None:
        runs.close()


@kopf.on.probe(id="requeueTimers")
def requeue_timers(memo: kopf.Memo, **_: Any) -> int:
    """Liveness detail: how many runs wait on a timer."""
    runs: RunQueue | None = getattr(memo, "runs", None)
    return runs.pending_timers() if runs is not None else 0


def _reconcile(memo: Any, key: RunKey) -> None:
    """The one reconcile path of every FlowRun trigger (see the module docstring)."""
    try:
        memo.runs.reconcile(key)
    except TransientKubeError as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from exc


@kopf.on.resume(*_FLOWRUNS, id="flowrun-resume")
@kopf.on.create(*_FLOWRUNS, id="flowrun-create")
@kopf.on.update(*_FLOWRUNS, id="flowrun-update")
def flowrun_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """A FlowRun appeared, changed, or the operator restarted: reconcile it."""
    _reconcile(memo, (namespace or "", name))


def _owner(pod: Mapping[str, Any]) -> str | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == api_types.FLOWRUN_KIND and ref.get("controller"):
            return str(ref.get("name"))
    return None


@kopf.on.event("", "v1", "pods", labels=_STEP_PODS)
def step_pod_event(body: Mapping[str, Any], namespace: str | None, memo: Any,
                   **_: Any) -> None:
    """A step pod changed: wake the FlowRun controlling it now (event-driven progress)."""
    run = _owner(body)
    if run is None or namespace is None:
        return
    key = (namespace, run)
    try:
        _reconcile(memo, key)
    except kopf.TemporaryError as exc:
        log.warning("FlowRun %s/%s: %s; retrying in %ss", namespace, run, exc, exc.delay)
        memo.runs.later(key, exc.delay or 5.0)
    except Exception:
        log.exception("FlowRun %s/%s: reconcile after a pod event failed; retrying in 30s",
                      namespace, run)
        memo.runs.later(key, 30.0)

"""One reconcile of one FlowRun: observe → `plan(...)` → act → write status once.

Owns: `Reconciler` (the steps below, over a `KubeApi`) and the run's Flow snapshot.

1. Read the FlowRun fresh (level-triggered: the trigger's body may be stale, and the
   planner builds on the previous status, so it must be our last write).
2. The Flow the run is pinned to. At the first reconcile the live Flow is copied into
   a ConfigMap ``<run>-flow`` owned by the FlowRun (the planner then pins its
   generation and code sha256 in ``status.flow``); every later reconcile, including a
   resume, uses that snapshot, so a redeploy mid-run changes nothing for this run
   (`podspec.build_pod` checks the pin). With ``spec.resumeFrom`` the snapshot also
   pins the origin's succeeded tasks (`kflow_operator.origin`): the planner keeps
   (clones) them, and step pods get ``--origin-run-id`` to read them. Snapshots are
   immutable, so they are cached by run uid.
3. What the apiserver cannot check: the Flow exists, its graph parses, the run's
   parameters fit it. Otherwise the run ends ``Failed`` with reason ``InvalidSpec``
   (condition ``Accepted=False``, reason ``FlowNotFound`` / ``FlowNotAccepted`` /
   ``InvalidParameter`` / ``InvalidResume`` / ``InvalidResumeFrom``) and a message
   saying what to fix.
4. The run's pods (label selector, then the owner uid) → `observe_pod` → `plan`.
   Deleted pods stay until the run no longer needs them (`Reconciler._release`).
5. Stops, then starts (each paced by the pod token bucket; up to `CREATE_WORKERS`
   creates at once), then the status in one
   merge patch (paced by the status bucket; skipped when unchanged), then the Events
   (after the status, so a failed write does not repeat them). A write that changes
   the phase or ``startedAt`` calls ``flow_changed(namespace, flow)``: the Flow's
   ``status.lastRun`` follows (`kflow_operator.flows`). A Succeeded run calls
   ``run_succeeded(run, flow class name)`` on every reconcile: it starts the
   ``@trigger_on_finish`` runs once (`kflow_operator.triggers`).
6. A finished run whose ``spec.ttlSecondsAfterFinished`` has passed is deleted
   (`Reconciler._expire`); its pods follow, the store keeps its records.
7. Metrics (`kflow_operator.metrics`): the run's phase, pods created (and how long
   after their task became ready: ``StartTask.ready_at`` → the clock just before the
   create call, also the pod's ``kflow.dev/created-at``), attempts seen finished,
   token-bucket waits.

A run with ``spec.driver: Local`` (a hybrid ``python flow.py run --local``) is its
driver's: after step 1 the operator only watches that its driver still reports (else
the run fails, ``DriverLost``, and its pods are stopped), releases its pods once it is
finished, starts its ``@trigger_on_finish`` successors once it Succeeded and applies
its TTL (`Reconciler._driven_locally`).

Returns the planner's ``requeue_after``; the caller (`kflow_operator.queue`) arms the
timer. Kubernetes errors arrive as `kflow_operator.k8s` errors; a transient one
propagates (the caller retries), a rejected pod fails the run with ``InvalidSpec``.

Imports no kopf.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from kflow import api_types
from kflow.api_types import ConditionStatus, ConditionType, FailureReason, RunPhase
from kflow.planning import FlowModel, PlannerConfig, RunModel, StartTask, plan
from kflow.planning.model import Event, ObservedAttempt
from kflow.planning.run import format_time
from kflow.planning.status import MAX_RUN_MESSAGE, clip, condition
from kflow_operator import naming
from kflow_operator.driver import driver_lost
from kflow_operator.flowstatus import status_patch
from kflow_operator.k8s import InvalidRequest, KubeApi, TransientKubeError
from kflow_operator.metrics import OperatorMetrics
from kflow_operator.observe import NotAStepPod, observe_pod, owner_uid
from kflow_operator.origin import OriginError, origin_attempts, pin_origin
from kflow_operator.podspec import PodSpecError, build_pod
from kflow_operator.ratelimit import TokenBucket
from kflow_operator.settings import OperatorConfig
from kflow_operator.triggers import needs_triggering
from kflow_operator.validation import check_parameters, check_resume

__all__ = ["SNAPSHOT_KEY", "Reconciler", "snapshot_name"]

log = logging.getLogger(__name__)

SNAPSHOT_KEY: Final = "flow.json"
CREATE_WORKERS: Final = 16
"""Pod creates one reconcile makes at once (each still paced by the pod token bucket)."""
_CACHE_SIZE: Final = 512


def snapshot_name(run: str) -> str:
    """The ConfigMap holding the Flow a run started with."""
    return f"{run}-flow"


@dataclass(frozen=True)
class _Invalid:
    """The run cannot go on: ``Accepted=False`` with `reason`, failure InvalidSpec."""

    reason: str          # FlowNotFound, FlowNotAccepted, InvalidParameter, InvalidResume,
    #                      InvalidResumeFrom, InvalidPod
    message: str


def _uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _observe(pods: list[dict[str, Any]]) -> list[ObservedAttempt]:
    """The attempts `pods` run (`observe_pod`); a pod without kflow's labels is logged
    and left out."""
    observed = []
    for pod in pods:
        try:
            observed.append(observe_pod(pod))
        except NotAStepPod as exc:
            log.warning("%s", exc)
    return observed


class Reconciler:
    """Reconciles FlowRuns by name; thread-safe if calls for one run never overlap."""

    def __init__(self, kube: KubeApi, config: OperatorConfig, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 metrics: OperatorMetrics | None = None,
                 flow_changed: Callable[[str, str], None] = lambda namespace, flow: None,
                 run_succeeded: Callable[[Mapping[str, Any], str], None] = lambda run, flow:
                 None) -> None:
        self._kube = kube
        self._config = config
        self._clock = clock
        self._metrics = metrics or OperatorMetrics()
        self._flow_changed = flow_changed
        self._run_succeeded = run_succeeded
        self._planner = PlannerConfig(infrastructure_retries=config.infra_retries,
                                      pending_timeout_seconds=config.pending_timeout_seconds)
        self._pod_bucket = TokenBucket(config.pod_creates_per_second, config.pod_create_burst,
                                       on_wait=self._metrics.throttled("pod-create"))
        self._status_bucket = TokenBucket(config.status_writes_per_second,
                                          config.status_write_burst,
                                          on_wait=self._metrics.throttled("status-write"))
        self._snapshots: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._creators: ThreadPoolExecutor | None = None

    # -- the Flow snapshot --------------------------------------------------------------

    def _cached(self, uid: str, flow: dict[str, Any]) -> dict[str, Any]:
        self._snapshots[uid] = flow
        self._snapshots.move_to_end(uid)
        while len(self._snapshots) > _CACHE_SIZE:
            self._snapshots.popitem(last=False)
        return flow

    def _read_snapshot(self, run: Mapping[str, Any]) -> dict[str, Any] | _Invalid | None:
        metadata = run["metadata"]
        uid = _uid(run)
        if uid in self._snapshots:
            self._snapshots.move_to_end(uid)
            return self._snapshots[uid]
        name = snapshot_name(metadata["name"])
        found = self._kube.get_configmap(metadata["namespace"], name)
        if found is None:
            return None
        owners = [ref.get("uid") for ref in (found.get("metadata") or {}).get(
            "ownerReferences") or []]
        if uid not in owners:
            if any(owners):
                raise TransientKubeError(f"ConfigMap {name} belongs to an older FlowRun of "
                                         "the same name; waiting for garbage collection")
            return _Invalid("FlowNotAccepted", f"ConfigMap {name} exists and is not this "
                            "run's Flow snapshot; delete or rename it")
        try:
            flow = json.loads((found.get("data") or {})[SNAPSHOT_KEY])
        except (KeyError, TypeError, ValueError):
            return _Invalid("FlowNotAccepted", f"ConfigMap {name} does not hold a Flow "
                            f"snapshot in {SNAPSHOT_KEY!r}")
        return self._cached(uid, flow)

    def _take_snapshot(self, run: Mapping[str, Any]) -> dict[str, Any] | _Invalid:
        metadata = run["metadata"]
        namespace, run_name = str(metadata["namespace"]), str(metadata["name"])
        flow_name = str(((run.get("spec") or {}).get("flowRef") or {}).get("name") or "")
        live = self._kube.get_flow(namespace, flow_name) if flow_name else None
        if live is None:
            return _Invalid("FlowNotFound", f"Flow {flow_name!r} not found in namespace "
                            f"{namespace}: deploy it (python <flow>.py deploy) and create the "
                            "run again")
        live_meta = live.get("metadata") or {}
        pinned = (run.get("status") or {}).get("flow") or {}
        if pinned.get("generation") not in (None, live_meta.get("generation")):
            return _Invalid("FlowNotAccepted", f"the run's Flow snapshot "
                            f"{snapshot_name(run_name)} is gone and Flow {flow_name} changed "
                            f"since the run started (generation {pinned.get('generation')} → "
                            f"{live_meta.get('generation')}); start a new run")
        flow = {
            "apiVersion": api_types.API_VERSION, "kind": api_types.FLOW_KIND,
            "metadata": {key: live_meta[key] for key in ("name", "namespace", "uid",
                                                          "generation") if key in live_meta},
            "spec": live.get("spec") or {},
        }
        if (run.get("spec") or {}).get("resumeFrom"):
            origin = self._pin_origin(run, live.get("spec") or {})
            if isinstance(origin, _Invalid):
                return origin
            flow["origin"] = origin
        body = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": snapshot_name(run_name), "namespace": namespace,
                "labels": {**api_types.common_labels(name="kflow", instance=naming.label_value(
                    run_name), component="flow-snapshot"),
                           api_types.LABEL_FLOW: naming.label_value(flow_name),
                           api_types.LABEL_RUN: naming.label_value(run_name)},
                "ownerReferences": [{"apiVersion": api_types.API_VERSION,
                                     "kind": api_types.FLOWRUN_KIND, "name": run_name,
                                     "uid": _uid(run), "blockOwnerDeletion": True}],
            },
            "data": {SNAPSHOT_KEY: json.dumps(flow, sort_keys=True)},
        }
        self._kube.create_configmap(body)
        # A 409 returned someone else's: read it back through the ownership checks.
        found = self._read_snapshot(run)
        return found if found is not None else _Invalid(
            "FlowNotAccepted", f"ConfigMap {snapshot_name(run_name)} could not be read back")

    def _driven_locally(self, run: Mapping[str, Any],
                        pods: list[dict[str, Any]]) -> float | None:
        """A hybrid run (``spec.driver: Local``): its driver runs the tasks (pods and
        local processes) and writes the status. The operator only fails it when the driver
        is lost (`kflow_operator.driver`: its pods are stopped), releases its deleted pods
        once it is finished, starts its ``@trigger_on_finish`` successors once it
        succeeded, and deletes it after its TTL. The seconds until the next look."""
        model = RunModel.from_cr(run)
        status = run.get("status") or {}
        self._metrics.run_phase(model.namespace, model.name, status.get("phase"))
        if model.phase is not None and model.phase.terminal:
            self._release(pods)
            if model.phase is RunPhase.SUCCEEDED and needs_triggering(run):
                flow_ref = str(((run.get("spec") or {}).get("flowRef") or {}).get("name")
                               or "")
                flow = self._kube.get_flow(model.namespace, flow_ref)
                if flow is not None:
                    self._run_succeeded(run, str((flow.get("spec") or {}).get("flowName")
                                                 or ""))
            return self._finished(run, model, status)
        lost, wait = driver_lost(run, self._clock(), self._config.driver_timeout_seconds)
        if lost is None:
            return wait
        for pod in pods:
            if not (pod.get("metadata") or {}).get("deletionTimestamp"):
                self._kube.delete_pod(model.namespace, str(pod["metadata"]["name"]),
                                      FailureReason.DRIVER_LOST.value)
        return self._fail(run, model, _Invalid(FailureReason.DRIVER_LOST.value, lost),
                          reason=FailureReason.DRIVER_LOST)

    def _pin_origin(self, run: Mapping[str, Any],
                    flow_spec: Mapping[str, Any]) -> dict[str, Any] | _Invalid:
        """The ``resumeFrom`` origin's results this run clones (`kflow_operator.origin`),
        read once, when the run starts."""
        namespace = str(run["metadata"]["namespace"])
        name = str(((run.get("spec") or {}).get("resumeFrom") or {}).get("run") or "")
        found = self._kube.get_flowrun(namespace, name) if name else None
        observed = [] if found is None else _observe(
            self._kube.list_pods(namespace, naming.run_selector(name), _uid(found)))
        try:
            return pin_origin(run, found, observed, flow_spec)
        except OriginError as exc:
            return _Invalid("InvalidResumeFrom", str(exc))

    # -- the reconcile ------------------------------------------------------------------

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Bring FlowRun `namespace/name` one step closer to done; seconds to the next
        timed decision (None: wait for an event)."""
        run = self._kube.get_flowrun(namespace, name)
        pods = self._kube.list_pods(namespace, naming.run_selector(name), None)
        if run is None or (run.get("metadata") or {}).get("deletionTimestamp"):
            self._metrics.run_phase(namespace, name, None)
            self._release(pods)           # the run is gone: nothing needs its pods
            return None
        mine = [pod for pod in pods if owner_uid(pod) == _uid(run)]
        self._release([pod for pod in pods if owner_uid(pod) != _uid(run)])  # older runs'
        if (run.get("spec") or {}).get("driver") == api_types.DRIVER_LOCAL:
            return self._driven_locally(run, mine)
        model = RunModel.from_cr(run)
        flow = self._read_snapshot(run)
        if flow is None:
            resuming = model.resume_attempt > model.status_resume_attempt
            if model.phase is not None and model.phase.terminal and not resuming:
                # ended before it had a Flow (InvalidSpec): only its TTL is left to do
                return self._finished(run, model, model.status)
            flow = self._take_snapshot(run)
        self._label(run)
        if isinstance(flow, _Invalid):
            return self._fail(run, model, flow)
        spec = flow.get("spec") or {}
        try:
            flow_model = FlowModel.from_spec(spec, int((flow.get("metadata") or {}).get(
                "generation") or 0))
        except (ValueError, KeyError, TypeError) as exc:
            return self._fail(run, model, _Invalid("FlowNotAccepted", f"Flow "
                              f"{(flow.get('metadata') or {}).get('name')}: {exc}; fix the "
                              "flow and redeploy it"))
        problem = check_parameters(spec, (run.get("spec") or {}).get("parameters"))
        if problem is not None:
            return self._fail(run, model, _Invalid("InvalidParameter", problem))
        resume_problem = check_resume(spec, run)
        if resume_problem is not None:
            return self._fail(run, model, _Invalid(*resume_problem))

        observed = _observe(mine)
        for seen in observed:
            if seen.state in ("succeeded", "failed"):
                self._metrics.task_finished((_uid(run), seen.task.step, seen.task.task,
                                             str(seen.attempt)), seen.state, seen.finished_at)
        origin_run_id, origin = origin_attempts(flow.get("origin"))
        decided = plan(flow_model, model, observed, self._clock(), self._planner, origin=origin)
        status = dict(decided.status)
        for stop in decided.stops:
            self._pod_bucket.acquire()
            self._kube.delete_pod(namespace, naming.pod_name(
                name, stop.task.step, stop.task.task, stop.attempt), stop.reason)
        # build_pod checks the pin against the run's status: give it the new one.
        pinned_run = {**run, "status": status}
        try:
            self._start_all(flow, pinned_run, decided.starts, origin_run_id)
        except (PodSpecError, InvalidRequest) as exc:
            return self._fail(run, model, _Invalid("InvalidPod", str(exc)), base=status)
        self._write_status(run, status)
        for event in decided.events:
            self._kube.create_event(run, event)
        if status.get("phase") == RunPhase.SUCCEEDED.value:   # @trigger_on_finish
            self._run_succeeded({**run, "status": status}, str(spec.get("flowName") or ""))
        if RunPhase(status["phase"]).terminal:
            self._release(mine)
        if decided.delete_run:
            self._expire(run)
            return None
        return decided.requeue_after

    def _finished(self, run: Mapping[str, Any], model: RunModel,
                  status: Mapping[str, Any]) -> float | None:
        """For a run ended outside the planner (InvalidSpec): delete it once its
        ``spec.ttlSecondsAfterFinished`` has passed, else the seconds until then."""
        expires = model.expires_at(status)
        if expires is None:
            return None
        wait = (expires - self._clock()).total_seconds()
        if wait > 0:
            return wait
        self._expire(run)
        return None

    def _expire(self, run: Mapping[str, Any]) -> None:
        """Delete a run whose ``spec.ttlSecondsAfterFinished`` has passed (its pods follow
        by garbage collection; the store keeps its records)."""
        metadata = run["metadata"]
        log.info("FlowRun %s/%s: ttlSecondsAfterFinished passed, deleting it",
                 metadata["namespace"], metadata["name"])
        self._kube.delete_flowrun(str(metadata["namespace"]), str(metadata["name"]),
                                  _uid(run))

    def _release(self, pods: list[dict[str, Any]]) -> None:
        """Let the deleted pods among `pods` go: their outcome is no longer needed.

        Every step pod carries the finalizer ``kflow.dev/step``. While its run is not
        finished, a deleted pod stays (Terminating): the planner knows attempts only
        from pods, so a pod that vanished would be an attempt forgotten (a succeeded task
        run again, an attempt number reused). Once the run is finished, or gone, or the
        pod belongs to an older run of the same name, deleted pods are released.
        """
        for pod in pods:
            metadata = pod.get("metadata") or {}
            if metadata.get("deletionTimestamp") and api_types.FINALIZER_STEP in (
                    metadata.get("finalizers") or ()):
                self._kube.release_pod(pod)

    def _start_all(self, flow: Mapping[str, Any], run: Mapping[str, Any],
                   starts: Sequence[StartTask], origin_run_id: str | None) -> None:
        """Create the pods of `starts`, up to `CREATE_WORKERS` at once (a fan-out does not
        wait for one create after the other); every create is tried, then the first
        error (in the planner's order) is raised: a rejected pod before a transient one."""
        if len(starts) <= 1:
            for start in starts:
                self._start(flow, run, start, origin_run_id)
            return
        if self._creators is None:
            self._creators = ThreadPoolExecutor(CREATE_WORKERS,
                                                thread_name_prefix="kflow-create")
        futures = [self._creators.submit(self._start, flow, run, start, origin_run_id)
                   for start in starts]
        errors = [exc for exc in (f.exception() for f in futures) if exc is not None]
        rejected = [e for e in errors if isinstance(e, PodSpecError | InvalidRequest)]
        if errors:
            raise (rejected or errors)[0]

    def _start(self, flow: Mapping[str, Any], run: Mapping[str, Any], start: StartTask,
               origin_run_id: str | None) -> None:
        self._pod_bucket.acquire()
        # The clock after the token bucket's wait: the pod's kflow.dev/created-at is
        # "just before the create call", so a throttled start counts as kflow's delay.
        created_at = self._clock()
        pod = build_pod(flow, run, start, self._config.pod, origin_run_id=origin_run_id,
                        created_at=created_at)
        if self._kube.create_pod(pod):
            self._metrics.pod_created(start.ready_at, created_at)
        else:
            log.info("pod %s was already there", pod["metadata"]["name"])

    def _label(self, run: Mapping[str, Any]) -> None:
        """Add ``kflow.dev/flow`` to a FlowRun that lacks it (`kubectl get fr -l`)."""
        metadata = run["metadata"]
        flow_name = ((run.get("spec") or {}).get("flowRef") or {}).get("name")
        if flow_name and api_types.LABEL_FLOW not in (metadata.get("labels") or {}):
            self._kube.patch_flowrun_labels(metadata["namespace"], metadata["name"], {
                api_types.LABEL_FLOW: naming.label_value(str(flow_name))})

    def _write_status(self, run: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
        old = run.get("status") or {}
        metadata = run["metadata"]
        if status.get("phase"):
            self._metrics.run_phase(metadata["namespace"], metadata["name"],
                                    str(status["phase"]))
        if status == old:
            return False
        self._status_bucket.acquire()
        self._kube.patch_flowrun_status(metadata["namespace"], metadata["name"],
                                        status_patch(old, status))
        self._metrics.status_writes.inc()
        flow_name = ((run.get("spec") or {}).get("flowRef") or {}).get("name")
        if flow_name and any(old.get(key) != status.get(key) for key in ("phase", "startedAt")):
            self._flow_changed(str(metadata["namespace"]), str(flow_name))   # its lastRun
        return True

    def _fail(self, run: Mapping[str, Any], model: RunModel, invalid: _Invalid,
              base: Mapping[str, Any] | None = None,
              reason: FailureReason = FailureReason.INVALID_SPEC) -> float | None:
        """End the run Failed with `reason` (InvalidSpec: the run cannot run; idempotent:
        same status, no write); the seconds until its TTL deletes it (None: no TTL, or
        deleted now)."""
        old = run.get("status") or {}
        now = self._clock()
        gen = model.generation
        status = dict(base if base is not None else old)
        spec_problem = reason is FailureReason.INVALID_SPEC and invalid.reason != "InvalidPod"
        accepted = (ConditionStatus.FALSE, invalid.reason, invalid.message) if spec_problem \
            else (ConditionStatus.TRUE, "Accepted", "the Flow exists and is accepted")
        failure = reason.value
        status.update({
            "phase": RunPhase.FAILED.value,
            "observedGeneration": gen,
            "conditions": [
                condition(model.condition(ConditionType.ACCEPTED), ConditionType.ACCEPTED,
                          *accepted, now, gen),
                condition(model.condition(ConditionType.PROGRESSING),
                          ConditionType.PROGRESSING, ConditionStatus.FALSE,
                          RunPhase.FAILED.value, "the run is failed", now, gen),
                condition(model.condition(ConditionType.SUCCEEDED), ConditionType.SUCCEEDED,
                          ConditionStatus.FALSE, failure, invalid.message, now, gen),
            ],
            "failure": {"reason": failure, "message": invalid.message},
            "reason": failure,                      # the Reason printer column
            "message": clip(invalid.message, MAX_RUN_MESSAGE),
            "finishedAt": old.get("finishedAt") if old.get("phase") == RunPhase.FAILED.value
            and old.get("finishedAt") else format_time(now),
            "resumeAttempt": max(model.resume_attempt, model.status_resume_attempt),
        })
        if self._write_status(run, status) and old.get("phase") != RunPhase.FAILED.value:
            log.warning("FlowRun %s/%s failed: %s", model.namespace, model.name,
                        invalid.message)
            self._kube.create_event(run, Event("Warning", failure, invalid.message))
        return self._finished(run, model, status)

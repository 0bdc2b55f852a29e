"""Task attempts as step pods on the cluster: the pod side of a hybrid run.

Owns `PodExecutor`, the `kflow.local.executor.Executor` over the Kubernetes API:

* start: the operator's own pod (`kflow_operator.podspec.build_pod`, from the deployed
  Flow and the run's FlowRun), created through `kflow_operator.k8s` (a 409 of this
  run's pod is "already there"); a pod the API server refuses (no step
  ServiceAccount, a quota, …) is a failed attempt with reason LaunchError and a
  message saying what the namespace needs, so the run fails as it would on the cluster;
* observe: the run's pods (one LIST by `naming.run_selector`, owned by this FlowRun),
  each read by `kflow_operator.observe.observe_pod` — exactly what the operator's
  planner would see;
* stop: the pod deleted with the reason annotation `observe` reads;
* wait / wake: a watch on the run's pods sets a flag on every event (and calls
  `on_change`: a hybrid run's local executor wakes the loop);
* close: what still runs is deleted, and kflow's finalizer is released from every pod
  of the run (on the cluster the operator does that; a locally driven run has none).

So a step decorated ``@batch`` / ``@kubernetes`` gets the same pod, resources, retries
and failure classification in a hybrid run as in a cluster run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, watch

from kflow.api_types import FailureReason
from kflow.planning.model import ObservedAttempt, StartTask, TaskId
from kflow_operator import naming
from kflow_operator.k8s import InvalidRequest, KubeError, KubernetesKubeApi
from kflow_operator.observe import NotAStepPod, observe_pod
from kflow_operator.podspec import PodConfig, PodSpecError, build_pod

__all__ = ["PodExecutor"]

log = logging.getLogger(__name__)

_WATCH_SECONDS = 60          # one watch request; then a new one (resourceVersion kept)


class PodExecutor:
    """Runs attempts as step pods of `run` (a FlowRun as read from the API server)."""

    def __init__(self, api: client.ApiClient, flow: Mapping[str, Any],
                 run: Mapping[str, Any], config: PodConfig, *,
                 origin_run_id: str | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self._api_client = api
        self._kube = KubernetesKubeApi(api)
        self._flow = flow
        self._run = run
        self._config = config
        self._origin = origin_run_id
        self._on_change = on_change or (lambda: None)
        metadata = run["metadata"]
        self._namespace = str(metadata["namespace"])
        self._name = str(metadata["name"])
        self._uid = str(metadata["uid"])
        self._selector = naming.run_selector(self._name)
        self._started: set[tuple[TaskId, int]] = set()
        self._refused: dict[tuple[TaskId, int], ObservedAttempt] = {}
        self._changed = threading.Event()
        self._closed = threading.Event()
        self._last: list[ObservedAttempt] = []
        self._watcher = threading.Thread(target=self._watch, name="kflow-pod-watch",
                                         daemon=True)
        self._watcher.start()

    # -- the Executor protocol ----------------------------------------------------------

    def start(self, start: StartTask) -> None:
        key = (start.task, start.attempt)
        if key in self._started:
            return
        now = datetime.now(UTC)
        try:
            pod = build_pod(self._flow, self._run, start, self._config,
                            origin_run_id=self._origin, created_at=now)
            self._kube.create_pod(pod)
        except (PodSpecError, InvalidRequest) as exc:   # what we send cannot work
            self._refused[key] = ObservedAttempt(
                task=start.task, attempt=start.attempt, state="failed",
                reason=FailureReason.LAUNCH_ERROR.value,
                message=f"the step's pod could not be created: {exc}. In a hybrid run the "
                "namespace needs what the operator's runs need: the step ServiceAccount "
                f"{self._config.step_service_account!r} and the store's Secret "
                f"{self._config.s3_secret_name!r} (helm install or `kflow cluster up` "
                "create them)", created_at=now, finished_at=now, ready_at=start.ready_at)
        self._started.add(key)
        self._changed.set()
        self._on_change()

    def stop(self, task: TaskId, attempt: int, reason: str) -> None:
        name = naming.pod_name(self._name, task.step, task.task, attempt)
        self._kube.delete_pod(self._namespace, name, reason)
        self._changed.set()

    def observe(self) -> list[ObservedAttempt]:
        try:
            pods = self._pods()
        except KubeError as exc:          # a blip: the last view, the next turn reads again
            log.warning("reading the run's pods: %s", exc)
            return list(self._last)
        seen: list[ObservedAttempt] = []
        for pod in pods:
            try:
                seen.append(observe_pod(pod))
            except NotAStepPod:
                continue
        seen += self._refused.values()
        self._last = seen
        return list(seen)

    def wait(self, timeout: float | None) -> None:
        self._changed.wait(timeout)
        self._changed.clear()

    def wake(self) -> None:
        self._changed.set()

    def active(self) -> int:
        return sum(1 for attempt in self._last if not _ended(attempt))

    def close(self, grace: float) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            for pod in self._pods():
                attempt = _attempt(pod)
                if attempt is not None and not _ended(attempt) \
                        and not (pod.get("metadata") or {}).get("deletionTimestamp"):
                    metadata = pod["metadata"]
                    self._kube.delete_pod(self._namespace, str(metadata["name"]),
                                          "the run's driver ended")
            for pod in self._pods():
                self._kube.release_pod(pod)
        except KubeError as exc:
            log.warning("cleaning up the run's pods: %s (their FlowRun owns them: "
                        "deleting it removes them)", exc)
        self._changed.set()

    # -- internals ----------------------------------------------------------------------

    def _pods(self) -> list[dict[str, Any]]:
        return self._kube.list_pods(self._namespace, self._selector, self._uid)

    def _watch(self) -> None:
        """Set the change flag on every event of the run's pods until closed."""
        core: Any = client.CoreV1Api(self._api_client)
        version: str | None = None
        while not self._closed.is_set():
            watcher = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in watcher.stream(  # type: ignore[no-untyped-call]
                        core.list_namespaced_pod, self._namespace,
                        label_selector=self._selector, resource_version=version,
                        timeout_seconds=_WATCH_SECONDS,
                        _request_timeout=(10, _WATCH_SECONDS + 15)):
                    version = event["object"].metadata.resource_version
                    self._changed.set()
                    self._on_change()
                    if self._closed.is_set():
                        break
            except Exception as exc:          # an expired version, the network: again
                log.debug("pod watch ended: %s", exc)
                version = None
                self._closed.wait(1.0)
            finally:
                watcher.stop()  # type: ignore[no-untyped-call]


def _ended(attempt: ObservedAttempt) -> bool:
    return attempt.state in ("succeeded", "failed")


def _attempt(pod: Mapping[str, Any]) -> ObservedAttempt | None:
    try:
        return observe_pod(pod)
    except NotAStepPod:
        return None

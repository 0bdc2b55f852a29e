"""observe_pod: identity, state, failure classification and times, from realistic pods.

Shapes follow what kubelets write (and the process node's `kflow.cluster.node.status`):
a terminated container has exitCode/reason/startedAt/finishedAt/message, pod-level
evictions set status.reason/message, the scheduler sets PodScheduled False/Unschedulable.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from kflow.planning.model import TaskId, TaskResult
from kflow_operator.observe import NotAStepPod, observe_pod, owner_uid, parse_time

CREATED = "2026-11-29T10:00:00Z"
STARTED = "2026-11-29T10:00:05Z"
FINISHED = "2026-11-29T10:01:00Z"
OK_RESULT = json.dumps({"v": 1, "ok": True, "step": "train", "task": "3", "attempt": 1,
                        "next": ["join"], "foreach": None, "switch": None, "artifacts": 2,
                        "bytes": 10, "timings": {}, "error": None})


def failed_result(kind: str, message: str) -> str:
    return json.dumps({"v": 1, "ok": False, "step": "train", "task": "3", "attempt": 1,
                       "next": [], "error": {"type": kind, "message": message}})


def pod(phase: str = "Pending", state: dict[str, Any] | None = None, *, reason: str | None = None,
        message: str | None = None, conditions: list[dict[str, Any]] | None = None,
        deleting: bool = False, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": "run-1-train-3-1", "namespace": "ml", "creationTimestamp": CREATED,
        "labels": {"kflow.dev/run": "run-1", "kflow.dev/step": "train", "kflow.dev/task": "3",
                   "kflow.dev/attempt": "1"},
        "annotations": {"kflow.dev/step": "train", "kflow.dev/task": "3", **(annotations or {})},
        "ownerReferences": [{"apiVersion": "kflow.dev/v1alpha1", "kind": "FlowRun",
                             "name": "run-1", "uid": "uid-1", "controller": True}],
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-29T10:00:50Z"
        metadata["deletionGracePeriodSeconds"] = 30
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if reason is not None:
        status["reason"] = reason
    if message is not None:
        status["message"] = message
    if state is not None:
        status["startTime"] = CREATED
        status["containerStatuses"] = [{"name": "step", "image": "img", "ready": False,
                                        "restartCount": 0, "state": state, "lastState": {}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"containers": [{"name": "step", "resources": {
                "limits": {"memory": "512Mi"}}}]},
            "status": status}


def term(code: int, reason: str = "Error", message: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"exitCode": code, "reason": reason, "startedAt": STARTED,
                            "finishedAt": FINISHED, "containerID": "process://123"}
    if message is not None:
        data["message"] = message
    return {"terminated": data}


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"waiting": {"reason": reason, "message": message}}


RUNNING = {"running": {"startedAt": STARTED}}
UNSCHEDULABLE = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                  "lastProbeTime": None, "lastTransitionTime": CREATED,
                  "message": "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 "
                             "nodes are available: 1 No preemption victims found for incoming "
                             "pod."}]


def disruption(reason: str, message: str) -> list[dict[str, Any]]:
    return [{"type": "DisruptionTarget", "status": "True", "reason": reason,
             "message": message, "lastTransitionTime": "2026-11-29T10:00:40Z"}]


CASES: list[tuple[str, dict[str, Any], str, str | None, str]] = [
    # (id, pod, state, reason, substring of the message)
    ("created", pod(), "pending", None, ""),
    ("unschedulable", pod(conditions=UNSCHEDULABLE), "pending", "Unschedulable",
     "0/1 nodes are available: 1 Insufficient memory."),
    ("container-creating", pod(state=waiting("ContainerCreating")), "pending", None, ""),
    ("running", pod("Running", RUNNING), "running", None, ""),
    ("succeeded", pod("Succeeded", term(0, "Completed", OK_RESULT)), "succeeded", None, ""),
    ("user-error", pod("Failed", term(1, "Error", failed_result("ValueError", "bad rows"))),
     "failed", "UserError", "ValueError: bad rows"),
    ("user-error-no-message", pod("Failed", term(1)), "failed", "UserError", "exit code 1"),
    ("step-timeout", pod("Failed", term(1, "Error", failed_result(
        "StepTimeoutError", "step 'train' timed out after 1m (@timeout)"))),
     "failed", "DeadlineExceeded", "timed out"),
    ("oom", pod("Failed", term(137, "OOMKilled")), "failed", "OOMKilled", "512Mi"),
    ("sigkill-not-oom", pod("Failed", term(137)), "failed", "UserError", "SIGKILL"),
    ("usage", pod("Failed", term(2)), "failed", "InvalidSpec", "exit code 2"),
    ("code-package", pod("Failed", term(65, "Error", failed_result(
        "CodePackageError", "sha256 mismatch"))), "failed", "LaunchError",
     "exit code 65): sha256 mismatch"),
    ("parent-not-done", pod("Failed", term(66)), "failed", "LaunchError", "exit code 66"),
    ("runner-internal", pod("Failed", term(70)), "failed", "LaunchError", "exit code 70"),
    ("store-unavailable", pod("Failed", term(75)), "failed", "LaunchError", "exit code 75"),
    ("no-python", pod("Failed", term(127)), "failed", "LaunchError", "exit code 127"),
    ("start-error", pod("Failed", term(128, "StartError", "exec: python: not found")),
     "failed", "LaunchError", "python: not found"),
    ("deadline", pod("Failed", term(143), reason="DeadlineExceeded",
                     message="Pod was active on the node longer than the specified deadline"),
     "failed", "DeadlineExceeded", "longer than the specified deadline"),
    ("evicted", pod("Failed", term(137, "ContainerStatusUnknown"), reason="Evicted",
                    message="The node was low on resource: memory. Threshold quantity: 100Mi, "
                            "available: 50Mi."),
     "failed", "Evicted", "low on resource: memory"),
    ("evicted-before-start", pod("Failed", reason="Evicted", message="The node had condition: "
                                 "[DiskPressure]."), "failed", "Evicted", "DiskPressure"),
    ("kubelet-preempting", pod("Failed", term(143), reason="Preempting",
                               message="Preempted in order to admit critical pod"),
     "failed", "Preempted", "admit critical pod"),
    ("admission-outofcpu", pod("Failed", reason="OutOfcpu", message="Pod was rejected: Node "
                               "didn't have enough resource: cpu"), "failed", "Evicted",
     "enough resource"),
    ("node-shutdown", pod("Failed", term(143), reason="Terminated",
                          message="Pod was terminated in response to imminent node shutdown."),
     "failed", "Evicted", "node shutdown"),
    ("scheduler-preemption", pod("Failed", term(143), deleting=True, conditions=disruption(
        "PreemptionByScheduler", "Kube-scheduler: preempting to accommodate a higher priority "
        "pod")), "failed", "Preempted", "higher priority"),
    ("eviction-api", pod("Failed", term(143), deleting=True, conditions=disruption(
        "EvictionByEvictionAPI", "Eviction API: evicting")), "failed", "Evicted", "Eviction API"),
    ("taint-manager", pod("Failed", term(143), deleting=True, conditions=disruption(
        "DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint")),
     "failed", "NodeLost", "NoExecute"),
    ("pod-gc", pod("Failed", conditions=disruption(
        "DeletionByPodGC", "PodGC: node no longer exists")), "failed", "NodeLost", "PodGC"),
    ("phase-unknown", pod("Unknown", RUNNING), "failed", "NodeLost", "stopped reporting"),
    ("container-lost", pod("Failed", term(137, "ContainerStatusUnknown",
                                          "The container could not be located when the node "
                                          "restarted")), "failed", "NodeLost", "node restarted"),
    ("deleted-running", pod("Running", RUNNING, deleting=True), "running", None, ""),
    ("stopped-by-kflow", pod("Failed", term(143), deleting=True,
                             annotations={"kflow.dev/stop-reason": "Stopped"}),
     "failed", "Stopped", "kflow deleted the pod"),
    ("deleted-by-someone", pod("Failed", term(143), deleting=True), "failed", "Evicted",
     "not by kflow"),
    ("deleted-before-start", pod("Failed", term(137, "ContainerStatusUnknown",
                                                "The container could not be located when the "
                                                "pod was terminated"), deleting=True,
                                 annotations={"kflow.dev/stop-reason": "Unschedulable"}),
     "failed", "Unschedulable", "kflow deleted"),
    ("finished-while-deleted", pod("Succeeded", term(0, "Completed", OK_RESULT), deleting=True),
     "succeeded", None, ""),
    ("sigterm-unexplained", pod("Failed", term(143)), "failed", "Evicted", "SIGTERM"),
    ("image-pull", pod(state=waiting("ErrImagePull", 'failed to pull image "ghcr.io/x:1": not '
                                     "found")), "pending", "ImageError", "not found"),
    ("image-backoff", pod(state=waiting("ImagePullBackOff", 'Back-off pulling image "x"')),
     "pending", "ImageError", "Back-off"),
    ("invalid-image", pod(state=waiting("InvalidImageName", 'couldn\'t parse image name "X"')),
     "failed", "ImageError", "InvalidImageName"),
    ("config-error", pod(state=waiting("CreateContainerConfigError",
                                       'secret "wandb-credentials" not found')),
     "pending", "LaunchError", "wandb-credentials"),
    ("create-error", pod(state=waiting("CreateContainerError", "context deadline exceeded")),
     "pending", "LaunchError", "CreateContainerError"),
    ("run-container-error", pod(state=waiting("RunContainerError", "runc: exec failed")),
     "pending", "LaunchError", "runc"),
    ("failed-no-container", pod("Failed", reason="SomethingNew", message="odd"), "failed",
     "LaunchError", "SomethingNew: odd"),
]


@pytest.mark.parametrize(("case", "body", "state", "reason", "message"), CASES,
                         ids=[c[0] for c in CASES])
def test_classification(case: str, body: dict[str, Any], state: str, reason: str | None,
                        message: str) -> None:
    seen = observe_pod(body)
    assert (seen.state, seen.reason) == (state, reason)
    assert message in seen.message
    assert seen.task == TaskId("train", "3") and seen.attempt == 1
    assert seen.deleted == bool(body["metadata"].get("deletionTimestamp"))


def test_result_times_and_exit_code() -> None:
    seen = observe_pod(pod("Succeeded", term(0, "Completed", OK_RESULT)))
    assert seen.result == TaskResult(ok=True, next=("join",))
    assert seen.exit_code == 0
    assert seen.created_at == datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    assert seen.started_at == datetime(2026, 11, 29, 10, 0, 5, tzinfo=UTC)
    assert seen.finished_at == datetime(2026, 11, 29, 10, 1, tzinfo=UTC)
    running = observe_pod(pod("Running", RUNNING))
    assert running.started_at is not None and running.finished_at is None
    assert running.exit_code is None and running.result is None


def test_finished_at_of_a_pod_failed_without_container_result() -> None:
    conditions = [{"type": "Ready", "status": "False",
                   "lastTransitionTime": "2026-11-29T10:02:00Z"}]
    seen = observe_pod(pod("Failed", reason="Evicted", message="x", conditions=conditions))
    assert seen.finished_at == datetime(2026, 11, 29, 10, 2, tzinfo=UTC)


def test_fallback_logs_as_termination_message_are_no_result() -> None:
    seen = observe_pod(pod("Failed", term(1, "Error", "Traceback (most recent call last):\n")))
    assert seen.result is None and seen.reason == "UserError"


def test_exact_identity_comes_from_annotations_when_labels_are_hashed() -> None:
    body = pod("Running", RUNNING)
    task = ".".join(["1234"] * 20)
    body["metadata"]["labels"]["kflow.dev/task"] = "1234.1234-hashhashha"
    body["metadata"]["annotations"]["kflow.dev/task"] = task
    assert observe_pod(body).task == TaskId("train", task)
    del body["metadata"]["annotations"]
    body["metadata"]["labels"]["kflow.dev/task"] = "3.1"
    assert observe_pod(body).task == TaskId("train", "3.1")


def test_not_a_step_pod() -> None:
    body = pod()
    del body["metadata"]["labels"]["kflow.dev/attempt"]
    with pytest.raises(NotAStepPod, match="not a kflow step pod"):
        observe_pod(body)
    body["metadata"]["labels"]["kflow.dev/attempt"] = "x"
    with pytest.raises(NotAStepPod, match="not a number"):
        observe_pod(body)


def test_owner_uid() -> None:
    assert owner_uid(pod()) == "uid-1"
    assert owner_uid({"metadata": {}}) is None


def test_parse_time() -> None:
    assert parse_time("2026-01-02T03:04:05.123456Z") == datetime(2026, 1, 2, 3, 4, 5, 123456,
                                                                 tzinfo=UTC)
    assert parse_time("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_time(None) is None and parse_time("yesterday") is None


def _node_status(terminated: Any, reason: str | None = None) -> dict[str, Any]:
    """A status exactly as the embedded cluster's process node writes it."""
    from kflow.cluster.node import status as node

    report = node.PodReport(
        restart_policy="Never", init=(),
        containers=(node.ContainerView("step", "img", terminated),),
        start_time=datetime(2026, 11, 29, 10, tzinfo=UTC), sandbox_ready=False,
        reason=reason, message="Pod was active on the node longer than the specified deadline"
        if reason else None, phase_override="Failed" if reason else None)
    return node.build_status(report, {}, datetime(2026, 11, 29, 10, 5, tzinfo=UTC))


@pytest.mark.parametrize(("code", "why", "pod_reason", "expected"), [
    (137, "OOMKilled", None, "OOMKilled"),
    (1, "Error", None, "UserError"),
    (75, "Error", None, "LaunchError"),
    (143, "Error", "DeadlineExceeded", "DeadlineExceeded"),
])
def test_process_node_statuses(code: int, why: str, pod_reason: str | None,
                               expected: str) -> None:
    from kflow.cluster.node import status as node

    ended = node.Terminated(code, why, datetime(2026, 11, 29, 10, 4, tzinfo=UTC),
                            started_at=datetime(2026, 11, 29, 10, 1, tzinfo=UTC))
    body = pod()
    body["status"] = _node_status(ended, pod_reason)
    seen = observe_pod(body)
    assert (seen.state, seen.reason, seen.exit_code) == ("failed", expected, code)
    assert seen.finished_at == datetime(2026, 11, 29, 10, 4, tzinfo=UTC)


def test_the_operators_millisecond_readings_come_from_the_annotations() -> None:
    seen = observe_pod(pod("Succeeded", term(0, "Completed", OK_RESULT), annotations={
        "kflow.dev/ready-at": "2026-11-29T10:00:00.120Z",
        "kflow.dev/created-at": "2026-11-29T10:00:00.250Z"}))
    assert seen.ready_at == datetime(2026, 11, 29, 10, 0, 0, 120_000, tzinfo=UTC)
    assert seen.pod_created_at == datetime(2026, 11, 29, 10, 0, 0, 250_000, tzinfo=UTC)
    assert seen.created_at == datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)   # the pod's own


def test_missing_or_bad_timing_annotations_are_none() -> None:
    seen = observe_pod(pod("Running", {"running": {"startedAt": STARTED}},
                           annotations={"kflow.dev/ready-at": "yesterday"}))
    assert seen.ready_at is None and seen.pod_created_at is None

"""What a step pod says about its task attempt: `observe_pod(pod) -> ObservedAttempt` (pure).

Owns: reading a Pod dict (as the API server returns it, from a real kubelet or the
embedded cluster's process node) into the planner's `ObservedAttempt`: the task's
identity, its state, the classified failure reason (`kflow.api_types.FailureReason`)
with a message saying what happened and what to do, the runner's exit code, the
parsed termination message and the timestamps. Also `owner_uid` (which FlowRun a pod
belongs to) and `NotAStepPod`.

Classification, first match wins:

===========================================================  =============================
observed                                                     state / reason
===========================================================  =============================
container terminated with exit code 0, or phase Succeeded    succeeded
phase Unknown; status.reason NodeLost                        failed / NodeLost
status.reason Evicted; kubelet admission rejections          failed / Evicted
(OutOf*, NodeAffinity, UnexpectedAdmissionError, Terminated
= node shutdown)
status.reason Preempting (or any reason mentioning preempt)  failed / Preempted
status.reason DeadlineExceeded (activeDeadlineSeconds)       failed / DeadlineExceeded
condition DisruptionTarget: PreemptionBy*                    failed / Preempted
  EvictionByEvictionAPI, TerminationByKubelet                failed / Evicted
  DeletionByTaintManager, DeletionByPodGC                    failed / NodeLost
terminated OOMKilled                                         failed / OOMKilled
terminated StartError, ContainerCannotRun                    failed / LaunchError
terminated 143/137/ContainerStatusUnknown while deleted      failed / the deletion's reason
  (annotation kflow.dev/stop-reason set by the operator, else Evicted)
terminated ContainerStatusUnknown (container lost)           failed / NodeLost
exit 1 (StepTimeoutError in the result: DeadlineExceeded)    failed / UserError
exit 2 (bad arguments / parameter values)                    failed / InvalidSpec
exit 65, 66, 70, 75 (runner infrastructure), 126, 127        failed / LaunchError
exit 143 without a deletion or pod reason                    failed / Evicted
any other exit code (137 without OOMKilled, signals, …)      failed / UserError
phase Failed with no container result                        failed / LaunchError
waiting InvalidImageName                                     failed / ImageError
waiting ErrImagePull, ImagePullBackOff, ErrImageNeverPull…   pending / ImageError
waiting CreateContainerConfigError, CreateContainerError,    pending / LaunchError
  RunContainerError, StartError                              (the pending timeout ends it)
PodScheduled False, reason Unschedulable                     pending / Unschedulable
container running                                            running
otherwise                                                    pending
===========================================================  =============================

A pod with a deletionTimestamp is ``deleted=True`` whatever its state. Besides the pod's
own timestamps (1 s resolution), the operator's millisecond readings in the annotations
``kflow.dev/ready-at`` and ``kflow.dev/created-at`` become ``ready_at`` and
``pod_created_at`` (None when absent or unparsable). Imports only the
standard library, `kflow.api_types`, `kflow.planning.model` and `kflow_operator`'s pure
modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from kflow import api_types
from kflow.api_types import FailureReason
from kflow.planning.failures import runner_exit_failure, user_failure
from kflow.planning.model import ObservedAttempt, TaskId, TaskResult, TaskState
from kflow.planning.run import parse_time
from kflow_operator import naming
from kflow_operator.podspec import (
    ANNOTATION_CREATED_AT,
    ANNOTATION_READY_AT,
    ANNOTATION_STOP_REASON,
    CONTAINER_NAME,
)

__all__ = ["NotAStepPod", "observe_pod", "owner_uid", "parse_time"]

_R = FailureReason

# status.reason of the pod → failure reason.
_POD_REASONS: Final[Mapping[str, FailureReason]] = {
    "Evicted": _R.EVICTED,
    "Preempting": _R.PREEMPTED,
    "Preempted": _R.PREEMPTED,
    "DeadlineExceeded": _R.DEADLINE_EXCEEDED,
    "NodeLost": _R.NODE_LOST,
    "Terminated": _R.EVICTED,                  # graceful node shutdown
    "Shutdown": _R.EVICTED,
    "NodeShutdown": _R.EVICTED,
    "UnexpectedAdmissionError": _R.EVICTED,    # kubelet admission: try another node
    "NodeAffinity": _R.EVICTED,
}
# status.conditions[DisruptionTarget].reason → failure reason.
_DISRUPTIONS: Final[Mapping[str, FailureReason]] = {
    "PreemptionByScheduler": _R.PREEMPTED,
    "PreemptionByKubeScheduler": _R.PREEMPTED,
    "EvictionByEvictionAPI": _R.EVICTED,
    "TerminationByKubelet": _R.EVICTED,
    "DeletionByTaintManager": _R.NODE_LOST,
    "DeletionByPodGC": _R.NODE_LOST,
}
_IMAGE_WAITING: Final = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                                   "ErrImageNeverPull", "ImageInspectError",
                                   "RegistryUnavailable", "SignatureValidationFailed"})
_FINAL_WAITING: Final = frozenset({"InvalidImageName"})   # never gets better by waiting
_LAUNCH_WAITING: Final = frozenset({"CreateContainerConfigError", "CreateContainerError",
                                    "RunContainerError", "StartError", "PreStartHookError"})
_LAUNCH_TERMINATED: Final = frozenset({"StartError", "ContainerCannotRun"})
_LOGS_HINT: Final = "kubectl logs on the pod"
_RUNNER_CODES: Final[Mapping[int, str]] = {
    65: "the code package failed its checksum or could not be imported",
    66: "a parent task has no successful result (its data is missing)",
    70: "the runner failed (an internal error)",
    75: "the artifact store was unreachable",
    126: "the image cannot execute python",
    127: "the image has no python on its PATH",
}


class NotAStepPod(ValueError):
    """The pod lacks kflow's step/task/attempt labels: not a step pod."""


def owner_uid(pod: Mapping[str, Any]) -> str | None:
    """The uid of the FlowRun controlling `pod` (None if none): pods of an older run of
    the same name match the run's label selector until they are garbage-collected."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == api_types.FLOWRUN_KIND and ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _identity(pod: Mapping[str, Any]) -> tuple[TaskId, int]:
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    step = annotations.get(naming.ANNOTATION_STEP) or labels.get(api_types.LABEL_STEP)
    task = annotations.get(naming.ANNOTATION_TASK) or labels.get(api_types.LABEL_TASK)
    attempt = labels.get(api_types.LABEL_ATTEMPT)
    if not step or not task or attempt is None:
        raise NotAStepPod(f"pod {metadata.get('name')!r} has no kflow.dev/step, task and "
                          "attempt labels: not a kflow step pod")
    try:
        number = int(attempt)
    except ValueError:
        raise NotAStepPod(f"pod {metadata.get('name')!r}: label {api_types.LABEL_ATTEMPT}="
                          f"{attempt!r} is not a number") from None
    return TaskId(str(step), str(task)), number


def _container(status: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = status.get("containerStatuses") or []
    for entry in statuses:
        if entry.get("name") == CONTAINER_NAME:
            return dict(entry)
    return dict(statuses[0]) if statuses else {}


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def _memory_limit(pod: Mapping[str, Any]) -> str | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == CONTAINER_NAME:
            limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
            return str(limit) if limit else None
    return None


def _pod_reason(status: Mapping[str, Any]) -> FailureReason | None:
    reason = str(status.get("reason") or "")
    if reason in _POD_REASONS:
        return _POD_REASONS[reason]
    if reason.startswith("OutOf"):                 # OutOfcpu, OutOfmemory, OutOfpods
        return _R.EVICTED
    if "preempt" in reason.lower():
        return _R.PREEMPTED
    return None


def _disruption(status: Mapping[str, Any]) -> tuple[FailureReason, str] | None:
    condition = _condition(status, "DisruptionTarget")
    if condition is None or condition.get("status") != "True":
        return None
    reason = _DISRUPTIONS.get(str(condition.get("reason") or ""))
    if reason is None:
        return None
    return reason, str(condition.get("message") or condition.get("reason"))


def _deletion(pod: Mapping[str, Any]) -> tuple[str, str]:
    """Why a deleted pod's container was killed: the operator's reason, else the platform's."""
    metadata = pod.get("metadata") or {}
    stop = (metadata.get("annotations") or {}).get(ANNOTATION_STOP_REASON)
    if stop:
        return str(stop), f"kflow deleted the pod ({stop})"
    disruption = _disruption(pod.get("status") or {})
    if disruption is not None:
        return disruption[0].value, f"the pod was deleted: {disruption[1]}"
    return (_R.EVICTED.value, "the pod was deleted while its task ran, not by kflow (kubectl "
            "delete, a drain, …); the attempt is retried on the infrastructure budget")


def _terminated(pod: Mapping[str, Any], terminated: Mapping[str, Any], deleted: bool,
                result: TaskResult | None) -> tuple[str, str]:
    """Reason and message of a container that ended with a non-zero exit code."""
    code = int(terminated.get("exitCode") or 0)
    why = str(terminated.get("reason") or "")
    detail = str(terminated.get("message") or "")
    if why == "OOMKilled":
        limit = _memory_limit(pod)
        where = f"its memory limit ({limit})" if limit else "the node's memory (no limit set)"
        return (_R.OOM_KILLED.value, f"the step's container went over {where} and was killed "
                "(OOMKilled); give the step more memory: @resources(memory=...)")
    if why in _LAUNCH_TERMINATED:
        return _R.LAUNCH_ERROR.value, f"the container could not start ({why}): {detail}".rstrip(
            ": ")
    if deleted and (code in (137, 143) or why == "ContainerStatusUnknown"):
        return _deletion(pod)
    if why == "ContainerStatusUnknown":
        return _R.NODE_LOST.value, detail or "the container was lost with its node"
    runner = runner_exit_failure(code, result, _RUNNER_CODES, _LOGS_HINT)
    if runner is not None:
        return runner
    if code == 143:
        return _R.EVICTED.value, "the container was terminated (SIGTERM, exit code 143) " \
            "with no reason recorded on the pod"
    if code == 137:
        return (_R.USER_ERROR.value, "the container was killed (SIGKILL, exit code 137) "
                "but not reported as OOMKilled: often a child process over the memory limit")
    return user_failure(result, code, _LOGS_HINT)


def _classify(pod: Mapping[str, Any], deleted: bool,
              result: TaskResult | None) -> tuple[TaskState, str | None, str]:
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    state = _container(status).get("state") or {}
    terminated, waiting = state.get("terminated"), state.get("waiting")
    if (terminated is not None and terminated.get("exitCode") == 0) or phase == "Succeeded":
        return "succeeded", None, ""
    if phase == "Unknown":
        return "failed", _R.NODE_LOST.value, (status.get("message") or
                                              "the pod's node stopped reporting (phase Unknown)")
    if phase == "Failed" or terminated is not None:
        pod_reason = _pod_reason(status)
        if pod_reason is not None:
            return "failed", pod_reason.value, str(status.get("message") or status.get("reason"))
        disruption = _disruption(status)
        if disruption is not None:
            return "failed", disruption[0].value, disruption[1]
        if terminated is not None:
            reason, message = _terminated(pod, terminated, deleted, result)
            return "failed", reason, message
        if deleted:
            reason, message = _deletion(pod)
            return "failed", reason, message
        return "failed", _R.LAUNCH_ERROR.value, (
            f"the pod failed before its container ran: {status.get('reason') or 'no reason'}"
            f"{': ' + str(status['message']) if status.get('message') else ''}")
    if waiting is not None:
        why = str(waiting.get("reason") or "")
        message = f"{why}: {waiting.get('message') or ''}".rstrip(": ")
        if why in _IMAGE_WAITING:
            final: TaskState = "failed" if why in _FINAL_WAITING else "pending"
            return final, _R.IMAGE_ERROR.value, message
        if why in _LAUNCH_WAITING:
            return "pending", _R.LAUNCH_ERROR.value, message
    if state.get("running") is not None or phase == "Running":
        return "running", None, ""
    scheduled = _condition(status, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False" \
            and scheduled.get("reason") == "Unschedulable":
        return "pending", _R.UNSCHEDULABLE.value, str(scheduled.get("message") or "")
    return "pending", None, ""


def _finished_at(status: Mapping[str, Any], terminated: Mapping[str, Any] | None,
                 state: TaskState) -> datetime | None:
    if terminated is not None:
        return parse_time(terminated.get("finishedAt"))
    if state in ("succeeded", "failed") and status.get("phase") in ("Succeeded", "Failed"):
        times = [parse_time(c.get("lastTransitionTime")) for c in status.get("conditions") or []]
        known = [t for t in times if t is not None]
        return max(known) if known else None
    return None


def observe_pod(pod: Mapping[str, Any]) -> ObservedAttempt:
    """The attempt `pod` runs, as the planner sees it (see the module docstring).

    Raises `NotAStepPod` for a pod without kflow's identity labels.
    """
    task, attempt = _identity(pod)
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    deleted = bool(metadata.get("deletionTimestamp"))
    container_state = _container(status).get("state") or {}
    terminated = container_state.get("terminated")
    running = container_state.get("running")
    result = TaskResult.parse(terminated.get("message")) if terminated is not None else None
    state, reason, message = _classify(pod, deleted, result)
    exit_code = terminated.get("exitCode") if terminated is not None else None
    started = (terminated or running or {}).get("startedAt")
    annotations = metadata.get("annotations") or {}
    return ObservedAttempt(
        task=task,
        attempt=attempt,
        state=state,
        reason=reason,
        message=message,
        exit_code=int(exit_code) if exit_code is not None else None,
        result=result,
        created_at=parse_time(metadata.get("creationTimestamp")),
        started_at=parse_time(started),
        finished_at=_finished_at(status, terminated, state),
        deleted=deleted,
        ready_at=parse_time(annotations.get(ANNOTATION_READY_AT)),
        pod_created_at=parse_time(annotations.get(ANNOTATION_CREATED_AT)),
    )

"""The Pod of one task attempt, built from the Flow, the FlowRun and a `StartTask` (pure).

Owns: `PodConfig` (the operator-wide pod settings and their defaults), `build_pod`
(a complete ``v1`` Pod manifest as a plain dict) and `PodSpecError`. Deterministic: the
same inputs give the same dict, so golden files pin it (tests/fixtures/golden/pods).

What every step pod gets, and why:

- Name and labels from `kflow_operator.naming`; the exact step, task and run id also as
  annotations (label values are hashed when they do not fit); the code package's sha256
  as an annotation; ``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"``.
- An ownerReference to the FlowRun (``controller``, ``blockOwnerDeletion``): deleting a
  run deletes its pods.
- The finalizer ``kflow.dev/step``: the pod is the record of its attempt, so a deleted
  pod stays (Terminating) until the operator no longer needs it; see
  `kflow_operator.reconcile`.
- ``restartPolicy: Never``: every retry is a new attempt, i.e. a new pod, decided by the
  planner. ``activeDeadlineSeconds`` = ``timeoutSeconds`` + `PodConfig.deadline_grace_seconds`
  (the runner enforces ``@timeout`` on the step's code itself; the kubelet's deadline is
  the backstop that also covers code download and persisting).
- No Kubernetes API rights: a service account without role bindings and
  ``automountServiceAccountToken: false``; ``enableServiceLinks: false``.
- A restricted security context (non-root, RuntimeDefault seccomp, no privilege
  escalation, all capabilities dropped). ``runAsUser``/``runAsGroup`` are configurable:
  ``None`` leaves the user to the image (which must then not be root).
- Orchestration timing: annotations ``kflow.dev/ready-at`` (when the task became
  runnable, `StartTask.ready_at`) and ``kflow.dev/created-at`` (the operator's clock
  just before the create call), both RFC 3339 with milliseconds, passed to the runner
  by the downward API as ``KFLOW_TASK_READY_AT`` / ``KFLOW_TASK_CREATED_AT``.
- S3 settings only through ``envFrom`` a Secret (`PodConfig.s3_secret_name`; endpoint,
  bucket and region may come from a ConfigMap, `s3_config_name`); never a
  credential in the manifest. The S3 Secret comes last so a step's own Secrets cannot
  redirect the store; a step's ``environment`` cannot set kflow's reserved variables.
- The termination message stays at the default ``/dev/termination-log`` (the runner
  writes its result JSON there) with ``FallbackToLogsOnError``.

Imports only the standard library, `kflow.api_types`, `kflow.planning.model`,
`kflow.planning.run` and `kflow_operator.naming`: no kopf, no kubernetes client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from kflow import api_types
from kflow.planning.model import StartTask
from kflow.planning.run import format_time_ms
from kflow_operator import naming

__all__ = [
    "ANNOTATION_CODE_SHA256",
    "ANNOTATION_CREATED_AT",
    "ANNOTATION_READY_AT",
    "ANNOTATION_STOP_REASON",
    "ANNOTATION_USER",
    "CONTAINER_NAME",
    "DEFAULT_REQUESTS",
    "ENV_CREATED_AT",
    "ENV_READY_AT",
    "PodConfig",
    "PodSpecError",
    "build_pod",
    "step_of",
]

CONTAINER_NAME: Final = "step"
ANNOTATION_CODE_SHA256: Final = "kflow.dev/code-sha256"
# Who started the run (on the FlowRun, label or annotation) → KFLOW_USER in the pod.
ANNOTATION_USER: Final = api_types.ANNOTATION_USER
# Set by the operator on a pod before it deletes it (value: the reason, e.g. "Stopped"),
# so `observe` can tell the operator's own deletions from the platform's.
ANNOTATION_STOP_REASON: Final = "kflow.dev/stop-reason"
# Millisecond clock readings of the operator (RFC 3339, UTC, "…T10:00:00.123Z"): when the
# task became runnable (`StartTask.ready_at`) and just before the pod was created. The
# runner reads them through the downward API (the env variables below) into its record;
# `observe` reads them back for the status' overhead summary.
ANNOTATION_READY_AT: Final = "kflow.dev/ready-at"
ANNOTATION_CREATED_AT: Final = "kflow.dev/created-at"
ENV_READY_AT: Final = api_types.ENV_TASK_READY_AT
ENV_CREATED_AT: Final = api_types.ENV_TASK_CREATED_AT

DEFAULT_REQUESTS: Final[Mapping[str, str]] = {"cpu": "100m", "memory": "256Mi"}
RUNNER_COMMAND: Final = ("python", "-m", "kflow.runner")

# Environment variables kflow sets or reads from the S3 Secret; a step's @environment
# cannot override them (env wins over envFrom in Kubernetes, so they are dropped).
_RESERVED_ENV: Final = frozenset({"KFLOW_USER", "KFLOW_STORE_DIR", "KFLOW_CODE_CACHE",
                                  "KFLOW_TERMINATION_MESSAGE_PATH", "KFLOW_S3_CREDENTIALS",
                                  ENV_READY_AT, ENV_CREATED_AT})
_RESERVED_ENV_PREFIX: Final = "KFLOW_S3_"


class PodSpecError(ValueError):
    """The Flow or FlowRun cannot give a pod (missing step, unpinned code, …)."""


@dataclass(frozen=True)
class PodConfig:
    """Operator-wide settings of step pods (`kflow_operator.settings` reads them).

    `default_requests` / `default_limits` apply per resource the step says nothing about
    (in neither its requests nor its limits): by default a step without resources asks
    for 100m CPU and 256Mi memory and has no limits (Burstable QoS).
    """

    step_service_account: str = "kflow-step"
    s3_secret_name: str = "kflow-s3"
    # A ConfigMap with the store's non-secret settings (KFLOW_S3_ENDPOINT, _BUCKET,
    # _REGION), read before the Secret (the Helm chart's split); None: the Secret has all.
    s3_config_name: str | None = None
    default_requests: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_REQUESTS))
    default_limits: Mapping[str, str] = field(default_factory=dict)
    run_as_user: int | None = 1000
    run_as_group: int | None = 1000
    deadline_grace_seconds: int = 120
    termination_grace_seconds: int = 30
    code_cache_dir: str | None = None       # → KFLOW_CODE_CACHE when set
    image_pull_policy: str | None = None    # None: Kubernetes' default for the tag


def step_of(flow: Mapping[str, Any], step: str) -> Mapping[str, Any]:
    """The ``spec.steps[]`` entry named `step`."""
    for entry in (flow.get("spec") or {}).get("steps") or []:
        if entry.get("name") == step:
            return dict(entry)
    name = (flow.get("metadata") or {}).get("name")
    raise PodSpecError(f"flow {name!r} has no step {step!r}: the Flow changed under the run "
                       "or the planner asked for a step it does not have")


def _resources(step: Mapping[str, Any], config: PodConfig) -> dict[str, dict[str, str]]:
    declared = step.get("resources") or {}
    requests = {str(k): str(v) for k, v in (declared.get("requests") or {}).items()}
    limits = {str(k): str(v) for k, v in (declared.get("limits") or {}).items()}
    said = set(requests) | set(limits)
    for key, value in config.default_requests.items():
        if key not in said:
            requests[key] = value
    for key, value in config.default_limits.items():
        if key not in said:
            limits[key] = value
    resources: dict[str, dict[str, str]] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def _user(run: Mapping[str, Any]) -> str | None:
    metadata = run.get("metadata") or {}
    for source in (metadata.get("annotations") or {}, metadata.get("labels") or {}):
        value = source.get(ANNOTATION_USER)
        if value:
            return str(value)
    return None


def _env(step: Mapping[str, Any], run: Mapping[str, Any],
         config: PodConfig) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": str(name), "value": str(value)}
           for name, value in (step.get("environment") or {}).items()
           if name not in _RESERVED_ENV and not str(name).startswith(_RESERVED_ENV_PREFIX)]
    user = _user(run)
    if user is not None:
        env.append({"name": "KFLOW_USER", "value": user})
    if config.code_cache_dir:
        env.append({"name": "KFLOW_CODE_CACHE", "value": config.code_cache_dir})
    # Empty when the annotation is absent (the runner then records no such time).
    for name, annotation in ((ENV_READY_AT, ANNOTATION_READY_AT),
                             (ENV_CREATED_AT, ANNOTATION_CREATED_AT)):
        env.append({"name": name, "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{annotation}']"}}})
    return env


def _args(flow: Mapping[str, Any], run: Mapping[str, Any], start: StartTask,
          origin_run_id: str | None) -> list[str]:
    spec = flow.get("spec") or {}
    package = spec.get("codePackage") or {}
    run_spec = run.get("spec") or {}
    args = [
        "--flow-file", str(package["flowFile"]),
        "--code-sha256", str(package["sha256"]),
        "--code-url", str(package["url"]),
        "--namespace", str(run["metadata"]["namespace"]),
        "--flow", str(spec["flowName"]),
        "--run-id", api_types.run_id(run),
        "--step", start.task.step,
        "--task", start.task.task,
        "--attempt", str(start.attempt),
        "--max-user-code-retries", str(start.last_user_attempt),
    ]
    if start.task.step == spec.get("start"):
        for name, value in (run_spec.get("parameters") or {}).items():
            args += ["--param", f"{name}={value}"]
    for tag in run_spec.get("tags") or []:
        args += ["--tag", str(tag)]
    if origin_run_id:
        args += ["--origin-run-id", origin_run_id]
    trigger = run_spec.get("trigger") or {}
    if trigger.get("flow") and trigger.get("runId"):       # @trigger_on_finish
        args += ["--trigger-run", f"{trigger['flow']}/{trigger['runId']}"]
    return args


def _merged(user: Mapping[str, Any] | None, ours: Mapping[str, str],
            reserved: Iterable[str] = ()) -> dict[str, str]:
    """kflow's entries, then `user`'s except kflow's keys (kflow's always win)."""
    blocked = set(ours) | set(reserved)
    merged = dict(ours)
    merged.update({str(k): str(v) for k, v in (user or {}).items() if k not in blocked})
    return merged


def _check_pinned(flow: Mapping[str, Any], run: Mapping[str, Any]) -> None:
    pinned = ((run.get("status") or {}).get("flow") or {}).get("codeSha256")
    current = ((flow.get("spec") or {}).get("codePackage") or {}).get("sha256")
    if pinned and pinned != current:
        raise PodSpecError(
            f"the run pinned code package {pinned[:12]}… but the Flow now has "
            f"{str(current)[:12]}…: a pod must run the pinned code; pass the Flow as "
            "it was when the run started")


def build_pod(flow: Mapping[str, Any], run: Mapping[str, Any], start: StartTask,
              config: PodConfig, *, origin_run_id: str | None = None,
              created_at: datetime | None = None) -> dict[str, Any]:
    """The Pod manifest of `start`'s attempt (see the module docstring for its contents).

    `flow` and `run` are the Flow and FlowRun objects as read from the API server (the
    run needs ``metadata.name``, ``namespace`` and ``uid``); `origin_run_id` is the run id
    of a ``resumeFrom`` origin; `created_at` is the caller's clock just before it creates
    the pod (annotation ``kflow.dev/created-at``; passed in, so the pod stays a pure
    function of the arguments). Raises `PodSpecError` when they cannot give a pod.
    """
    metadata = run.get("metadata") or {}
    if not metadata.get("namespace") or not metadata.get("uid"):
        raise PodSpecError("the FlowRun has no metadata.namespace / metadata.uid: pass the "
                           "object as read from the API server")
    _check_pinned(flow, run)
    flow_spec = flow.get("spec") or {}
    step = step_of(flow, start.task.step)
    kube = step.get("kubernetes") or {}
    run_name = str(metadata["name"])
    flow_name = str((flow.get("metadata") or {}).get("name") or "")
    sha = str((flow_spec.get("codePackage") or {}).get("sha256") or "")

    labels = _merged(kube.get("labels"),
                     naming.pod_labels(flow_name, run_name, start.task.step, start.task.task,
                                       start.attempt),
                     reserved=(*api_types.KFLOW_LABELS, *api_types.APP_LABELS))
    annotations = _merged(kube.get("annotations"), {
        api_types.ANNOTATION_SAFE_TO_EVICT: "false",
        ANNOTATION_CODE_SHA256: sha,
        naming.ANNOTATION_RUN_ID: api_types.run_id(run),
        naming.ANNOTATION_STEP: start.task.step,
        naming.ANNOTATION_TASK: start.task.task,
    }, reserved=(ANNOTATION_STOP_REASON, ANNOTATION_READY_AT, ANNOTATION_CREATED_AT))
    if start.ready_at is not None:
        annotations[ANNOTATION_READY_AT] = format_time_ms(start.ready_at)
    if created_at is not None:
        annotations[ANNOTATION_CREATED_AT] = format_time_ms(created_at)

    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": str(step.get("image") or flow_spec.get("image") or ""),
        "command": list(RUNNER_COMMAND),
        "args": _args(flow, run, start, origin_run_id),
        "env": _env(step, run, config),
        "envFrom": [{"secretRef": {"name": str(name)}} for name in kube.get("secrets") or []]
        + ([{"configMapRef": {"name": config.s3_config_name}}] if config.s3_config_name
           else [])
        + [{"secretRef": {"name": config.s3_secret_name}}],
        "resources": _resources(step, config),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if not container["image"]:
        raise PodSpecError(f"step {start.task.step!r} has no image and the Flow no spec.image")
    if config.image_pull_policy:
        container["imagePullPolicy"] = config.image_pull_policy

    pod_security: dict[str, Any] = {"runAsNonRoot": True,
                                    "seccompProfile": {"type": "RuntimeDefault"}}
    if config.run_as_user is not None:
        pod_security["runAsUser"] = config.run_as_user
    if config.run_as_group is not None:
        pod_security["runAsGroup"] = config.run_as_group

    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": str(kube.get("serviceAccount") or config.step_service_account),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": config.termination_grace_seconds,
        "securityContext": pod_security,
        "containers": [container],
    }
    timeout = step.get("timeoutSeconds")
    if timeout:
        spec["activeDeadlineSeconds"] = int(timeout) + config.deadline_grace_seconds
    if kube.get("nodeSelector"):
        spec["nodeSelector"] = {str(k): str(v) for k, v in kube["nodeSelector"].items()}
    if kube.get("tolerations"):
        spec["tolerations"] = [dict(t) for t in kube["tolerations"]]

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": naming.pod_name(run_name, start.task.step, start.task.task, start.attempt),
            "namespace": str(metadata["namespace"]),
            "labels": labels,
            "annotations": annotations,
            "finalizers": [api_types.FINALIZER_STEP],
            "ownerReferences": [{
                "apiVersion": api_types.API_VERSION,
                "kind": api_types.FLOWRUN_KIND,
                "name": run_name,
                "uid": str(metadata["uid"]),
                "controller": True,
                "blockOwnerDeletion": True,
            }],
        },
        "spec": spec,
    }

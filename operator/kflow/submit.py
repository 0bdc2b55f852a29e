"""`python flow.py resume RUN [--step STEP]`: ask the operator to resume a run in place.

Owns: the one write of an in-place resume. It reads the FlowRun, checks it is
``Failed``, and merge-patches ``spec.resume`` to ``{"attempt": max(spec.resume.attempt,
status.resumeAttempt) + 1, "step": STEP}`` (``step`` removed when not given, so the
failed steps run again), carrying the ``resourceVersion`` it read: a run changed in
between answers 409 and nothing is written. The operator does the rest (docs/api.md,
"Resuming"). Talks to Kubernetes only; the cluster comes from `kflow.config`, like a
deploy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from kflow import api_types, config, kube
from kflow.api_types import RunPhase
from kflow.exceptions import KflowException

__all__ = ["ResumeResult", "SubmitError", "next_resume", "resume_run"]


class SubmitError(KflowException):
    """The request was not written (the run does not exist, is not resumable, ...)."""


@dataclass(frozen=True)
class ResumeResult:
    """What `resume_run` asked for."""

    name: str
    namespace: str
    attempt: int
    step: str | None

    def describe(self) -> str:
        what = f"from step {self.step}" if self.step else "its failed steps"
        return "\n".join([
            f"flowrun.{api_types.GROUP}/{self.name} in namespace {self.namespace}: resume "
            f"{self.attempt} requested ({what}; attempts numbered from {self.attempt * 100})",
            f"  kubectl get fr {self.name} -n {self.namespace} -w",
        ])


def next_resume(run: dict[str, Any], step: str | None = None) -> dict[str, Any]:
    """The ``spec.resume`` a new resume of `run` (a FlowRun as read) sets, or SubmitError
    saying why the run cannot be resumed in place."""
    metadata = run.get("metadata") or {}
    where = f"FlowRun {metadata.get('name')} in namespace {metadata.get('namespace')}"
    spec = run.get("spec") or {}
    status = run.get("status") or {}
    phase = status.get("phase")
    if phase == RunPhase.STOPPED.value:
        raise SubmitError(f"{where} was stopped; a stopped run cannot be resumed in place. "
                          "Create a new run with spec.resumeFrom.run set to it.")
    if phase != RunPhase.FAILED.value:
        raise SubmitError(f"{where} is {phase or 'not started yet'}, not Failed: only a "
                          "failed run can be resumed in place.")
    if step is not None:
        names = [s.get("name") for s in status.get("steps") or []]
        if names and step not in names:
            raise SubmitError(f"{where} has no step {step!r}; its steps: "
                              f"{', '.join(map(str, names))}")
    current = int((spec.get("resume") or {}).get("attempt") or 0)
    acted = int(status.get("resumeAttempt") or 0)
    return {"attempt": max(current, acted) + 1, "step": step}


def _api_error(exc: Any, where: str) -> str:
    try:
        message = json.loads(exc.body).get("message", exc.reason)
    except (TypeError, ValueError):
        message = exc.reason
    if exc.status == 404:
        return f"{where} not found: check the name (kubectl get fr -n <namespace>)"
    if exc.status == 409:
        return f"{where} changed while resuming it ({message}); run the command again"
    if exc.status == 403:
        return f"not allowed to update {where}: {message}. Ask for RBAC on flowruns.kflow.dev."
    return f"the API server rejected the resume of {where} ({exc.status}): {message}"


def resume_run(name: str, *, step: str | None = None, namespace: str | None = None,
               settings: config.KflowConfig | None = None) -> ResumeResult:
    """Patch FlowRun `name`'s ``spec.resume`` to ask for one more in-place resume."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    settings = settings or config.load()
    namespace = namespace or settings.namespace
    where = f"FlowRun {name} in namespace {namespace}"
    api_client = kube.api_client(settings)
    api = client.CustomObjectsApi(api_client)
    args = (api_types.GROUP, api_types.VERSION, namespace, api_types.FLOWRUN_PLURAL, name)
    try:
        run = cast(dict[str, Any], api.get_namespaced_custom_object(*args))
        resume = next_resume(run, step)
        body = {"metadata": {"resourceVersion": run["metadata"]["resourceVersion"]},
                "spec": {"resume": resume}}
        api.patch_namespaced_custom_object(
            *args, body=body, _content_type="application/merge-patch+json")
    except ApiException as exc:
        raise SubmitError(_api_error(exc, where)) from exc
    except (HTTPError, OSError) as exc:  # connection refused, DNS, TLS
        raise SubmitError(f"can't reach the API server for {where}: {exc}") from exc
    finally:
        api_client.close()
    return ResumeResult(name, namespace, resume["attempt"], step)

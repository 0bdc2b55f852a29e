"""`python flow.py resume RUN [--step STEP]`: ask the operator to resume a run in place.

Owns: the one write of an in-place resume. It reads the FlowRun, checks it is
``Failed``, and merge-patches ``spec.resume`` to ``{"attempt": max(spec.resume.attempt,
status.resumeAttempt) + 1, "step": STEP}`` (``step`` removed when not given, so the
failed steps run again), carrying the ``resourceVersion`` it read: a run changed in
between answers 409 and nothing is written. The operator does the rest (docs/api.md,
"Resuming"). Talks to Kubernetes only; the cluster comes from `kflow.config`, like a
deploy.

Also owns `api_errors`, the one place that turns the Kubernetes client's errors
(refused, unreachable, 401/403/404/409/422) into a one-line `SubmitError` saying what
and what to do; `kflow.launch` (`run`, `trigger`) uses it too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from kflow import api_types, config, kube
from kflow.api_types import RunPhase
from kflow.exceptions import KflowException

__all__ = ["ResumeResult", "SubmitError", "api_error", "api_errors", "next_resume", "resume_run"]


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


def api_error(exc: Any, where: str, *, action: str, plural: str,
              hints: Mapping[int, str] | None = None) -> str:
    """One line saying what the API server refused (`exc`, an ``ApiException``) and what
    to do. `action` is what was tried on `where` ("update", "create", "read"); `hints`
    replace the text of given status codes (``{where}`` and ``{message}`` filled in)."""
    try:
        message = json.loads(exc.body).get("message", exc.reason)
    except (TypeError, ValueError):
        message = exc.reason
    if hints and exc.status in hints:
        return hints[exc.status].format(where=where, message=message)
    if exc.status == 401:
        return (f"the API server did not accept your credentials ({message}) to {action} "
                f"{where}: check the kubeconfig (`kflow configure --show`)")
    if exc.status == 403:
        return (f"not allowed to {action} {where}: {message}. "
                f"Ask for RBAC on {plural}.{api_types.GROUP}.")
    if exc.status == 404:
        return f"{where} not found ({message})"
    return f"the API server rejected the {action} of {where} ({exc.status}): {message}"


@contextmanager
def api_errors(where: str, *, action: str, plural: str,
               hints: Mapping[int, str] | None = None) -> Iterator[None]:
    """Turn the Kubernetes client's errors inside the block into one-line `SubmitError`s."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as exc:
        raise SubmitError(api_error(exc, where, action=action, plural=plural,
                                    hints=hints)) from exc
    except (HTTPError, OSError) as exc:  # connection refused, DNS, TLS
        raise SubmitError(f"can't reach the API server for {where}: {exc}. Is the cluster "
                          "up? `kflow configure --show` shows the kubeconfig in use.") from exc


_RESUME_HINTS = {
    404: "{where} not found: check the name (kubectl get fr -n <namespace>)",
    409: "{where} changed while resuming it ({message}); run the command again",
}


def resume_run(name: str, *, step: str | None = None, namespace: str | None = None,
               settings: config.KflowConfig | None = None) -> ResumeResult:
    """Patch FlowRun `name`'s ``spec.resume`` to ask for one more in-place resume."""
    from kubernetes import client

    settings = settings or config.load()
    namespace = namespace or settings.namespace
    where = f"FlowRun {name} in namespace {namespace}"
    api_client = kube.api_client(settings)
    api = client.CustomObjectsApi(api_client)
    args = (api_types.GROUP, api_types.VERSION, namespace, api_types.FLOWRUN_PLURAL, name)
    try:
        with api_errors(where, action="update", plural=api_types.FLOWRUN_PLURAL,
                        hints=_RESUME_HINTS):
            run = cast(dict[str, Any], api.get_namespaced_custom_object(*args))
            resume = next_resume(run, step)
            body = {"metadata": {"resourceVersion": run["metadata"]["resourceVersion"]},
                    "spec": {"resume": resume}}
            api.patch_namespaced_custom_object(
                *args, body=body, _content_type="application/merge-patch+json")
    finally:
        api_client.close()
    return ResumeResult(name, namespace, resume["attempt"], step)

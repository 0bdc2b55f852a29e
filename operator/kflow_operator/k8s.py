"""The operator's only door to the Kubernetes API.

Owns: the `KubeApi` Protocol (what the reconciler needs from the cluster, so component
tests can pass an in-memory fake), `KubernetesKubeApi` (its implementation over the
official ``kubernetes`` client) and the errors it raises. Every call converts
``ApiException`` at this edge (gafaelfawr's ``_convert_exception``):

=====================================  ==============================================
the API says                           callers see
=====================================  ==============================================
no answer, 429, 5xx, 403 exceeded quota `TransientKubeError` (``delay``: Retry-After or
                                       a few seconds); the kopf boundary turns it into
                                       ``kopf.TemporaryError``
404 on a read                          ``None``
404 on a delete                        done (it is gone)
409 on a create                        "already there": the existing object is read
                                       back, and it must be owned by the same FlowRun
                                       (else `TransientKubeError`: an older run's object
                                       waits for the garbage collector)
any other 4xx                          `InvalidRequest` (what we sent cannot work)
=====================================  ==============================================

Objects are plain dicts shaped as the API server returns them (camelCase keys, RFC 3339
times): responses are read with ``_preload_content=False`` and parsed as JSON, so the
pure modules (`observe`, `podspec`) see exactly what ``kubectl get -o json`` shows.

Imports kubernetes, never kopf.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kflow import api_types
from kflow.planning.model import Event
from kflow_operator.observe import owner_uid
from kflow_operator.podspec import ANNOTATION_STOP_REASON

__all__ = [
    "InvalidRequest",
    "KubeApi",
    "KubeError",
    "KubernetesKubeApi",
    "TransientKubeError",
    "load_api_client",
]

log = logging.getLogger(__name__)

DEFAULT_RETRY_DELAY: Final = 5.0
QUOTA_RETRY_DELAY: Final = 30.0
REPORTING_COMPONENT: Final = "kflow-operator"
_TIMEOUT: Final = 30.0            # seconds per request (connect + read)


class KubeError(Exception):
    """A Kubernetes API call failed (base of the two below)."""


class TransientKubeError(KubeError):
    """Worth trying again later: no answer, 429, 5xx, or an object awaiting GC."""

    def __init__(self, message: str, delay: float = DEFAULT_RETRY_DELAY) -> None:
        super().__init__(message)
        self.delay = delay


class InvalidRequest(KubeError):
    """The API server rejected what we sent (a 4xx): retrying the same request is futile."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class KubeApi(Protocol):
    """What the reconciler needs from the cluster (objects are API-shaped dicts)."""

    def get_flowrun(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def get_flow(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def patch_flowrun_status(self, namespace: str, name: str,
                             status: Mapping[str, Any]) -> None: ...
    def patch_flowrun_labels(self, namespace: str, name: str,
                             labels: Mapping[str, str]) -> None: ...
    def list_flowruns(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...
    def create_flowrun(self, body: Mapping[str, Any]) -> bool: ...
    def patch_flowrun(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None: ...
    def list_flows(self, namespace: str) -> list[dict[str, Any]]: ...
    def patch_flow_status(self, namespace: str, name: str,
                          status: Mapping[str, Any]) -> None: ...
    def list_pods(self, namespace: str, selector: str,
                  owner: str | None) -> list[dict[str, Any]]: ...
    def release_pod(self, pod: Mapping[str, Any]) -> None: ...
    def create_pod(self, pod: Mapping[str, Any]) -> bool: ...
    def delete_pod(self, namespace: str, name: str, reason: str) -> None: ...
    def delete_flowrun(self, namespace: str, name: str, uid: str) -> None: ...
    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def create_configmap(self, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def create_event(self, run: Mapping[str, Any], event: Event) -> None: ...


def load_api_client() -> client.ApiClient:
    """An API client from the in-cluster service account, else KUBECONFIG / ~/.kube/config."""
    configuration = client.Configuration()
    loaders: Any = config        # untyped functions
    try:
        loaders.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        loaders.load_kube_config(client_configuration=configuration)
    return client.ApiClient(configuration)


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return f"{exc.status} {exc.reason}"


def _retry_after(exc: ApiException) -> float:
    try:
        return max(float((exc.headers or {}).get("Retry-After", "")), 1.0)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_DELAY


def _convert(what: str, exc: BaseException) -> KubeError:
    """An exception of the client as one of ours (see the module docstring)."""
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        if status == 0 or status == 429 or status >= 500:
            return TransientKubeError(f"{what}: {_message(exc)}", _retry_after(exc))
        if status == 403 and "exceeded quota" in _message(exc):
            # A ResourceQuota is full: capacity frees up as other pods finish.
            return TransientKubeError(f"{what}: {_message(exc)}", QUOTA_RETRY_DELAY)
        return InvalidRequest(f"{what}: {_message(exc)}", status)
    return TransientKubeError(f"{what}: {type(exc).__name__}: {exc}")


def _status(exc: BaseException) -> int | None:
    return int(exc.status or 0) if isinstance(exc, ApiException) else None


def _outcome(exc: BaseException) -> str:
    """The metrics' name of a failed request."""
    status = _status(exc)
    return {None: "transient", 0: "transient", 404: "notfound", 409: "conflict",
            429: "throttled"}.get(status, "transient" if (status or 0) >= 500 else "invalid")


_NETWORK_ERRORS: Final = (ApiException, urllib3.exceptions.HTTPError, OSError)
# The first word of a `_call`'s description → the API verb.
_VERBS: Final = {"read": "get", "annotate": "patch", "label": "patch", "release": "patch"}


class KubernetesKubeApi:
    """`KubeApi` over the official client (thread-safe: one connection pool)."""

    def __init__(self, api: client.ApiClient, *,
                 on_request: Callable[[str, str], None] | None = None) -> None:
        # Typed Any: we send and receive API-shaped dicts, not the client's models.
        self._core: Any = client.CoreV1Api(api)
        self._custom: Any = client.CustomObjectsApi(api)
        self._on_request = on_request or (lambda verb, outcome: None)

    # -- helpers ------------------------------------------------------------------------

    def _request(self, verb: str, call: Callable[[], Any]) -> Any:
        """Run `call`, telling `on_request` its verb and outcome (for the metrics)."""
        try:
            response = call()
        except _NETWORK_ERRORS as exc:
            self._on_request(verb, _outcome(exc))
            raise
        self._on_request(verb, "ok")
        return response

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        """Run `call`, parse a raw JSON response; convert errors (404 → None)."""
        verb = _VERBS.get(what.split(" ", 1)[0], what.split(" ", 1)[0])
        try:
            response = self._request(verb, call)
        except _NETWORK_ERRORS as exc:
            if _status(exc) == 404:
                return None
            raise _convert(what, exc) from exc
        data = getattr(response, "data", None)
        return json.loads(data) if isinstance(data, bytes | str) and data else response

    # -- FlowRuns and Flows -------------------------------------------------------------

    def get_flowrun(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The FlowRun, None if it does not exist."""
        return self._get_custom(api_types.FLOWRUN_KIND, api_types.FLOWRUN_PLURAL, namespace, name)

    def get_flow(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Flow, None if it does not exist."""
        return self._get_custom(api_types.FLOW_KIND, api_types.FLOW_PLURAL, namespace, name)

    def _get_custom(self, kind: str, plural: str, namespace: str,
                    name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._call(
            f"get {kind} {namespace}/{name}",
            lambda: self._custom.get_namespaced_custom_object(
                api_types.GROUP, api_types.VERSION, namespace, plural, name,
                _preload_content=False, _request_timeout=_TIMEOUT))
        return result

    def patch_flowrun_status(self, namespace: str, name: str,
                             status: Mapping[str, Any]) -> None:
        """Merge-patch ``status`` (keys set to None are removed); a gone run is ignored."""
        self._call(f"patch the status of FlowRun {namespace}/{name}",
                   lambda: self._custom.patch_namespaced_custom_object_status(
                       api_types.GROUP, api_types.VERSION, namespace,
                       api_types.FLOWRUN_PLURAL, name, {"status": dict(status)},
                       _preload_content=False, _request_timeout=_TIMEOUT))

    def patch_flowrun_labels(self, namespace: str, name: str,
                             labels: Mapping[str, str]) -> None:
        """Merge-patch labels into the FlowRun's metadata."""
        self._call(f"label FlowRun {namespace}/{name}",
                   lambda: self._custom.patch_namespaced_custom_object(
                       api_types.GROUP, api_types.VERSION, namespace,
                       api_types.FLOWRUN_PLURAL, name, {"metadata": {"labels": dict(labels)}},
                       _preload_content=False, _request_timeout=_TIMEOUT))

    def list_flowruns(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The FlowRuns in `namespace` matching the label `selector`."""
        listed = self._call(f"list FlowRuns {selector!r} in {namespace}",
                            lambda: self._custom.list_namespaced_custom_object(
                                api_types.GROUP, api_types.VERSION, namespace,
                                api_types.FLOWRUN_PLURAL, label_selector=selector,
                                _preload_content=False, _request_timeout=_TIMEOUT))
        return list((listed or {}).get("items") or [])

    def create_flowrun(self, body: Mapping[str, Any]) -> bool:
        """Create a FlowRun (scheduled or triggered); True if created, False if one of
        that name was there (its name is derived from what it runs for: "already
        started")."""
        metadata = body["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        try:
            self._request("create", lambda: self._custom.create_namespaced_custom_object(
                api_types.GROUP, api_types.VERSION, namespace, api_types.FLOWRUN_PLURAL,
                dict(body), _preload_content=False, _request_timeout=_TIMEOUT))
            return True
        except _NETWORK_ERRORS as exc:
            if _status(exc) == 409:
                return False
            raise _convert(f"create FlowRun {namespace}/{name}", exc) from exc

    def patch_flowrun(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """Merge-patch the FlowRun (spec or metadata); a gone run is ignored."""
        self._call(f"patch FlowRun {namespace}/{name}",
                   lambda: self._custom.patch_namespaced_custom_object(
                       api_types.GROUP, api_types.VERSION, namespace,
                       api_types.FLOWRUN_PLURAL, name, dict(patch),
                       _preload_content=False, _request_timeout=_TIMEOUT))

    def list_flows(self, namespace: str) -> list[dict[str, Any]]:
        """The Flows in `namespace` (for the ones a finished run triggers)."""
        listed = self._call(f"list Flows in {namespace}",
                            lambda: self._custom.list_namespaced_custom_object(
                                api_types.GROUP, api_types.VERSION, namespace,
                                api_types.FLOW_PLURAL, _preload_content=False,
                                _request_timeout=_TIMEOUT))
        return list((listed or {}).get("items") or [])

    def patch_flow_status(self, namespace: str, name: str,
                          status: Mapping[str, Any]) -> None:
        """Merge-patch the Flow's ``status`` (None removes a key); a gone Flow is ignored."""
        self._call(f"patch the status of Flow {namespace}/{name}",
                   lambda: self._custom.patch_namespaced_custom_object_status(
                       api_types.GROUP, api_types.VERSION, namespace, api_types.FLOW_PLURAL,
                       name, {"status": dict(status)}, _preload_content=False,
                       _request_timeout=_TIMEOUT))

    def delete_flowrun(self, namespace: str, name: str, uid: str) -> None:
        """Delete the FlowRun with this uid (a newer run of the same name is left alone;
        a gone one is done); its pods and ConfigMap follow in the background."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
                "preconditions": {"uid": uid}}
        try:
            self._call(f"delete FlowRun {namespace}/{name}",
                       lambda: self._custom.delete_namespaced_custom_object(
                           api_types.GROUP, api_types.VERSION, namespace,
                           api_types.FLOWRUN_PLURAL, name, body=body, _preload_content=False,
                           _request_timeout=_TIMEOUT))
        except InvalidRequest as exc:
            if exc.status != 409:          # 409: the uid precondition failed (a newer run)
                raise

    # -- pods ---------------------------------------------------------------------------

    def list_pods(self, namespace: str, selector: str,
                  owner: str | None) -> list[dict[str, Any]]:
        """The pods matching `selector` whose controller is the FlowRun with uid `owner`
        (any owner when None)."""
        listed = self._call(f"list pods {selector!r} in {namespace}",
                            lambda: self._core.list_namespaced_pod(
                                namespace, label_selector=selector, _preload_content=False,
                                _request_timeout=_TIMEOUT))
        items = (listed or {}).get("items") or []
        return [pod for pod in items if owner is None or owner_uid(pod) == owner]

    def release_pod(self, pod: Mapping[str, Any]) -> None:
        """Remove kflow's finalizer from `pod` (a JSON patch that tests it is still at the
        index we saw: a concurrent change fails it, and the next reconcile sees the new
        pod); a gone pod or a pod without it is nothing to do."""
        metadata = pod.get("metadata") or {}
        namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
        finalizers = list(metadata.get("finalizers") or [])
        if api_types.FINALIZER_STEP not in finalizers:
            return
        index = finalizers.index(api_types.FINALIZER_STEP)
        path = f"/metadata/finalizers/{index}"
        patch = [{"op": "test", "path": path, "value": api_types.FINALIZER_STEP},
                 {"op": "remove", "path": path}]
        try:
            self._call(f"release pod {namespace}/{name}",
                       lambda: self._core.patch_namespaced_pod(
                           name, namespace, patch, _preload_content=False,
                           _request_timeout=_TIMEOUT))
        except InvalidRequest as exc:
            raise TransientKubeError(f"release pod {namespace}/{name}: the pod changed "
                                     f"meanwhile ({exc}); trying again") from exc

    def create_pod(self, pod: Mapping[str, Any]) -> bool:
        """Create `pod`; True if created, False if this run's pod of that name was there."""
        metadata = pod["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        what = f"create pod {namespace}/{name}"
        try:
            self._request("create", lambda: self._core.create_namespaced_pod(
                namespace, dict(pod), _preload_content=False, _request_timeout=_TIMEOUT))
            return True
        except _NETWORK_ERRORS as exc:
            if _status(exc) != 409:
                raise _convert(what, exc) from exc
        existing = self._call(f"read pod {namespace}/{name}",
                              lambda: self._core.read_namespaced_pod(
                                  name, namespace, _preload_content=False,
                                  _request_timeout=_TIMEOUT))
        wanted = (metadata.get("ownerReferences") or [{}])[0].get("uid")
        if existing is not None and owner_uid(existing) == wanted:
            return False
        raise TransientKubeError(f"{what}: a pod of that name belongs to another FlowRun "
                                 "(an older run of the same name, not yet garbage-collected)")

    def delete_pod(self, namespace: str, name: str, reason: str) -> None:
        """Annotate the pod with why kflow deletes it (`observe` reads it), then delete it."""
        patch = {"metadata": {"annotations": {ANNOTATION_STOP_REASON: reason}}}
        gone = self._call(f"annotate pod {namespace}/{name}",
                          lambda: self._core.patch_namespaced_pod(
                              name, namespace, patch, _preload_content=False,
                              _request_timeout=_TIMEOUT)) is None
        if gone:
            return
        self._call(f"delete pod {namespace}/{name}",
                   lambda: self._core.delete_namespaced_pod(
                       name, namespace, _preload_content=False, _request_timeout=_TIMEOUT))

    # -- ConfigMaps (the run's Flow snapshot) -------------------------------------------

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ConfigMap, None if it does not exist."""
        result: dict[str, Any] | None = self._call(
            f"read ConfigMap {namespace}/{name}",
            lambda: self._core.read_namespaced_config_map(
                name, namespace, _preload_content=False, _request_timeout=_TIMEOUT))
        return result

    def create_configmap(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create the ConfigMap; on 409 return the existing one (the caller checks it)."""
        metadata = body["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        try:
            response = self._request("create", lambda: self._core.create_namespaced_config_map(
                namespace, dict(body), _preload_content=False, _request_timeout=_TIMEOUT))
            created: dict[str, Any] = json.loads(response.data)
            return created
        except _NETWORK_ERRORS as exc:
            if _status(exc) != 409:
                raise _convert(f"create ConfigMap {namespace}/{name}", exc) from exc
        existing = self.get_configmap(namespace, name)
        if existing is None:
            raise TransientKubeError(f"ConfigMap {namespace}/{name} vanished after a conflict")
        return existing

    # -- Events -------------------------------------------------------------------------

    def create_event(self, run: Mapping[str, Any], event: Event) -> None:
        """Record `event` on the FlowRun (or the Flow: the object's ``kind``); failures
        are logged, never raised (best effort)."""
        metadata = run.get("metadata") or {}
        namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "metadata": {"name": f"{name}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": api_types.API_VERSION,
                "kind": str(run.get("kind") or api_types.FLOWRUN_KIND),
                "name": name, "namespace": namespace, "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": REPORTING_COMPONENT},
            "reportingComponent": REPORTING_COMPONENT,
            "reportingInstance": REPORTING_COMPONENT,
            "action": event.reason,
            "firstTimestamp": now[:19] + "Z",
            "lastTimestamp": now[:19] + "Z",
            "eventTime": now,
            "count": 1,
        }
        try:
            self._request("create", lambda: self._core.create_namespaced_event(
                namespace, body, _preload_content=False, _request_timeout=_TIMEOUT))
        except _NETWORK_ERRORS as exc:
            log.warning("could not record event %s on %s/%s: %s",
                        event.reason, namespace, name, _convert("create event", exc))

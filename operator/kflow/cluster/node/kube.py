"""The node's only door to the Kubernetes API: plain dicts over one shared ApiClient.

Owns: loading the admin kubeconfig, JSON requests by path (objects stay camelCase
dicts exactly as the API serves them, no model classes), watch streams, and turning
HTTP errors into `KubeError`. Thread-safe (urllib3's pool is). Imports nothing from
kflow outside `kflow.cluster.node`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import yaml
from kubernetes import client, config


class KubeError(Exception):
    """A non-2xx answer (status 0: the request did not get an answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ClusterAccess:
    """What per-pod kubeconfigs need from the admin kubeconfig."""

    server: str
    ca_data: str  # base64 PEM, as in kubeconfig


def read_cluster_access(kubeconfig: str) -> ClusterAccess:
    """Server URL and CA of the kubeconfig's current context."""
    with open(kubeconfig) as f:
        data = yaml.safe_load(f)
    contexts = {c["name"]: c["context"] for c in data.get("contexts") or []}
    clusters = {c["name"]: c["cluster"] for c in data.get("clusters") or []}
    current = data.get("current-context") or next(iter(contexts), None)
    cluster_name = contexts[current]["cluster"] if current in contexts else next(iter(clusters))
    cluster = clusters[cluster_name]
    ca_data = cluster.get("certificate-authority-data")
    if not ca_data and cluster.get("certificate-authority"):
        with open(cluster["certificate-authority"], "rb") as f:
            ca_data = base64.b64encode(f.read()).decode()
    return ClusterAccess(server=str(cluster["server"]).rstrip("/"), ca_data=str(ca_data or ""))


def api_path(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


def pod_path(namespace: str, name: str, sub: str | None = None) -> str:
    parts = ["api", "v1", "namespaces", namespace, "pods", name]
    return api_path(*parts, *([sub] if sub else []))


class Kube:
    """JSON requests against the API server of one kubeconfig."""

    def __init__(self, kubeconfig: str) -> None:
        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
        self._api = client.ApiClient(configuration)

    @property
    def api_client(self) -> Any:
        return self._api

    def _open(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
        timeout: float | tuple[float, float] | None,
    ) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        _, url, headers, _, _ = self._api.param_serialize(
            method, path, header_params=headers, auth_settings=["BearerToken"]
        )
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        try:
            response = self._api.call_api(
                method, url, header_params=headers, body=body, _request_timeout=timeout
            )
        except client.ApiException as exc:
            raise KubeError(int(exc.status or 0), str(exc.reason)) from exc
        except Exception as exc:  # urllib3 connection errors and the like
            raise KubeError(0, f"{type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status <= 299:
            data = response.read()  # type: ignore[no-untyped-call]
            try:
                message = json.loads(data).get("message", "")
            except ValueError:
                message = data.decode(errors="replace")
            raise KubeError(int(response.status), str(message))
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Any:
        """Send one request; return the decoded JSON answer (None when empty)."""
        response = self._open(method, path, query, body, content_type, timeout)
        try:
            data = response.read()
        except Exception as exc:
            raise KubeError(0, f"{type(exc).__name__}: {exc}") from exc
        return json.loads(data) if data else None

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query or None)

    def merge_patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.request(
            "PATCH", path, body=dict(body), content_type="application/merge-patch+json"
        )

    def watch(
        self, path: str, query: Mapping[str, Any], timeout: float
    ) -> Iterator[dict[str, Any]]:
        """Yield watch events (dicts with `type` and `object`) until the server ends the stream."""
        params = {**query, "watch": "true", "allowWatchBookmarks": "true"}
        response = self._open("GET", path, params, None, "application/json", (10, timeout))
        raw = response.response
        buffer = b""
        try:
            for chunk in raw.stream(amt=None, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            raw.release_conn()


def pods_path(namespace: str | None = None) -> str:
    if namespace is None:
        return "/api/v1/pods"
    return api_path("api", "v1", "namespaces", namespace, "pods")


def ns_path(namespace: str, resource: str, name: str | None = None) -> str:
    """`/api/v1/namespaces/<ns>/<resource>[/<name>]` for core resources."""
    parts = ["api", "v1", "namespaces", namespace, resource]
    return api_path(*parts, *([name] if name else []))

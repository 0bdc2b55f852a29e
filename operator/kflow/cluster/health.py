"""Health checks of each embedded-cluster component.

Owns: the question "is component X serving?", answered with None (yes) or
a short reason (no). Uses plain HTTPS with the cluster's own certificates,
so `kflow cluster status` needs no Kubernetes client.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from kflow.cluster import s3
from kflow.cluster.components import NODE_NAME, Layout, apiserver_url

Probe = Callable[[], "str | None"]


def _get(url: str, context: ssl.SSLContext | None, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, context=context, timeout=timeout) as resp:
        body: bytes = resp.read()
    return body.decode(errors="replace")


def _insecure() -> ssl.SSLContext:
    # The controller-manager and scheduler serve a self-signed in-memory certificate.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def admin_context(layout: Layout) -> ssl.SSLContext:
    """TLS context trusting the cluster CA and presenting the admin client certificate."""
    pki = layout.pki
    ctx = ssl.create_default_context(cafile=str(pki.ca_crt))
    ctx.load_cert_chain(str(pki.crt("admin")), str(pki.key("admin")))
    return ctx


def _http_ok(url: str, context: ssl.SSLContext | None, expect: str = "ok") -> str | None:
    try:
        body = _get(url, context)
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}: {exc.read().decode(errors='replace')[:200].strip()}"
    except (OSError, ValueError) as exc:
        return f"{url}: {exc}"
    return None if body.strip() == expect else f"{url} answered {body[:200]!r}"


def api_get(layout: Layout, ports: Mapping[str, int], path: str) -> Any:
    """GET a Kubernetes API path as admin; the decoded JSON."""
    return json.loads(_get(apiserver_url(ports) + path, admin_context(layout)))


def node_not_ready(layout: Layout, ports: Mapping[str, int]) -> str | None:
    """None once the process node is Ready and carries no not-ready/unreachable taint."""
    try:
        node = api_get(layout, ports, f"/api/v1/nodes/{NODE_NAME}")
    except urllib.error.HTTPError as exc:
        return f"node {NODE_NAME}: {'not registered yet' if exc.code == 404 else exc}"
    except (OSError, ValueError) as exc:
        return f"node {NODE_NAME}: {exc}"
    conditions = {c["type"]: c for c in node.get("status", {}).get("conditions", [])}
    ready = conditions.get("Ready", {})
    if ready.get("status") != "True":
        return f"node {NODE_NAME} Ready={ready.get('status', '?')}: {ready.get('message', '')}"
    taints = [t["key"] for t in node.get("spec", {}).get("taints", []) or []
              if t["key"].startswith("node.kubernetes.io/")]
    return f"node {NODE_NAME} still tainted {', '.join(taints)}" if taints else None


def probes(layout: Layout, ports: Mapping[str, int]) -> dict[str, Probe]:
    """One check per component name of `components.COMPONENTS`."""

    def etcd() -> str | None:
        url = f"http://127.0.0.1:{ports['etcd_client']}/health"
        try:
            health = json.loads(_get(url, None)).get("health")
        except (OSError, ValueError) as exc:
            return f"{url}: {exc}"
        return None if health == "true" else f"{url}: health={health}"

    def apiserver() -> str | None:
        ctx = ssl.create_default_context(cafile=str(layout.pki.ca_crt))
        return _http_ok(f"{apiserver_url(ports)}/readyz", ctx)

    def controller_manager() -> str | None:
        return _http_ok(f"https://127.0.0.1:{ports['controller_manager']}/healthz", _insecure())

    def scheduler() -> str | None:
        return _http_ok(f"https://127.0.0.1:{ports['scheduler']}/readyz", _insecure())

    def object_store() -> str | None:
        try:
            creds = s3.read_credentials_file(layout.s3_credentials)
        except (OSError, ValueError, KeyError) as exc:
            return f"credentials {layout.s3_credentials}: {exc}"
        return s3.probe(creds)

    def node() -> str | None:
        return node_not_ready(layout, ports)

    return {
        "etcd": etcd,
        "kube-apiserver": apiserver,
        "kube-controller-manager": controller_manager,
        "kube-scheduler": scheduler,
        "s3": object_store,
        "node": node,
    }

"""Per-pod API credentials: a TokenRequest token for the pod's service account.

Without mount namespaces `/var/run/secrets/kubernetes.io/serviceaccount` cannot be
given to a process, so each pod gets `<pod dir>/sa/token` and a kubeconfig
`<pod dir>/sa/kubeconfig`, passed as `KUBECONFIG`: server and CA from the node's
kubeconfig, user `tokenFile` pointing at the token, namespace = the pod's; written
as JSON (valid YAML) so stdlib-only code can read it too.
client-go and the Python client read `tokenFile`; client-go re-reads it, so the
refresh (at 80 % of the token's hour) reaches long-running clients. The token is
bound to the pod, so it stops working when the pod is deleted.

Skipped when `automountServiceAccountToken` is false (pod, or service account when the
pod leaves it unset). Imports nothing from kflow outside `kflow.cluster.node`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kflow.cluster.node.kube import ClusterAccess, Kube, KubeError, ns_path

TOKEN_SECONDS = 3600


class CredentialsError(Exception):
    """The token cannot be issued (yet); the message goes to the container status."""


def build_kubeconfig(access: ClusterAccess, token_file: Path, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kflow",
                "cluster": {"server": access.server, "certificate-authority-data": access.ca_data},
            }
        ],
        "users": [{"name": "pod", "user": {"tokenFile": str(token_file)}}],
        "contexts": [
            {"name": "pod", "context": {"cluster": "kflow", "user": "pod", "namespace": namespace}}
        ],
        "current-context": "pod",
    }


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def wants_token(pod: dict[str, Any], service_account: dict[str, Any] | None) -> bool:
    spec = pod.get("spec") or {}
    pod_setting = spec.get("automountServiceAccountToken")
    if pod_setting is not None:
        return bool(pod_setting)
    return not (service_account and service_account.get("automountServiceAccountToken") is False)


@dataclass(frozen=True)
class Credentials:
    token: str
    expires: datetime
    issued: datetime
    kubeconfig: Path

    def due(self, now: datetime) -> bool:
        """Refresh after 80 % of the lifetime."""
        return now >= self.issued + (self.expires - self.issued) * 0.8


def issue(
    kube: Kube, access: ClusterAccess, pod: dict[str, Any], pod_dir: Path
) -> Credentials | None:
    """Request a token and write token + kubeconfig; None when the pod opts out."""
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace", "default"))
    account = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
    try:
        service_account = kube.get(ns_path(namespace, "serviceaccounts", account))
    except KubeError as exc:
        if exc.status == 404:
            raise CredentialsError(f'serviceaccount "{namespace}/{account}" not found') from exc
        raise CredentialsError(f"reading serviceaccount {namespace}/{account}: {exc}") from exc
    if not wants_token(pod, service_account):
        return None
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [],
            "expirationSeconds": TOKEN_SECONDS,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta.get("name"),
                "uid": meta.get("uid"),
            },
        },
    }
    try:
        answer = kube.request(
            "POST", ns_path(namespace, "serviceaccounts", account) + "/token", body=body
        )
    except KubeError as exc:
        raise CredentialsError(f"requesting a token for {namespace}/{account}: {exc}") from exc
    token = str(answer["status"]["token"])
    now = datetime.now(UTC)
    expires_text = str(answer["status"].get("expirationTimestamp", ""))
    try:
        expires = datetime.fromisoformat(expires_text.replace("Z", "+00:00"))
    except ValueError:
        expires = now + timedelta(seconds=TOKEN_SECONDS)
    sa_dir = pod_dir / "sa"
    sa_dir.mkdir(parents=True, exist_ok=True)
    token_file = sa_dir / "token"
    _write_atomic(token_file, token)
    kubeconfig = sa_dir / "kubeconfig"
    _write_atomic(kubeconfig, json.dumps(build_kubeconfig(access, token_file, namespace), indent=1))
    return Credentials(token, expires, now, kubeconfig)

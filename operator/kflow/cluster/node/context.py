"""What every pod worker shares: node identity, API access, recorders, settings.

Owns `NodeContext` (built once by the agent) and `KubeLookups`, the API-backed
ConfigMap/Secret/claim reader behind env and volume resolution. Imports nothing from kflow
outside `kflow.cluster.node`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kflow.cluster.node.envvars import PodFacts
from kflow.cluster.node.events import EventRecorder
from kflow.cluster.node.images import ImageMap
from kflow.cluster.node.kube import ClusterAccess, Kube, KubeError, ns_path
from kflow.cluster.node.logserver import LogRegistry
from kflow.cluster.node.process import MemoryWatcher
from kflow.cluster.node.volumes import VolumeError, decode_secret

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_env() -> dict[str, str]:
    """The clean start of every container environment (like an image's ENV).

    PATH starts with the directory of the node's own interpreter (not resolved, so
    a venv's `bin/` stays first and `python` / `python3` are this venv's).
    """
    return {
        "PATH": os.path.dirname(sys.executable) + ":" + SYSTEM_PATH,
        "HOME": os.environ.get("HOME") or "/root",
        "LANG": "C.UTF-8",
    }


def service_env(server: str) -> dict[str, str]:
    """KUBERNETES_SERVICE_HOST/PORT (+ the docker-link style KUBERNETES_PORT_*)."""
    url = urlsplit(server)
    host = url.hostname or "127.0.0.1"
    port = str(url.port or 443)
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": f"tcp://{host}:{port}",
        "KUBERNETES_PORT_443_TCP": f"tcp://{host}:{port}",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_ADDR": host,
        "KUBERNETES_PORT_443_TCP_PORT": port,
    }


class KubeLookups:
    """ConfigMaps and Secrets read from the API (None when missing), and the volumes
    bound to PersistentVolumeClaims."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    def _get(self, namespace: str, resource: str, name: str) -> Mapping[str, str] | None:
        try:
            obj = self._kube.get(ns_path(namespace, resource, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        data: dict[str, str] = dict(obj.get("data") or {})
        return data

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self._get(namespace, "configmaps", name)

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        data = self._get(namespace, "secrets", name)
        return None if data is None else decode_secret(data)

    def claim_directory(self, namespace: str, claim: str) -> Path:
        try:
            pvc = self._kube.get(ns_path(namespace, "persistentvolumeclaims", claim))
        except KubeError as exc:
            if exc.status == 404:
                raise VolumeError(f'persistentvolumeclaim "{claim}" not found') from exc
            raise
        volume = (pvc.get("spec") or {}).get("volumeName")
        if (pvc.get("status") or {}).get("phase") != "Bound" or not volume:
            raise VolumeError(f'persistentvolumeclaim "{claim}" is not bound yet')
        pv = self._kube.get(f"/api/v1/persistentvolumes/{volume}")
        return pv_directory(pv)


def pv_directory(pv: Mapping[str, Any]) -> Path:
    """The host directory of a hostPath or local PersistentVolume."""
    spec = pv.get("spec") or {}
    for kind in ("hostPath", "local"):
        path = (spec.get(kind) or {}).get("path")
        if path:
            return Path(str(path))
    name = (pv.get("metadata") or {}).get("name", "")
    raise VolumeError(
        f'persistentvolume "{name}" is neither hostPath nor local: the process node '
        "can only use a directory on this machine"
    )


@dataclass(frozen=True)
class NodeContext:
    node_name: str
    state_dir: Path
    kube: Kube
    access: ClusterAccess
    events: EventRecorder
    registry: LogRegistry
    memory: MemoryWatcher
    image_map: ImageMap
    facts: PodFacts

    @property
    def pgid_dir(self) -> Path:
        return self.state_dir / "pgids"

    def pod_dir(self, namespace: str, name: str, uid: str) -> Path:
        return self.state_dir / "pods" / f"{namespace}_{name}_{uid}"

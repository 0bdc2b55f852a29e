"""core/v1 Events about pods, as kubelet records them (source component `kubelet`).

Owns the event body (pure `event_body`) and a background sender thread so a slow or
failing API never stalls a pod worker; failures are logged and dropped. Imports
nothing from kflow outside `kflow.cluster.node`.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kflow.cluster.node.kube import Kube, KubeError, ns_path

log = logging.getLogger(__name__)


def event_body(
    pod: Mapping[str, Any],
    node: str,
    kind: str,
    reason: str,
    message: str,
    container: str | None,
    now: datetime,
) -> dict[str, Any]:
    meta = pod.get("metadata") or {}
    involved: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    if container:
        spec = pod.get("spec") or {}
        is_init = any(c.get("name") == container for c in spec.get("initContainers") or [])
        field = "initContainers" if is_init else "containers"
        involved["fieldPath"] = f"spec.{field}{{{container}}}"
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}",
            "namespace": meta.get("namespace"),
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet",
        "reportingInstance": node,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventRecorder:
    """Queue events; one daemon thread creates them."""

    def __init__(self, kube: Kube, node: str) -> None:
        self._kube = kube
        self._node = node
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=10000)
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()

    def record(
        self,
        pod: Mapping[str, Any],
        kind: str,
        reason: str,
        message: str,
        container: str | None = None,
    ) -> None:
        body = event_body(pod, self._node, kind, reason, message, container, datetime.now(UTC))
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            log.warning("event queue full; dropping %s %s", reason, message)

    def normal(
        self, pod: Mapping[str, Any], reason: str, message: str, container: str | None = None
    ) -> None:
        self.record(pod, "Normal", reason, message, container)

    def warning(
        self, pod: Mapping[str, Any], reason: str, message: str, container: str | None = None
    ) -> None:
        self.record(pod, "Warning", reason, message, container)

    def close(self, timeout: float = 2.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            try:
                self._kube.request(
                    "POST", ns_path(body["metadata"]["namespace"], "events"), body=body, timeout=10
                )
            except KubeError as exc:
                log.debug("event %s not recorded: %s", body["reason"], exc)

"""The node agent: registration, heartbeats, the pod watch, and shutdown.

Owns: registering (or re-using) the Node, refreshing its status every 30 s and its
Lease in kube-node-lease every 10 s, watching pods with `spec.nodeName=<node>`
(relisting on 410 Gone or any stream error), one `PodWorker` per pod uid, the logs
HTTPS server, and the SIGTERM/SIGINT shutdown that stops every pod process before
exiting 0. Imports nothing from kflow outside `kflow.cluster.node`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

from kflow.cluster.node.context import NodeContext
from kflow.cluster.node.envvars import PodFacts
from kflow.cluster.node.events import EventRecorder
from kflow.cluster.node.images import load_image_map
from kflow.cluster.node.kube import Kube, KubeError, api_path, pods_path, read_cluster_access
from kflow.cluster.node.logserver import LogRegistry, LogServer
from kflow.cluster.node.nodeobj import (
    LEASE_NAMESPACE,
    Machine,
    lease_body,
    node_body,
    node_status,
    probe_machine,
    stamp,
)
from kflow.cluster.node.process import MemoryWatcher
from kflow.cluster.node.status import POD_IP
from kflow.cluster.node.worker import PodWorker

log = logging.getLogger(__name__)
LEASE_EVERY = 10.0
STATUS_EVERY = 30.0
WATCH_SECONDS = 240
STOP_TIMEOUT = 8.0


@dataclass(frozen=True)
class NodeOptions:
    kubeconfig: str
    node_name: str
    state_dir: Path
    logs_port: int
    tls_cert: str
    tls_key: str
    image_map: str | None


class Relist(Exception):
    """The watch must restart from a fresh list."""


class Agent:
    def __init__(self, options: NodeOptions) -> None:
        self.options = options
        self.name = options.node_name
        self.stop_event = threading.Event()
        options.state_dir.mkdir(parents=True, exist_ok=True)
        (options.state_dir / "pgids").mkdir(exist_ok=True)
        (options.state_dir / "pods").mkdir(exist_ok=True)
        self.kube = Kube(options.kubeconfig)
        self.machine: Machine = probe_machine(options.state_dir)
        self.workers: dict[str, PodWorker] = {}
        self._workers_lock = threading.Lock()
        self.node_uid = ""
        self.version = "v0.0.0"
        self.ctx = NodeContext(
            node_name=self.name,
            state_dir=options.state_dir,
            kube=self.kube,
            access=read_cluster_access(options.kubeconfig),
            events=EventRecorder(self.kube, self.name),
            registry=LogRegistry(),
            memory=MemoryWatcher(),
            image_map=load_image_map(options.image_map, sys.executable),
            facts=PodFacts(
                pod_ip=POD_IP,
                host_ip=POD_IP,
                node_cpu=Decimal(self.machine.cpus),
                node_memory=Decimal(self.machine.memory_kib * 1024),
            ),
        )

    # -- lifecycle ----------------------------------------------------------------------
    def run(self) -> int:
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._on_signal)
        self._kill_stale_groups()
        server = LogServer(
            self.options.logs_port, self.options.tls_cert, self.options.tls_key, self.ctx.registry
        )
        server.start()
        while not self.stop_event.is_set():
            try:
                self._register()
                break
            except KubeError as exc:
                log.warning("node registration failed (will retry): %s", exc)
                self.stop_event.wait(1.0)
        threads = [
            threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True),
            threading.Thread(target=self._watch_pods, name="pod-watch", daemon=True),
        ]
        for thread in threads:
            thread.start()
        log.info("node %s ready; logs on https://127.0.0.1:%d", self.name, self.options.logs_port)
        self.stop_event.wait()
        log.info("stopping: terminating pod processes")
        with self._workers_lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.stop()
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in workers:
            worker.thread.join(max(deadline - time.monotonic(), 0.1))
        self.ctx.memory.stop()
        self.ctx.events.close(1.0)
        server.shutdown()
        log.info("node %s stopped", self.name)
        return 0

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        self.stop_event.set()

    def _kill_stale_groups(self) -> None:
        """Markers left by a previous run of this node that died without cleaning up."""
        for marker in (self.options.state_dir / "pgids").iterdir():
            if marker.name.isdigit():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(marker.name), signal.SIGKILL)
            marker.unlink(missing_ok=True)

    # -- node and lease -----------------------------------------------------------------
    def _register(self) -> None:
        version = self.kube.get("/version")
        self.version = str(version.get("gitVersion", "v0.0.0"))
        path = api_path("api", "v1", "nodes", self.name)
        try:
            node = self.kube.request(
                "POST", "/api/v1/nodes", body=node_body(self.name, self.machine)
            )
            log.info("registered node %s", self.name)
        except KubeError as exc:
            if exc.status != 409:
                raise
            node = self.kube.merge_patch(
                path, {"metadata": node_body(self.name, self.machine)["metadata"]}
            )
            log.info("re-using existing node %s", self.name)
        self.node_uid = str(node["metadata"]["uid"])
        self._post_status(node)
        self._renew_lease()

    def _post_status(self, node: dict[str, Any] | None = None) -> None:
        path = api_path("api", "v1", "nodes", self.name)
        if node is None:
            node = self.kube.get(path)
        previous = (node.get("status") or {}).get("conditions") or []
        status = node_status(
            self.machine, self.options.logs_port, self.version, previous, datetime.now(UTC)
        )
        self.kube.merge_patch(path + "/status", {"status": status})

    def _renew_lease(self) -> None:
        now = datetime.now(UTC)
        path = api_path(
            "apis", "coordination.k8s.io", "v1", "namespaces", LEASE_NAMESPACE, "leases", self.name
        )
        body = lease_body(self.name, self.node_uid, now)
        try:
            self.kube.merge_patch(
                path,
                {
                    "spec": body["spec"],
                    "metadata": {"ownerReferences": body["metadata"]["ownerReferences"]},
                },
            )
        except KubeError as exc:
            if exc.status != 404:
                raise
            collection = path.rsplit("/", 1)[0]
            self.kube.request("POST", collection, body=body)
        log.debug("lease renewed at %s", stamp(now, micro=True))

    def _heartbeat(self) -> None:
        last_status = time.monotonic()
        while not self.stop_event.wait(LEASE_EVERY):
            try:
                self._renew_lease()
                if time.monotonic() - last_status >= STATUS_EVERY:
                    self._post_status()
                    last_status = time.monotonic()
            except KubeError as exc:
                if exc.status == 404:  # the Node was deleted: register again
                    with contextlib.suppress(KubeError):
                        self._register()
                log.warning("heartbeat failed: %s", exc)

    # -- pods -----------------------------------------------------------------------------
    def _watch_pods(self) -> None:
        selector = f"spec.nodeName={self.name}"
        first = True
        while not self.stop_event.is_set():
            try:
                listing = self.kube.get(pods_path(), fieldSelector=selector)
                version = str(listing["metadata"].get("resourceVersion", ""))
                self._sync(listing.get("items") or [], collect_garbage=first)
                first = False
                while not self.stop_event.is_set():
                    query = {
                        "fieldSelector": selector,
                        "resourceVersion": version,
                        "timeoutSeconds": WATCH_SECONDS,
                    }
                    for event in self.kube.watch(pods_path(), query, WATCH_SECONDS + 30):
                        version = self._on_event(event) or version
            except Relist:
                log.info("pod watch expired; relisting")
            except Exception as exc:
                log.warning("pod watch failed (relisting in 1 s): %s", exc)
                self.stop_event.wait(1.0)

    def _on_event(self, event: dict[str, Any]) -> str | None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            raise Relist(str(obj.get("message", "")))
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "DELETED":
            self._gone(obj)
        elif kind in ("ADDED", "MODIFIED"):
            self._upsert(obj)
        return str(version) if version else None

    def _sync(self, pods: list[dict[str, Any]], collect_garbage: bool) -> None:
        seen = set()
        for pod in pods:
            seen.add(str(pod["metadata"]["uid"]))
            self._upsert(pod)
        with self._workers_lock:
            known = list(self.workers)
        for uid in known:
            if uid not in seen:
                self._gone({"metadata": {"uid": uid}})
        if collect_garbage:
            for pod_dir in (self.options.state_dir / "pods").iterdir():
                if pod_dir.name.rsplit("_", 1)[-1] not in seen:
                    shutil.rmtree(pod_dir, ignore_errors=True)

    def _upsert(self, pod: dict[str, Any]) -> None:
        uid = str(pod["metadata"]["uid"])
        with self._workers_lock:
            if self.stop_event.is_set():
                return
            worker = self.workers.get(uid)
            if worker is None:
                worker = PodWorker(self.ctx, pod)
                self.workers[uid] = worker
                worker.start()
                return
        worker.update(pod)

    def _gone(self, pod: dict[str, Any]) -> None:
        with self._workers_lock:
            worker = self.workers.pop(str(pod["metadata"]["uid"]), None)
        if worker is not None:
            worker.gone()

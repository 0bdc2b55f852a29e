"""What runs in an embedded cluster, and with which command lines (pure).

Owns: the cluster folder's layout, the set of ports a cluster needs, the
argv of each component (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, the SeaweedFS S3 server, the process node) and the
kubeconfig text. No process is started here; `supervisor` does that.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from kflow.cluster import s3
from kflow.cluster.binaries import Binaries
from kflow.cluster.pki import Pki

NODE_NAME = "kflow-node"
SERVICE_CIDR = "10.0.0.0/24"
# Start order; `down` stops them in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "s3", "node")
CONTROL_PORTS = ("etcd_client", "etcd_peer", "apiserver", "controller_manager", "scheduler", "node")
PORT_NAMES = CONTROL_PORTS + tuple(f"s3_{p}" for p in s3.PORT_NAMES)


@dataclass(frozen=True)
class Layout:
    """Every path of one cluster folder."""

    dir: Path

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    @property
    def lock(self) -> Path:
        return self.dir / ".lock"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def pki(self) -> Pki:
        return Pki(self.dir / "pki")

    @property
    def etcd_data(self) -> Path:
        return self.dir / "etcd"

    @property
    def s3_data(self) -> Path:
        return self.dir / "s3"

    @property
    def s3_credentials(self) -> Path:
        return self.dir / "s3-credentials.json"

    @property
    def node_state(self) -> Path:
        return self.dir / "node"

    @property
    def node_pgids(self) -> Path:
        return self.node_state / "pgids"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"


def apiserver_url(ports: Mapping[str, int]) -> str:
    return f"https://127.0.0.1:{ports['apiserver']}"


def kubeconfig_text(pki: Pki, server: str, *, cluster: str = "kflow-local") -> str:
    """A self-contained admin kubeconfig (certificates inline)."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {
            "server": server, "certificate-authority-data": b64(pki.ca_crt)}}],
        "users": [{"name": "kflow-admin", "user": {
            "client-certificate-data": b64(pki.crt("admin")),
            "client-key-data": b64(pki.key("admin"))}}],
        "contexts": [{"name": cluster, "context": {
            "cluster": cluster, "user": "kflow-admin", "namespace": "default"}}],
        "current-context": cluster,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def etcd_argv(binaries: Binaries, layout: Layout, ports: Mapping[str, int]) -> list[str]:
    client = f"http://127.0.0.1:{ports['etcd_client']}"
    peer = f"http://127.0.0.1:{ports['etcd_peer']}"
    return [
        binaries.etcd,
        "--name=kflow",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=kflow={peer}",
        "--initial-cluster-state=new",
        # A throwaway single-member cluster: durability is not worth an fsync per write.
        "--unsafe-no-fsync=true",
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=5m",
        "--quota-backend-bytes=4294967296",
        "--log-level=warn",
    ]


def apiserver_argv(binaries: Binaries, layout: Layout, ports: Mapping[str, int]) -> list[str]:
    pki = layout.pki
    return [
        binaries.kube_apiserver,
        f"--etcd-servers=http://127.0.0.1:{ports['etcd_client']}",
        "--bind-address=127.0.0.1",
        # Mandatory without a default route: otherwise the apiserver looks for a host interface.
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports['apiserver']}",
        f"--tls-cert-file={pki.crt('apiserver')}",
        f"--tls-private-key-file={pki.key('apiserver')}",
        f"--cert-dir={pki.dir}",
        f"--client-ca-file={pki.ca_crt}",
        f"--service-account-issuer={apiserver_url(ports)}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        # A loopback address can't be written into the `kubernetes` EndpointSlice.
        "--endpoint-reconciler-type=none",
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={pki.crt('admin')}",
        f"--kubelet-client-key={pki.key('admin')}",
        "--v=1",
    ]


def _component_common(layout: Layout, port: int) -> list[str]:
    kubeconfig = str(layout.kubeconfig)
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--leader-elect=false",
        "--v=1",
    ]


def controller_manager_argv(
    binaries: Binaries, layout: Layout, ports: Mapping[str, int]
) -> list[str]:
    pki = layout.pki
    return [
        binaries.kube_controller_manager,
        *_component_common(layout, ports["controller_manager"]),
        # Every default controller, less the autoscaler (it only logs missing metrics).
        "--controllers=*,-horizontal-pod-autoscaler-controller",
        f"--root-ca-file={pki.ca_crt}",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--cluster-signing-cert-file={pki.ca_crt}",
        f"--cluster-signing-key-file={pki.ca_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
    ]


def scheduler_argv(binaries: Binaries, layout: Layout, ports: Mapping[str, int]) -> list[str]:
    return [binaries.kube_scheduler, *_component_common(layout, ports["scheduler"])]


def s3_ports(ports: Mapping[str, int]) -> dict[str, int]:
    return {name: ports[f"s3_{name}"] for name in s3.PORT_NAMES}


def s3_argv(layout: Layout, ports: Mapping[str, int], config: Path) -> list[str]:
    return s3.server_argv(s3.find_weed(), layout.s3_data, config, s3_ports(ports))


def node_argv(layout: Layout, ports: Mapping[str, int], image_map: str | None) -> list[str]:
    pki = layout.pki
    argv = [
        sys.executable, "-m", "kflow.cluster.node",
        f"--kubeconfig={layout.kubeconfig}",
        f"--node-name={NODE_NAME}",
        f"--state-dir={layout.node_state}",
        f"--logs-port={ports['node']}",
        f"--tls-cert={pki.crt('node')}",
        f"--tls-key={pki.key('node')}",
    ]
    if image_map:
        argv.append(f"--image-map={image_map}")
    return argv

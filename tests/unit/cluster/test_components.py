"""Command lines and kubeconfig of the embedded cluster (pure)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from kflow.cluster import components, pki
from kflow.cluster.binaries import Binaries
from kflow.cluster.components import Layout

BINS = Binaries(etcd="/b/etcd", kube_apiserver="/b/kube-apiserver",
                kube_controller_manager="/b/kcm", kube_scheduler="/b/ks",
                kubectl="/b/kubectl", k8s_version="v1.36.3", etcd_version="v3.6.16")
PORTS = {name: 20000 + i for i, name in enumerate(components.PORT_NAMES)}


def flags(argv: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in argv[1:] if a.startswith("--") and "=" in a)


def test_every_port_is_named_once() -> None:
    assert len(set(components.PORT_NAMES)) == len(components.PORT_NAMES)
    assert "s3_s3" in components.PORT_NAMES


def test_etcd_listens_on_loopback_ports_only(tmp_path: Path) -> None:
    f = flags(components.etcd_argv(BINS, Layout(tmp_path), PORTS))
    assert f["listen-client-urls"] == f"http://127.0.0.1:{PORTS['etcd_client']}"
    assert f["listen-peer-urls"] == f"http://127.0.0.1:{PORTS['etcd_peer']}"
    assert f["data-dir"] == str(tmp_path / "etcd")


def test_apiserver_flags_fit_a_sandbox_without_default_route(tmp_path: Path) -> None:
    argv = components.apiserver_argv(BINS, Layout(tmp_path), PORTS)
    f = flags(argv)
    assert argv[0] == "/b/kube-apiserver"
    assert f["advertise-address"] == "127.0.0.1"
    assert f["bind-address"] == "127.0.0.1"
    assert f["endpoint-reconciler-type"] == "none"
    assert f["etcd-servers"] == f"http://127.0.0.1:{PORTS['etcd_client']}"
    assert f["secure-port"] == str(PORTS["apiserver"])
    assert f["service-account-issuer"] == f"https://127.0.0.1:{PORTS['apiserver']}"


def test_controller_manager_and_scheduler_use_their_own_ports(tmp_path: Path) -> None:
    kcm = flags(components.controller_manager_argv(BINS, Layout(tmp_path), PORTS))
    sched = flags(components.scheduler_argv(BINS, Layout(tmp_path), PORTS))
    assert kcm["secure-port"] == str(PORTS["controller_manager"])
    assert sched["secure-port"] == str(PORTS["scheduler"])
    assert kcm["kubeconfig"] == sched["kubeconfig"] == str(tmp_path / "kubeconfig")
    assert kcm["leader-elect"] == sched["leader-elect"] == "false"


def test_node_argv_is_the_documented_command_line(tmp_path: Path) -> None:
    argv = components.node_argv(Layout(tmp_path), PORTS, "/maps/images.yaml")
    assert argv[1:3] == ["-m", "kflow.cluster.node"]
    f = flags(argv)
    assert f["node-name"] == components.NODE_NAME
    assert f["logs-port"] == str(PORTS["node"])
    assert f["image-map"] == "/maps/images.yaml"
    assert "image-map" not in flags(components.node_argv(Layout(tmp_path), PORTS, None))


def test_kubeconfig_is_self_contained(tmp_path: Path) -> None:
    keys = pki.ensure(tmp_path / "pki")
    doc = yaml.safe_load(components.kubeconfig_text(keys, "https://127.0.0.1:6443"))
    cluster = doc["clusters"][0]["cluster"]
    user = doc["users"][0]["user"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == keys.ca_crt.read_bytes()
    assert base64.b64decode(user["client-key-data"]) == keys.key("admin").read_bytes()
    assert doc["current-context"] == doc["contexts"][0]["name"]

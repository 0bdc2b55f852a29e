"""Small pure pieces: quantities, /proc parsing, node objects, volumes, kubeconfig, events."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kflow.cluster.node.context import pv_directory
from kflow.cluster.node.envvars import PodFacts
from kflow.cluster.node.events import event_body
from kflow.cluster.node.kube import ClusterAccess
from kflow.cluster.node.nodeobj import Machine, lease_body, mem_total_kib, node_status, os_image
from kflow.cluster.node.podkubeconfig import build_kubeconfig, wants_token
from kflow.cluster.node.process import parse_stat, session_rss, start_process
from kflow.cluster.node.quantity import ceil_div, parse_quantity
from kflow.cluster.node.volumes import (
    VolumeError,
    env_name,
    host_paths,
    mount_env,
    mount_table,
    prepare_volumes,
    render_files,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
FACTS = PodFacts("127.0.0.1", "127.0.0.1", Decimal(2), Decimal(2**30))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("64Mi", 64 * 2**20),
        ("1Gi", 2**30),
        ("500m", Decimal("0.5")),
        ("2", 2),
        ("1.5G", 1_500_000_000),
        ("1e3", 1000),
        ("100Ti", 100 * 2**40),
        ("128k", 128_000),
    ],
)
def test_parse_quantity(text: str, value: int | Decimal) -> None:
    assert parse_quantity(text) == value


def test_bad_quantity_and_ceil() -> None:
    with pytest.raises(ValueError):
        parse_quantity("lots")
    assert ceil_div(Decimal("1.5"), Decimal(1)) == 2
    assert ceil_div(Decimal(64 * 2**20), Decimal(2**20)) == 64


def test_parse_stat_with_spaces_in_comm() -> None:
    fields = " ".join(str(i) for i in range(3, 40))  # field n holds n
    raw = f"123 (a b) c) {fields}".encode()
    raw = raw.replace(b") 3 ", b") S ", 1)
    assert parse_stat(raw) == (6, 24)


def test_session_rss_on_a_fake_proc(tmp_path: Path) -> None:
    page = os.sysconf("SC_PAGE_SIZE")

    def proc(pid: int, session: int, rss: int) -> None:
        (tmp_path / str(pid)).mkdir()
        rest = ["S", "1", "1", str(session)] + ["0"] * 17 + [str(rss)] + ["0"] * 10
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (py thon) " + " ".join(rest))

    proc(10, 10, 100)
    proc(11, 10, 50)
    proc(12, 99, 7)
    (tmp_path / "self").mkdir()
    assert session_rss({10, 42}, tmp_path) == {10: 150 * page, 42: 0}


def test_a_container_runs_at_its_cpu_weight_in_its_own_session(tmp_path: Path) -> None:
    """The nice value is set on the container's process group and, since the kernel
    groups sessions (autogroup) and a nice counts only inside its group, on its
    session's group too: otherwise 16 step pods would each weigh as much as the
    apiserver."""
    process = start_process([sys.executable, "-c", "import time; time.sleep(30)"], env={},
                            cwd=str(tmp_path), log_path=tmp_path / "log", pgid_dir=tmp_path,
                            nice=10)
    try:
        assert os.getsid(process.pid) == process.pid
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == 10
        group = Path(f"/proc/{process.pid}/autogroup")
        if Path("/proc/self/autogroup").exists():
            assert group.read_text().split()[-1] == "10"
    finally:
        assert process.stop(grace=0) != 0


def test_node_objects() -> None:
    assert mem_total_kib("MemTotal:       24684084 kB\nMemFree: 1 kB\n") == 24684084
    assert os_image('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n') == (
        "Debian GNU/Linux 12 (bookworm)"
    )
    machine = Machine(4, 1024, 10**9, "amd64", "6.1", "Debian", "mid", "bid")
    status = node_status(machine, 10250, "v1.36.3", [], NOW)
    assert status["capacity"] == {
        "cpu": "4",
        "memory": "1024Ki",
        "pods": "110",
        "ephemeral-storage": str(10**9),
    }
    assert status["allocatable"] == status["capacity"]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert status["nodeInfo"]["kubeletVersion"] == "v1.36.3"
    assert status["nodeInfo"]["containerRuntimeVersion"] == "process://kflow"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "KubeletReady"
    assert conditions["PIDPressure"]["status"] == "False"
    later = datetime(2026, 1, 2, 3, 5, 0, tzinfo=UTC)
    again = node_status(machine, 10250, "v1.36.3", status["conditions"], later)
    ready = next(c for c in again["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    assert ready["lastHeartbeatTime"] == "2026-01-02T03:05:00Z"
    lease = lease_body("n", "uid-1", NOW)
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["spec"]["renewTime"] == "2026-01-02T03:04:05.000000Z"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


class Lookups:
    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return {"ca.crt": "CA", "a": "1", "b": "2"} if name == "cm" else None

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return {"pw": "secret"} if name == "s" else None

    def __init__(self, claims: Mapping[str, Path] | None = None) -> None:
        self.claims = dict(claims or {})

    def claim_directory(self, namespace: str, claim: str) -> Path:
        if claim not in self.claims:
            raise VolumeError(f'persistentvolumeclaim "{claim}" is not bound yet')
        return self.claims[claim]


POD: dict[str, Any] = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {}}


def test_render_volume_files() -> None:
    lookups = Lookups()
    assert render_files({"emptyDir": {}}, POD, lookups, FACTS, None) is None
    assert render_files(
        {"configMap": {"name": "cm", "items": [{"key": "a", "path": "x/a"}]}},
        POD,
        lookups,
        FACTS,
        None,
    ) == {"x/a": b"1"}
    assert render_files({"secret": {"secretName": "s"}}, POD, lookups, FACTS, None) == {
        "pw": b"secret"
    }
    assert (
        render_files({"secret": {"secretName": "no", "optional": True}}, POD, lookups, FACTS, None)
        == {}
    )
    with pytest.raises(VolumeError, match='configmap "no" not found'):
        render_files({"configMap": {"name": "no"}}, POD, lookups, FACTS, None)
    projected = {
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token"}},
                {"configMap": {"name": "cm", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ]
        }
    }
    assert render_files(projected, POD, lookups, FACTS, "tok") == {
        "token": b"tok",
        "ca.crt": b"CA",
        "namespace": b"ns",
    }


def test_prepare_volumes_and_mount_env(tmp_path: Path) -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "volumes": [
                {"name": "scratch-space", "emptyDir": {}},
                {"name": "conf", "configMap": {"name": "cm"}},
                {"name": "host", "hostPath": {"path": "/etc"}},
                {"name": "claim", "persistentVolumeClaim": {"claimName": "c"}},
            ]
        },
    }
    with pytest.raises(VolumeError, match='volume "claim" : persistentvolumeclaim "c" is '
                       "not bound yet"):
        prepare_volumes(pod, tmp_path, Lookups(), FACTS, None)
    dirs = prepare_volumes(pod, tmp_path, Lookups({"c": tmp_path / "pv"}), FACTS, None)
    assert dirs["scratch-space"].is_dir()
    assert (dirs["conf"] / "a").read_text() == "1"
    assert dirs["host"] == Path("/etc")
    assert dirs["claim"] == tmp_path / "pv" and dirs["claim"].is_dir()   # created
    container = {
        "volumeMounts": [
            {"name": "scratch-space", "mountPath": "/data"},
            {"name": "conf", "mountPath": "/etc/conf", "subPath": "a"},
            {"name": "gone", "mountPath": "/gone"},
        ]
    }
    assert mount_env(container, dirs) == {
        "KFLOW_VOLUME_SCRATCH_SPACE": str(dirs["scratch-space"]),
        "KFLOW_VOLUME_CONF": str(dirs["conf"] / "a"),
    }
    assert env_name("kube-api-access-x1.y") == "KFLOW_VOLUME_KUBE_API_ACCESS_X1_Y"


def test_mount_paths_in_argv_and_env_become_host_directories() -> None:
    dirs = {"data": Path("/h/data"), "deep": Path("/h/deep"), "root": Path("/h/root"),
            "cfg": Path("/h/cfg")}
    container = {"volumeMounts": [
        {"name": "data", "mountPath": "/data/"},
        {"name": "deep", "mountPath": "/data/deep"},
        {"name": "root", "mountPath": "/"},                       # never rewritten
        {"name": "cfg", "mountPath": "/etc/app", "subPath": "one"},
        {"name": "missing", "mountPath": "/nowhere"},
    ]}
    table = mount_table(container, dirs)
    assert table == [("/data/deep", "/h/deep"), ("/etc/app", "/h/cfg/one"),
                     ("/data", "/h/data")]
    cases = {
        "-dir=/data": "-dir=/h/data",
        "/data": "/h/data",
        "/data/x/y": "/h/data/x/y",
        "/data/deep/z": "/h/deep/z",                # the longest mount wins
        "/database": "/database",                   # not a whole path prefix
        "/srv/data": "/srv/data",                   # not at the start of a path
        "a:/data,/etc/app/x": "a:/h/data,/h/cfg/one/x",
        "--config='/etc/app'": "--config='/h/cfg/one'",
        "plain words": "plain words",
    }
    for text, expected in cases.items():
        assert host_paths(text, table) == expected, text
    assert host_paths("/data", []) == "/data"


def test_a_claim_bound_to_a_directory_volume() -> None:
    assert pv_directory({"spec": {"hostPath": {"path": "/srv/pv1"}}}) == Path("/srv/pv1")
    assert pv_directory({"spec": {"local": {"path": "/mnt/disk"}}}) == Path("/mnt/disk")
    with pytest.raises(VolumeError, match='persistentvolume "nfs-1" is neither hostPath nor '
                       "local"):
        pv_directory({"metadata": {"name": "nfs-1"}, "spec": {"nfs": {"path": "/x"}}})


def test_escaping_volume_paths_are_refused(tmp_path: Path) -> None:
    pod = {
        "metadata": {"namespace": "ns"},
        "spec": {
            "volumes": [
                {
                    "name": "v",
                    "configMap": {"name": "cm", "items": [{"key": "a", "path": "../../evil"}]},
                }
            ]
        },
    }
    with pytest.raises(VolumeError, match="escapes"):
        prepare_volumes(pod, tmp_path, Lookups(), FACTS, None)


def test_pod_kubeconfig_and_opt_out(tmp_path: Path) -> None:
    access = ClusterAccess("https://127.0.0.1:6443", "Q0E=")
    config = build_kubeconfig(access, tmp_path / "token", "ns")
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert config["users"][0]["user"] == {"tokenFile": str(tmp_path / "token")}
    assert config["contexts"][0]["context"]["namespace"] == "ns"
    assert wants_token({"spec": {}}, None)
    assert not wants_token({"spec": {"automountServiceAccountToken": False}}, None)
    assert not wants_token({"spec": {}}, {"automountServiceAccountToken": False})
    assert wants_token(
        {"spec": {"automountServiceAccountToken": True}}, {"automountServiceAccountToken": False}
    )


def test_event_body() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"initContainers": [{"name": "setup"}], "containers": [{"name": "main"}]},
    }
    body = event_body(pod, "node-1", "Warning", "BackOff", "msg", "setup", NOW)
    assert body["involvedObject"]["fieldPath"] == "spec.initContainers{setup}"
    assert body["source"] == {"component": "kubelet", "host": "node-1"}
    assert body["metadata"]["namespace"] == "ns" and body["metadata"]["name"].startswith("p.")
    assert body["firstTimestamp"] == "2026-01-02T03:04:05Z"
    main = event_body(pod, "node-1", "Normal", "Started", "m", "main", NOW)
    assert main["involvedObject"]["fieldPath"] == "spec.containers{main}"

"""The Node and Lease objects this node publishes.

Owns the machine facts (cpu count, MemTotal, disk, kernel, OS image, ids) and the
pure builders for the Node's metadata, its `status` (capacity = allocatable, pods
110, addresses, kubelet endpoint, nodeInfo, Ready=True + pressure conditions False,
keeping `lastTransitionTime` while a condition holds) and the node Lease body.
Imports nothing from kflow outside `kflow.cluster.node`.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RUNTIME_VERSION = "process://kflow"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
MAX_PODS = 110
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_kib: int
    disk_bytes: int
    arch: str
    kernel: str
    os_image: str
    machine_id: str
    boot_id: str


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def mem_total_kib(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    raise ValueError("MemTotal not found in /proc/meminfo")


def os_image(os_release: str) -> str:
    for line in os_release.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def probe_machine(state_dir: Path) -> Machine:
    return Machine(
        cpus=os.cpu_count() or 1,
        memory_kib=mem_total_kib(_read("/proc/meminfo")),
        disk_bytes=shutil.disk_usage(state_dir).total,
        arch=_ARCH.get(platform.machine(), platform.machine()),
        kernel=platform.release(),
        os_image=os_image(_read("/etc/os-release")),
        machine_id=_read("/etc/machine-id"),
        boot_id=_read("/proc/sys/kernel/random/boot_id"),
    )


def stamp(moment: datetime, micro: bool = False) -> str:
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    return moment.astimezone(UTC).strftime(fmt)


def labels(name: str, machine: Machine) -> dict[str, str]:
    return {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": machine.arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": machine.arch,
    }


def node_body(name: str, machine: Machine) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels(name, machine)},
        "spec": {},
    }


_CONDITIONS = (
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)


def node_status(
    machine: Machine,
    port: int,
    version: str,
    previous: Sequence[Mapping[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    resources = {
        "cpu": str(machine.cpus),
        "memory": f"{machine.memory_kib}Ki",
        "pods": str(MAX_PODS),
        "ephemeral-storage": str(machine.disk_bytes),
    }
    old = {str(c.get("type")): c for c in previous}
    conditions = []
    for kind, status, reason, message in _CONDITIONS:
        before = old.get(kind)
        same = before is not None and before.get("status") == status
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": stamp(now),
                "lastTransitionTime": before.get("lastTransitionTime")
                if same and before is not None
                else stamp(now),
            }
        )
    return {
        "capacity": resources,
        "allocatable": dict(resources),
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": socket.gethostname() or "localhost"},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": machine.machine_id,
            "systemUUID": machine.machine_id,
            "bootID": machine.boot_id,
            "kernelVersion": machine.kernel,
            "osImage": machine.os_image,
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": version,
            "operatingSystem": "linux",
            "architecture": machine.arch,
        },
    }


def lease_body(name: str, node_uid: str, now: datetime) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}
            ],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": stamp(now, micro=True),
        },
    }

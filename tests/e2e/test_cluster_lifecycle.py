"""`kflow cluster up | down | status` on a second embedded cluster beside the session's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kflow.cluster import processes, supervisor
from kflow.cluster.components import COMPONENTS, Layout
from tests.e2e.conftest import TestCluster, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.environ.get("KFLOW_TEST_CLUSTER") == "kind",
                       reason="tests kflow's own embedded cluster, not a kind cluster"),
]


def kflow(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kflow.cli", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def recorded_pids(directory: Path) -> list[int]:
    state = json.loads((directory / "state.json").read_text())
    return [p["pid"] for p in state["processes"].values()]


def test_up_is_idempotent_runs_beside_another_cluster_and_down_leaves_nothing(
        cluster: TestCluster, tmp_path: Path) -> None:
    directory = tmp_path / "second"
    first = kflow("cluster", "up", "--dir", str(directory))
    assert first.returncode == 0, first.stderr
    assert f"export KUBECONFIG={directory / 'kubeconfig'}" in first.stdout
    assert "S3 endpoint: http://127.0.0.1:" in first.stdout
    assert "s3-credentials.json" in first.stdout
    pids = recorded_pids(directory)
    assert len(pids) == len(COMPONENTS)

    # Side by side: the session's cluster still answers, on other ports.
    assert cluster.embedded_dir is not None
    ours = json.loads((directory / "state.json").read_text())["ports"]
    theirs = json.loads((cluster.embedded_dir / "state.json").read_text())["ports"]
    assert not set(ours.values()) & set(theirs.values())
    assert cluster.core.read_node("kflow-node").metadata.name == "kflow-node"

    second = kflow("cluster", "up", "--dir", str(directory))
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stdout
    assert recorded_pids(directory) == pids

    status = kflow("cluster", "status", "--dir", str(directory))
    assert status.returncode == 0, status.stdout + status.stderr
    for name in COMPONENTS:
        assert any(line.startswith(name) and line.endswith("healthy")
                   for line in status.stdout.splitlines()), status.stdout

    # A pod left running is stopped by `down` too.
    env = {**os.environ, "KUBECONFIG": str(directory / "kubeconfig")}
    kubectl = [sys.executable, "-m", "kflow.cli", "kubectl", "--dir", str(directory), "--"]
    run = subprocess.run([*kubectl, "run", "sleeper", "--image=python:3.11-slim",
                          "--restart=Never", "--command", "--", "python", "-c",
                          "import time; time.sleep(600)"],
                         capture_output=True, text=True, env=env, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    pgids = Layout(directory).node_pgids
    wait_for("the sleeper pod's process", lambda: list(pgids.iterdir()), timeout=60)
    pod_groups = [int(p.name) for p in pgids.iterdir()]

    down = kflow("cluster", "down", "--dir", str(directory))
    assert down.returncode == 0, down.stderr
    for pid in pids:
        assert not processes.pid_running(pid), f"pid {pid} survived down"
    for pgid in pod_groups:
        assert not processes._group_alive(pgid), f"pod process group {pgid} survived down"
    assert not (directory / "state.json").exists()
    after = kflow("cluster", "status", "--dir", str(directory))
    assert after.returncode == 1
    assert "not started" in after.stdout


def test_a_component_that_fails_names_itself_its_log_and_its_tail(tmp_path: Path) -> None:
    directory = tmp_path / "broken"
    directory.mkdir()
    (directory / "etcd").write_text("a file where etcd wants its data folder\n")
    with pytest.raises(supervisor.ComponentError) as failure:
        supervisor.up(directory)
    message = str(failure.value)
    assert failure.value.component == "etcd"
    assert message.startswith("etcd failed to start")
    assert str(Layout(directory).log("etcd")) in message
    assert "--- last lines of" in message
    # Nothing is left half-running.
    assert not (directory / "state.json").exists()
    assert supervisor.status(directory)[0] is False


def test_down_finds_the_processes_of_a_folder_whose_records_were_lost(tmp_path: Path) -> None:
    directory = tmp_path / "lost"
    supervisor.up(directory)
    pids = recorded_pids(directory)
    (directory / "state.json").unlink()  # as if `up` had crashed before writing it
    assert supervisor.down(directory) == []
    for pid in pids:
        assert not processes.pid_running(pid), f"pid {pid} survived down"
    assert processes.find_components(directory, supervisor.COMPONENT_MARKERS) == []

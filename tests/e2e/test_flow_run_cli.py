"""`python flow.py run | trigger` against a real cluster, object store and operator.

The flow file runs as a user runs it (a subprocess whose stdout is not a
terminal, so progress comes as plain lines); the operator is `test_operator`'s
fixture, one process per test in the test's namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_operator as base
from tests.e2e.conftest import TestCluster
from tests.e2e.crds_helper import install_crds

pytestmark = pytest.mark.e2e

FLOWS = Path(__file__).resolve().parent / "flows"
operator = base.operator     # the fixture: one operator process per test


def flow_cli(env: dict[str, str], flow: str, *args: str,
             timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`python tests/e2e/flows/<flow> <args>` (check=False)."""
    return subprocess.run([sys.executable, str(FLOWS / flow), *args],
                          env={**env, "KFLOW_USER": "alice"}, capture_output=True, text=True,
                          timeout=timeout, check=False)


def runs_of(cluster: TestCluster, namespace: str) -> list[dict[str, Any]]:
    done = cluster.kubectl("get", "fr", "-n", namespace, "-o", "json")
    assert done.returncode == 0, done.stderr
    items: list[dict[str, Any]] = json.loads(done.stdout)["items"]
    return items


def test_run_deploys_follows_a_foreach_and_exits_0_on_success(
        cluster: TestCluster, namespace: str, operator: base.Operator) -> None:
    done = flow_cli(operator.env, "fanout_flow.py", "run", "--width", "5", "--tag", "e2e")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    out = done.stdout
    assert f"flow.kflow.dev/fanout-flow in namespace {namespace} created" in out
    [run] = runs_of(cluster, namespace)
    name = run["metadata"]["name"]
    assert name.startswith("fanout-flow-")
    assert f"flowrun.kflow.dev/{name} in namespace {namespace} created" in out
    lines = out.splitlines()
    for step, tasks in (("start", "1/1"), ("body", "5/5"), ("gather", "1/1"), ("end", "1/1")):
        assert any(line.split() == [step, "Succeeded", tasks] for line in lines), out
    assert len(lines) == len(set(lines)), "a line printed twice: " + out
    assert f"FlowRun {name} Succeeded in " in out
    assert f"kubectl get fr {name} -n {namespace}" in out
    # What was asked for is what the FlowRun holds.
    spec, meta = run["spec"], run["metadata"]
    assert spec == {"flowRef": {"name": "fanout-flow"}, "parameters": {"width": "5"},
                    "tags": ["e2e"]}
    assert meta["annotations"]["kflow.dev/user"] == "alice"

    # Running unchanged code again deploys nothing new and starts a second run.
    again = flow_cli(operator.env, "fanout_flow.py", "run", "--width", "2", "--detach")
    assert again.returncode == 0, again.stderr
    assert "already in the object store" in again.stdout and "unchanged" in again.stdout


def test_run_of_a_failing_flow_exits_1_and_names_the_failed_step(
        cluster: TestCluster, namespace: str, operator: base.Operator) -> None:
    done = flow_cli(operator.env, "marker_flow.py", "run", "--name", "marker-run-1")
    assert done.returncode == 1, f"{done.stdout}\n{done.stderr}"
    out = done.stdout
    assert any(line.split()[:3] == ["check", "Failed", "0/1"] for line in out.splitlines()), out
    assert "FlowRun marker-run-1 Failed after" in out
    assert "step check" in out and "marker file" in out
    assert "python marker_flow.py logs marker-run-1/check" in out


def test_run_detach_prints_the_name_and_the_run_exists(
        cluster: TestCluster, namespace: str, operator: base.Operator) -> None:
    done = flow_cli(operator.env, "fanout_flow.py", "run", "--detach", "--width", "3",
                    "--max-parallelism", "2")
    assert done.returncode == 0, done.stderr
    [run] = runs_of(cluster, namespace)
    name = run["metadata"]["name"]
    assert f"flowrun.kflow.dev/{name} in namespace {namespace} created" in done.stdout
    assert "Succeeded" not in done.stdout  # not followed
    assert run["spec"]["maxParallelism"] == 2

    # trigger runs the deployed flow without deploying it again.
    triggered = flow_cli(operator.env, "fanout_flow.py", "trigger", "--width", "2")
    assert triggered.returncode == 0, f"{triggered.stdout}\n{triggered.stderr}"
    assert "code package" not in triggered.stdout
    assert " Succeeded in " in triggered.stdout


def test_trigger_before_deploy_says_to_deploy_and_creates_nothing(
        cluster: TestCluster, namespace: str, s3_credentials: Path) -> None:
    install_crds(cluster)
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "KFLOW_NAMESPACE": namespace,
           "KFLOW_S3_CREDENTIALS": str(s3_credentials), "KFLOW_CONFIG": ""}
    done = flow_cli(env, "fanout_flow.py", "trigger")
    assert done.returncode == 1
    assert (f"error: flow fanout-flow is not deployed in namespace {namespace}: deploy it "
            "first with `python fanout_flow.py deploy`") in done.stderr
    assert runs_of(cluster, namespace) == []


def test_run_without_a_reachable_cluster_says_so_in_one_line(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": "https://127.0.0.1:9"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KFLOW_CONFIG": ""}
    done = flow_cli(env, "fanout_flow.py", "trigger", timeout=60)
    assert done.returncode == 1
    assert "can't reach the API server" in done.stderr
    assert "Traceback" not in done.stderr

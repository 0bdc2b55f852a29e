"""`kubectl apply -f flowrun.yaml` runs a flow end to end: the operator on a real cluster.

Each test gets its own namespace with the step pods' prerequisites (the `kflow-step`
ServiceAccount and the `kflow-s3` Secret, made here as docs/operator.md says), and its
own `python -m kflow_operator --namespace <ns>` subprocess (log in the test's tmp dir,
printed on failure, stopped at teardown). Flows are deployed with `python <flow> deploy`
as a user would; runs are applied with kubectl; artifacts are read back from the real
S3 server with `kflow.store`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from kflow.cluster import s3
from kflow.store import store_from_env
from kflow.store.layout import TaskKey
from kflow_operator import naming
from tests.e2e.conftest import TestCluster, wait_for
from tests.e2e.crds_helper import install_crds

pytestmark = pytest.mark.e2e

FLOWS = Path(__file__).resolve().parents[2] / "examples" / "flows"
GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "golden" / "manifests"
RUN_TIMEOUT = 120.0


@dataclass
class Operator:
    """A running operator process and the environment the test needs around it."""

    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]          # the flow CLI's environment (deploy)
    metrics_url: str = ""        # the operator's /metrics

    def scrape(self) -> dict[str, float]:
        """The operator's metrics: sample (name with labels) → value."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as answer:
            text = answer.read().decode()
        samples = (line.rsplit(" ", 1) for line in text.splitlines()
                   if line and not line.startswith("#"))
        return {name: float(value) for name, value in samples}

    def log_tail(self, lines: int = 80) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _create_prerequisites(cluster: TestCluster, namespace: str, credentials: Path) -> None:
    """The step pods' ServiceAccount (no RBAC) and S3 Secret, as docs/operator.md says."""
    cluster.core.create_namespaced_service_account(namespace, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="kflow-step"), automount_service_account_token=False))
    creds = s3.read_credentials_file(credentials)
    cluster.core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="kflow-s3"), string_data={
            "KFLOW_S3_ENDPOINT": creds.endpoint, "KFLOW_S3_ACCESS_KEY": creds.access_key,
            "KFLOW_S3_SECRET_KEY": creds.secret_key, "KFLOW_S3_BUCKET": creds.bucket,
            "KFLOW_S3_REGION": creds.region}))


@pytest.fixture
def operator(cluster: TestCluster, namespace: str, s3_credentials: Path,
             tmp_path: Path) -> Iterator[Operator]:
    install_crds(cluster)
    _create_prerequisites(cluster, namespace, s3_credentials)
    liveness = f"http://127.0.0.1:{_free_port()}/healthz"
    metrics_port = _free_port()
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
           "KFLOW_STEP_CODE_CACHE": str(tmp_path / "code-cache"),
           "KFLOW_METRICS_PORT": str(metrics_port)}
    log_path = tmp_path / "operator.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "kflow_operator", "--namespace", namespace,
             "--liveness", liveness, "--verbose"],
            stdout=log, stderr=subprocess.STDOUT, env=env)
    running = Operator(process, log_path, {
        **os.environ, "KUBECONFIG": str(cluster.kubeconfig), "KFLOW_NAMESPACE": namespace,
        "KFLOW_S3_CREDENTIALS": str(s3_credentials), "KFLOW_CONFIG": ""},
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics")

    def alive() -> bool:
        if process.poll() is not None:
            pytest.fail(f"the operator exited with {process.returncode}:\n"
                        f"{running.log_tail()}")
        try:
            with urllib.request.urlopen(liveness, timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_for("the operator's liveness endpoint", alive, timeout=30)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        # pytest shows this only when the test failed.
        print(f"--- operator log ({log_path}) ---\n{running.log_tail(200)}")


def deploy(operator: Operator, flow: str) -> None:
    done = subprocess.run([sys.executable, str(FLOWS / flow), "deploy"], env=operator.env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def apply_run(cluster: TestCluster, namespace: str, tmp_path: Path, name: str, flow: str,
              parameters: dict[str, str] | None = None) -> None:
    manifest = {"apiVersion": "kflow.dev/v1alpha1", "kind": "FlowRun",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"flowRef": {"name": flow}, "parameters": parameters or {}}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    done = cluster.kubectl("apply", "-f", str(path))
    assert done.returncode == 0, done.stderr


def get_run(cluster: TestCluster, namespace: str, name: str) -> dict[str, Any]:
    done = cluster.kubectl("get", "fr", name, "-n", namespace, "-o", "json")
    assert done.returncode == 0, done.stderr
    body: dict[str, Any] = json.loads(done.stdout)
    return body


def wait_finished(cluster: TestCluster, operator: Operator, namespace: str,
                  name: str) -> dict[str, Any]:
    """The run once its phase is terminal (fails with the operator's log on timeout)."""
    def finished() -> dict[str, Any] | None:
        if operator.process.poll() is not None:
            pytest.fail(f"the operator died:\n{operator.log_tail()}")
        run = get_run(cluster, namespace, name)
        phase = (run.get("status") or {}).get("phase")
        return run if phase in ("Succeeded", "Failed", "Stopped") else None

    return wait_for(f"FlowRun {name} to finish", finished, timeout=RUN_TIMEOUT, interval=0.5)


def steps_summary(run: dict[str, Any]) -> dict[str, tuple[str, int, int]]:
    """step → (phase, tasks total, tasks succeeded)."""
    return {s["name"]: (s["phase"], s["tasks"]["total"], s["tasks"]["succeeded"])
            for s in run["status"]["steps"]}


def end_artifacts(s3_credentials: Path, run: dict[str, Any], flow_name: str) -> dict[str, Any]:
    """The artifacts of the run's end task, loaded from the store."""
    store = store_from_env({"KFLOW_S3_CREDENTIALS": str(s3_credentials)})
    try:
        task = TaskKey(run["metadata"]["namespace"], flow_name, naming.run_id(run), "end")
        attempt = store.latest_done_attempt(task)
        assert attempt is not None, f"no finished attempt of {task.pathspec} in the store"
        index = store.read_index(task.attempt(attempt))
        return {name: store.load(index[name]) for name in index}
    finally:
        store.close()


def test_train_flow_runs_end_to_end_from_kubectl_apply(
        cluster: TestCluster, namespace: str, operator: Operator, s3_credentials: Path,
        tmp_path: Path) -> None:
    deploy(operator, "train_flow.py")
    apply_run(cluster, namespace, tmp_path, "train-1", "train-flow")
    run = wait_finished(cluster, operator, namespace, "train-1")
    status = run["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert steps_summary(run) == {
        "start": ("Succeeded", 1, 1), "train": ("Succeeded", 3, 3),
        "choose": ("Succeeded", 1, 1), "report": ("Succeeded", 1, 1),
        "end": ("Succeeded", 1, 1)}
    assert status["progress"] == "5/5"
    assert status["flow"]["generation"] == 1 and len(status["flow"]["codeSha256"]) == 64
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Accepted": "True", "Progressing": "False", "Succeeded": "True"}
    assert run["metadata"]["labels"]["kflow.dev/flow"] == "train-flow"

    table = cluster.kubectl("get", "fr", "-n", namespace)
    header, row = table.stdout.splitlines()
    assert header.split() == ["NAME", "FLOW", "STATUS", "STEPS", "STARTED", "DURATION", "AGE"]
    assert row.split()[:4] == ["train-1", "train-flow", "Succeeded", "5/5"]

    # The best of the three models (rates 0.01, 0.1, 0.5; 3 epochs: w = 1 - (1 - r)**3).
    artifacts = end_artifacts(s3_credentials, run, "TrainFlow")
    assert artifacts["model"] == {"rate": 0.5, "weight": pytest.approx(0.875)}

    # The operator recorded the transitions as Events on the FlowRun.
    events = cluster.core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=train-1").items
    assert {"Started", "Succeeded"} <= {e.reason for e in events}

    # The Flow's status: accepted, its printer columns, the run as its last run.
    def flow_done() -> dict[str, Any] | None:
        flow = json.loads(cluster.kubectl("get", "flow", "train-flow", "-n", namespace,
                                          "-o", "json").stdout)
        last = (flow.get("status") or {}).get("lastRun") or {}
        return flow if last.get("phase") == "Succeeded" else None

    flow_status = wait_for("Flow train-flow's lastRun", flow_done, timeout=30)["status"]
    assert flow_status["lastRun"] == {"name": "train-1", "phase": "Succeeded",
                                      "startedAt": status["startedAt"]}
    assert {c["type"]: c["status"] for c in flow_status["conditions"]} == {
        "Accepted": "True", "Ready": "True"}
    assert flow_status["observedGeneration"] == 1
    header, row = cluster.kubectl("get", "flows", "-n", namespace).stdout.splitlines()
    assert header.split() == ["NAME", "STEPS", "SCHEDULE", "LAST", "RUN", "AGE"]
    assert row.split()[:8] == ["train-flow", "5", "0", "0", "*", "*", "*", "train-1"]

    # The metrics endpoint counted the run's 7 task attempts.
    metrics = operator.scrape()
    assert metrics["kflow_tasks_started_total"] >= 7
    assert metrics['kflow_tasks_finished_total{outcome="succeeded"}'] >= 7
    assert metrics['kflow_flowruns{phase="Succeeded"}'] == 1
    assert metrics['kflow_kube_requests_total{verb="create",outcome="ok"}'] >= 7
    assert metrics['kflow_reconcile_duration_seconds_count{kind="flowrun"}'] > 0


def test_branch_flow_passes_parameters_and_merges_the_branches(
        cluster: TestCluster, namespace: str, operator: Operator, s3_credentials: Path,
        tmp_path: Path) -> None:
    deploy(operator, "branch_flow.py")
    apply_run(cluster, namespace, tmp_path, "branch-1", "branch-flow", {"rows": "10"})
    run = wait_finished(cluster, operator, namespace, "branch-1")
    assert run["status"]["phase"] == "Succeeded", json.dumps(run["status"], indent=1)
    assert steps_summary(run) == {name: ("Succeeded", 1, 1) for name in
                                  ("start", "counts", "sums", "merge", "end")}
    artifacts = end_artifacts(s3_credentials, run, "BranchFlow")
    assert (artifacts["count"], artifacts["total"], artifacts["mean"]) == (10, 45, 4.5)
    # The Flow snapshot the run is pinned to is owned by the run.
    snapshot = cluster.core.read_namespaced_config_map("branch-1-flow", namespace)
    assert snapshot.metadata.owner_references[0].uid == run["metadata"]["uid"]


def test_a_missing_flow_or_a_bad_parameter_fails_the_run_with_invalid_spec(
        cluster: TestCluster, namespace: str, operator: Operator, tmp_path: Path) -> None:
    apply_run(cluster, namespace, tmp_path, "orphan-1", "no-such-flow")
    deploy(operator, "branch_flow.py")
    apply_run(cluster, namespace, tmp_path, "bad-rows-1", "branch-flow", {"rows": "many"})
    apply_run(cluster, namespace, tmp_path, "typo-1", "branch-flow", {"rowz": "3"})

    expected = {"orphan-1": ("FlowNotFound", "Flow 'no-such-flow' not found"),
                "bad-rows-1": ("InvalidParameter", "'many' is not a whole number"),
                "typo-1": ("InvalidParameter", "rowz is not a parameter")}
    for name, (accepted_reason, text) in expected.items():
        status = wait_finished(cluster, operator, namespace, name)["status"]
        assert status["phase"] == "Failed", json.dumps(status, indent=1)
        assert status["failure"]["reason"] == "InvalidSpec"
        assert text in status["failure"]["message"]
        accepted = next(c for c in status["conditions"] if c["type"] == "Accepted")
        assert (accepted["status"], accepted["reason"]) == ("False", accepted_reason)
    assert cluster.core.list_namespaced_pod(namespace).items == []
    wide = cluster.kubectl("get", "fr", "orphan-1", "-n", namespace, "-o", "wide")
    assert wide.stdout.splitlines()[1].split()[-1] == "InvalidSpec"


def test_a_flow_whose_graph_the_planner_rejects_is_not_accepted(
        cluster: TestCluster, namespace: str, operator: Operator, tmp_path: Path) -> None:
    # Valid for the CRD (each `next` names a step, nothing goes to start) but not a DAG:
    # two unreachable steps going to each other.
    flow = yaml.safe_load((GOLDEN / "branch_flow.yaml").read_text())
    flow["metadata"] = {"name": "cyclic-flow", "namespace": namespace}
    flow["spec"]["steps"][-1:-1] = [
        {"name": "ping", "type": "linear", "next": ["pong"], "join": False},
        {"name": "pong", "type": "linear", "next": ["ping"], "join": False}]
    path = tmp_path / "cyclic-flow.yaml"
    path.write_text(yaml.safe_dump(flow))
    done = cluster.kubectl("apply", "-f", str(path))
    assert done.returncode == 0, done.stderr

    def judged() -> dict[str, Any] | None:
        body = json.loads(cluster.kubectl("get", "flow", "cyclic-flow", "-n", namespace,
                                          "-o", "json").stdout)
        return body.get("status") or None

    status = wait_for("Flow cyclic-flow's status", judged, timeout=30)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Accepted"]["status"], conditions["Accepted"]["reason"]) == (
        "False", "InvalidGraph")
    assert "the graph has a cycle" in conditions["Accepted"]["message"]
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == (
        "False", "NotAccepted")
    assert (status["stepCount"], status["observedGeneration"]) == (7, 1)
    wide = cluster.kubectl("get", "flow", "cyclic-flow", "-n", namespace, "-o", "wide")
    assert wide.stdout.splitlines()[1].split()[-1] == "False"

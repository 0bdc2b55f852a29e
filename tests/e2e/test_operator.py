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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from kflow import api_types
from kflow.cluster import s3
from kflow.store import store_from_env
from kflow.store.layout import TaskKey
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
    argv: list[str] = field(default_factory=list)             # how to start it again
    process_env: dict[str, str] = field(default_factory=dict)  # (`restart`)
    liveness_url: str = ""

    def wait_alive(self, timeout: float = 30) -> None:
        """Wait for the liveness endpoint; fail with the log if the process exits."""
        def alive() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"the operator exited with {self.process.returncode}:\n"
                            f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.liveness_url, timeout=1) as answer:
                    return bool(answer.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_for("the operator's liveness endpoint", alive, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the operator process (a crash: no cleanup of any kind) and reap it."""
        self.process.kill()
        self.process.wait(timeout=10)

    def restart(self) -> None:
        """Start the operator process again, as the fixture did (its output appended to
        the same log), and wait until it is alive. The previous one must be gone."""
        assert self.process.poll() is not None, "the operator still runs"
        self.process = _spawn(self.argv, self.process_env, self.log_path)
        self.wait_alive()

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


def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)


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
    argv = [sys.executable, "-m", "kflow_operator", "--namespace", namespace,
            "--liveness", liveness, "--verbose"]
    running = Operator(_spawn(argv, env, log_path), log_path, {
        **os.environ, "KUBECONFIG": str(cluster.kubeconfig), "KFLOW_NAMESPACE": namespace,
        "KFLOW_S3_CREDENTIALS": str(s3_credentials), "KFLOW_CONFIG": ""},
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics", argv=argv,
        process_env=env, liveness_url=liveness)
    try:
        running.wait_alive()
        yield running
    finally:
        process = running.process  # the last one started (tests may restart it)
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
        task = TaskKey(run["metadata"]["namespace"], flow_name, api_types.run_id(run), "end")
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
    assert header.split() == ["NAME", "FLOW", "STATUS", "STEPS", "STARTED", "DURATION",
                              "REASON", "AGE"]
    assert row.split()[:4] == ["train-1", "train-flow", "Succeeded", "5/5"]
    assert len(row.split()) == 7 and "reason" not in status    # all is well: no reason

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
    assert header.split() == ["NAME", "STEPS", "SCHEDULE", "LAST", "SCHEDULE", "LAST", "RUN",
                              "AGE"]
    assert row.split()[:8] == ["train-flow", "5", "0", "0", "*", "*", "*", "train-1"]

    # The metrics endpoint counted the run's 7 task attempts.
    metrics = operator.scrape()
    assert metrics["kflow_tasks_started_total"] >= 7
    assert metrics['kflow_tasks_finished_total{outcome="succeeded"}'] >= 7
    assert metrics['kflow_flowruns{phase="Succeeded"}'] == 1
    assert metrics['kflow_kube_requests_total{verb="create",outcome="ok"}'] >= 7
    assert metrics['kflow_reconcile_duration_seconds_count{kind="flowrun"}'] > 0
    # every pod but the start step's knew when its task became ready
    assert metrics["kflow_task_transition_seconds_count"] >= 6

    # Overhead: the record of a task times it, ready ≤ created ≤ started ≤ … ≤ finished.
    timing = task_timing(s3_credentials, run, "TrainFlow", "choose")
    order = ["readyAt", "createdAt", "startedAt", "userStartedAt", "userFinishedAt",
             "finishedAt"]
    assert set(order) <= set(timing), timing
    assert [timing[k] for k in order] == sorted(timing[k] for k in order), timing
    # … and the status sums it up per step and for the run, without negative durations.
    def seconds(text: str) -> float:
        assert text.endswith("s")
        value = float(text[:-1])
        assert value >= 0
        return value

    steps = {s["name"]: s for s in status["steps"]}
    for name, tasks in (("start", 1), ("train", 3), ("choose", 1), ("report", 1),
                        ("end", 1)):
        overhead = steps[name]["overhead"]
        assert overhead["samples"] == tasks, overhead
        assert seconds(overhead["toStartP50"]) <= seconds(overhead["toStartMax"]) < 60
        assert seconds(overhead["kflow"]) > 0 and seconds(overhead["userCode"]) >= 0
        if name != "start":            # the start step has no parents to be ready after
            assert seconds(overhead["toCreateP50"]) <= seconds(overhead["toCreateMax"]) < 60
    total = status["overhead"]
    assert total["samples"] == 7
    assert seconds(total["kflow"]) == pytest.approx(
        sum(seconds(s["overhead"]["kflow"]) for s in steps.values()), abs=0.01)


def task_timing(s3_credentials: Path, run: dict[str, Any], flow_name: str,
                step: str) -> dict[str, float]:
    """meta.json's ``timing`` of the latest finished attempt of `step`'s task 0."""
    store = store_from_env({"KFLOW_S3_CREDENTIALS": str(s3_credentials)})
    try:
        task = TaskKey(run["metadata"]["namespace"], flow_name, api_types.run_id(run), step)
        attempt = store.latest_done_attempt(task)
        assert attempt is not None, f"no finished attempt of {task.pathspec} in the store"
        return dict(store.read_meta(task.attempt(attempt)).timing)
    finally:
        store.close()


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
    header, row = wide.stdout.splitlines()
    assert header.split()[-6:] == ["AGE", "FAILED", "STEP", "MESSAGE", "TRIGGERED", "BY"]
    assert "InvalidSpec" in row.split() and "Flow 'no-such-flow' not found" in row


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

"""Hybrid runs on the embedded cluster: `python flow.py run --local` of a flow with a
@kubernetes step runs that step as a pod and the others here, through the cluster's
object store; the run is a FlowRun like any other (driven by the local process, left
alone by the operator that watches the namespace).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kflow import api_types
from tests.e2e import test_operator as base
from tests.e2e.conftest import TestCluster, wait_for

pytestmark = pytest.mark.e2e

FLOWS = Path(__file__).resolve().parent / "flows"
operator = base.operator     # the fixture: the namespace's operator, running


def test_a_local_run_sends_its_kubernetes_step_to_a_pod(
        cluster: TestCluster, namespace: str, operator: base.Operator,
        s3_credentials: Path) -> None:
    env = {**operator.env, "HOSTNAME": "the-laptop", "KFLOW_USER": "alice"}
    done = subprocess.run([sys.executable, str(FLOWS / "hybrid_flow.py"), "run", "--local"],
                          env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{operator.log_tail()}"
    assert "Hybrid run HybridFlow/" in done.stdout and "train as pods" in done.stdout
    assert "[end/0] result 13" in done.stdout

    listed = json.loads(cluster.kubectl("get", "fr", "-n", namespace, "-o", "json").stdout)
    [run] = listed["items"]                                   # recorded like any other
    assert run["spec"]["driver"] == "Local"
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["metadata"]["annotations"]["kflow.dev/user"] == "alice"
    assert {s["name"]: s["phase"] for s in run["status"]["steps"]} == {
        "start": "Succeeded", "train": "Succeeded", "end": "Succeeded"}

    # Where each task ran: only `train` has a pod (the operator created none).
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json",
                                      "-l", f"kflow.dev/run={run['metadata']['name']}").stdout)
    assert [p["metadata"]["labels"]["kflow.dev/step"] for p in pods["items"]] == ["train"]
    [pod] = pods["items"]
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == run["metadata"]["uid"]
    assert not pod["metadata"].get("finalizers")              # released by the driver
    data = base.end_artifacts(s3_credentials, run, "HybridFlow")
    assert data["start_host"] == "the-laptop" and data["end_host"] == "the-laptop"
    assert data["train_host"] == pod["metadata"]["name"]
    assert data["model"] == 12 and data["result"] == 13

    # The client API reads it as any run (live FlowRun + store).
    read = subprocess.run([sys.executable, "-c", (
        "from kflow import Flow; r = Flow('HybridFlow').latest_successful_run; "
        f"print(r.id == {api_types.run_id(run)!r}, r.data.result, r['train'].task.data.model)"
    )], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == ["True", "13", "12"]


def test_a_pod_the_cluster_refuses_fails_the_hybrid_run_with_what_to_do(
        cluster: TestCluster, namespace: str, operator: base.Operator) -> None:
    gone = cluster.kubectl("delete", "serviceaccount", "kflow-step", "-n", namespace)
    assert gone.returncode == 0, gone.stderr
    done = subprocess.run([sys.executable, str(FLOWS / "hybrid_flow.py"), "run", "--local"],
                          env=operator.env, capture_output=True, text=True, timeout=240,
                          check=False)
    assert done.returncode == 1, f"{done.stdout}\n{done.stderr}"
    assert "Failed" in done.stdout and "the step's pod could not be created" in done.stdout
    assert "step ServiceAccount 'kflow-step'" in done.stdout
    listed = json.loads(cluster.kubectl("get", "fr", "-n", namespace, "-o", "json").stdout)
    [run] = listed["items"]
    assert run["status"]["phase"] == "Failed"
    assert run["status"]["failure"]["step"] == "train"
    assert run["status"]["failure"]["reason"] == "LaunchError"


def test_kubectl_stop_stops_a_hybrid_run_and_its_pods(
        cluster: TestCluster, namespace: str, operator: base.Operator) -> None:
    proc = subprocess.Popen([sys.executable, str(FLOWS / "hybrid_flow.py"), "run", "--local",
                             "--nap", "300"], env=operator.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        def running_pod() -> str | None:
            pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o",
                                              "json").stdout)["items"]
            up = [p for p in pods if p["status"].get("phase") == "Running"]
            return up[0]["metadata"]["labels"]["kflow.dev/run"] if up else None

        name = wait_for("the train pod running", running_pod, timeout=120, interval=0.5)
        patched = cluster.kubectl("patch", "fr", name, "-n", namespace, "--type", "merge",
                                  "-p", '{"spec":{"stop":true}}')
        assert patched.returncode == 0, patched.stderr
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, out + err
    assert "Run HybridFlow/" in out and " Stopped" in out
    run = json.loads(cluster.kubectl("get", "fr", name, "-n", namespace, "-o", "json").stdout)
    assert run["status"]["phase"] == "Stopped"
    wait_for("the train pod gone", lambda: not json.loads(cluster.kubectl(
        "get", "pods", "-n", namespace, "-o", "json").stdout)["items"], timeout=60)


def test_a_hybrid_run_whose_driver_dies_fails_and_its_pods_stop(
        cluster: TestCluster, namespace: str, operator: base.Operator) -> None:
    operator.kill()                                   # a short driver timeout for the test
    operator.process_env["KFLOW_DRIVER_TIMEOUT_SECONDS"] = "4"
    operator.restart()
    env = {**operator.env, "KFLOW_DRIVER_HEARTBEAT_SECONDS": "1"}
    proc = subprocess.Popen([sys.executable, str(FLOWS / "hybrid_flow.py"), "run", "--local",
                             "--nap", "300"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        def reporting_run() -> dict[str, Any] | None:
            found = json.loads(cluster.kubectl("get", "fr", "-n", namespace, "-o",
                                               "json").stdout)["items"]
            pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o",
                                              "json").stdout)["items"]
            beat = found and ((found[0].get("status") or {}).get("driver") or {})
            running = [p for p in pods if p["status"].get("phase") == "Running"]
            return found[0] if beat and beat.get("heartbeatAt") and running else None

        run = wait_for("the driver reporting and the train pod running", reporting_run,
                       timeout=120, interval=0.5)
        assert run["status"]["driver"]["pid"] == proc.pid
        time.sleep(6)                          # longer than the timeout: still alive
        name = run["metadata"]["name"]
        again = json.loads(cluster.kubectl("get", "fr", name, "-n", namespace, "-o",
                                           "json").stdout)
        assert again["status"]["phase"] == "Running"
        proc.send_signal(signal.SIGKILL)               # the driver dies without a word
        proc.wait(timeout=10)

        def failed() -> dict[str, Any] | None:
            body = json.loads(cluster.kubectl("get", "fr", name, "-n", namespace, "-o",
                                              "json").stdout)
            return body if body["status"].get("phase") == "Failed" else None

        ended = wait_for("the operator to fail the run", failed, timeout=60, interval=0.5)
        assert ended["status"]["failure"]["reason"] == "DriverLost"
        assert f"pid {proc.pid}" in ended["status"]["failure"]["message"]
        wait_for("its pod gone", lambda: not json.loads(cluster.kubectl(
            "get", "pods", "-n", namespace, "-o", "json").stdout)["items"], timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

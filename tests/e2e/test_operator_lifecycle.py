"""A run's life after `kubectl apply`: stop it, lose a pod, resume it in place.

Reuses test_operator.py's per-test `operator` fixture (its own namespace, prerequisites
and `python -m kflow_operator` process) and helpers. The flows are small ones of
tests/e2e/flows/: `nap_flow.py` sleeps in its middle step (something to stop, or
to delete the pod of); `marker_flow.py` fails in its middle step until a file exists
(the step pod is a local process on the embedded cluster, so it sees the test's tmp
dir): the test creates the file between the failure and the resume.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kflow import api_types
from kflow.store import store_from_env
from kflow.store.layout import TaskKey
from kflow_operator import naming
from tests.e2e import test_operator as base
from tests.e2e.conftest import TestCluster, wait_for

pytestmark = pytest.mark.e2e

FLOWS = Path(__file__).resolve().parent / "flows"
operator = base.operator     # the fixture: one operator process per test
Operator = base.Operator


def flow_cli(op: Operator, flow: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python tests/e2e/flows/<flow> <args>` as a user runs it (check=False)."""
    return subprocess.run([sys.executable, str(FLOWS / flow), *args], env=op.env,
                          capture_output=True, text=True, timeout=120, check=False)


def deploy(op: Operator, flow: str) -> None:
    done = flow_cli(op, flow, "deploy")
    assert done.returncode == 0, done.stderr


def patch_spec(cluster: TestCluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    done = cluster.kubectl("patch", "fr", name, "-n", namespace, "--type", "merge",
                           "-p", json.dumps({"spec": spec}))
    assert done.returncode == 0, done.stderr


def step_pods(cluster: TestCluster, namespace: str, run: str,
              step: str | None = None) -> list[Any]:
    selector = naming.run_selector(run)
    if step is not None:
        selector += f",{api_types.LABEL_STEP}={step}"
    pods: list[Any] = cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
    return pods


def attempts_by_pod(cluster: TestCluster, namespace: str, run: str) -> dict[str, list[int]]:
    """step → the attempts of its pods (sorted)."""
    found: dict[str, list[int]] = {}
    for pod in step_pods(cluster, namespace, run):
        labels = pod.metadata.labels
        found.setdefault(labels[api_types.LABEL_STEP], []).append(
            int(labels[api_types.LABEL_ATTEMPT]))
    return {step: sorted(numbers) for step, numbers in found.items()}


def stored_attempts(s3_credentials: Path, run: dict[str, Any], flow_class: str,
                    steps: tuple[str, ...]) -> dict[str, dict[int, bool | None]]:
    """step → {attempt: succeeded? (None: no outcome recorded)} as the runner recorded
    them in the store."""
    store = store_from_env({"KFLOW_S3_CREDENTIALS": str(s3_credentials)})
    found: dict[str, dict[int, bool | None]] = {}
    try:
        for step in steps:
            task = TaskKey(run["metadata"]["namespace"], flow_class, api_types.run_id(run), step)
            found[step] = {
                number: store.read_meta(task.attempt(number)).succeeded if done else None
                for number, done in store.list_attempts(task).items()}
    finally:
        store.close()
    return found


def running_pod(cluster: TestCluster, op: Operator, namespace: str, run: str,
                step: str) -> Any:
    """The first pod of `step` whose container runs (fails with the operator's log)."""
    def running() -> Any:
        if op.process.poll() is not None:
            pytest.fail(f"the operator died:\n{op.log_tail()}")
        pods = [p for p in step_pods(cluster, namespace, run, step)
                if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]
        return pods[0] if pods else None

    return wait_for(f"a running pod of {run}/{step}", running, timeout=base.RUN_TIMEOUT)


def wait_resumed(cluster: TestCluster, op: Operator, namespace: str, name: str,
                 attempt: int) -> dict[str, Any]:
    """The run once the operator acted on resume `attempt` and the run ended again."""
    def finished() -> dict[str, Any] | None:
        if op.process.poll() is not None:
            pytest.fail(f"the operator died:\n{op.log_tail()}")
        run = base.get_run(cluster, namespace, name)
        status = run.get("status") or {}
        done = status.get("phase") in ("Succeeded", "Failed", "Stopped")
        return run if done and status.get("resumeAttempt", 0) >= attempt else None

    return wait_for(f"FlowRun {name} to finish resume {attempt}", finished,
                    timeout=base.RUN_TIMEOUT, interval=0.5)


def failed_marker_run(cluster: TestCluster, namespace: str, op: Operator, tmp_path: Path,
                      name: str) -> tuple[dict[str, Any], Path]:
    """A run of marker_flow.py that failed in `check` (its marker file missing), and
    the marker file to create before resuming it."""
    marker = tmp_path / "marker"
    deploy(op, "marker_flow.py")
    base.apply_run(cluster, namespace, tmp_path, name, "marker-flow", {"marker": str(marker)})
    run = base.wait_finished(cluster, op, namespace, name)
    assert run["status"]["phase"] == "Failed", json.dumps(run["status"], indent=1)
    return run, marker


def steps_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in run["status"]["steps"]}


def test_stopping_a_running_run_deletes_its_pods_and_ends_it_stopped(
        cluster: TestCluster, namespace: str, operator: Operator, tmp_path: Path) -> None:
    deploy(operator, "nap_flow.py")
    base.apply_run(cluster, namespace, tmp_path, "nap-1", "nap-flow", {"seconds": "60"})
    pod = running_pod(cluster, operator, namespace, "nap-1", "nap")
    assert base.get_run(cluster, namespace, "nap-1")["status"]["phase"] == "Running"

    asked = time.monotonic()
    patch_spec(cluster, namespace, "nap-1", {"stop": True})
    run = base.wait_finished(cluster, operator, namespace, "nap-1")
    status = run["status"]
    assert status["phase"] == "Stopped", json.dumps(status, indent=1)
    steps = steps_of(run)
    assert (steps["start"]["phase"], steps["nap"]["phase"]) == ("Succeeded", "Stopped")
    assert steps["end"]["phase"] not in ("Running", "Succeeded")
    succeeded = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert (succeeded["status"], succeeded["reason"]) == ("False", "Stopped")
    wait_for("the nap pod to be deleted",
             lambda: pod.metadata.name not in {
                 p.metadata.name for p in step_pods(cluster, namespace, "nap-1")},
             timeout=30)
    assert time.monotonic() - asked < 30
    # Nothing else started after the stop.
    assert attempts_by_pod(cluster, namespace, "nap-1").get("end") is None
    assert "nap" not in attempts_by_pod(cluster, namespace, "nap-1")


def test_a_deleted_running_pod_is_retried_as_an_infrastructure_failure(
        cluster: TestCluster, namespace: str, operator: Operator, s3_credentials: Path,
        tmp_path: Path) -> None:
    deploy(operator, "nap_flow.py")
    base.apply_run(cluster, namespace, tmp_path, "nap-2", "nap-flow", {"seconds": "4"})
    pod = running_pod(cluster, operator, namespace, "nap-2", "nap")
    assert pod.metadata.finalizers == [api_types.FINALIZER_STEP]
    done = cluster.kubectl("delete", "pod", pod.metadata.name, "-n", namespace, "--wait=false")
    assert done.returncode == 0, done.stderr

    run = base.wait_finished(cluster, operator, namespace, "nap-2")
    status = run["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert steps_of(run)["nap"]["attempts"] == 1
    # The deleted pod stayed (Terminating) while the run needed it, so attempt 0 was
    # neither recreated nor forgotten: attempt 1 ran, on the infrastructure budget.
    assert attempts_by_pod(cluster, namespace, "nap-2")["nap"] in ([0, 1], [1])
    recorded = stored_attempts(s3_credentials, run, "NapFlow", ("start", "nap", "end"))
    assert recorded["start"] == {0: True} and recorded["end"] == {0: True}
    assert recorded["nap"][1] is True and recorded["nap"].get(0) is not True
    events = cluster.core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=nap-2").items
    retrying = [e.message for e in events if e.reason == "Retrying"]
    assert any("nap/0 attempt 0 failed (Evicted" in m and "attempt 1" in m
               for m in retrying), retrying
    # The run is finished: the operator lets the deleted pod go.
    wait_for("the deleted pod to be released", lambda: pod.metadata.name not in {
        p.metadata.name for p in step_pods(cluster, namespace, "nap-2")}, timeout=30)


def test_a_failed_run_resumes_in_place_and_keeps_what_succeeded(
        cluster: TestCluster, namespace: str, operator: Operator, s3_credentials: Path,
        tmp_path: Path) -> None:
    run, marker = failed_marker_run(cluster, namespace, operator, tmp_path, "marker-1")
    failure = run["status"]["failure"]
    assert (failure["step"], failure["reason"], failure["attempt"]) == ("check", "UserError", 0)
    assert f"kubectl logs -n {namespace} -l kflow.dev/run=marker-1" in failure["message"]

    marker.touch()
    patch_spec(cluster, namespace, "marker-1", {"resume": {"attempt": 1}})
    run = wait_resumed(cluster, operator, namespace, "marker-1", 1)
    status = run["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert "failure" not in status and status["resumeAttempt"] == 1
    assert base.steps_summary(run) == {name: ("Succeeded", 1, 1)
                                       for name in ("start", "check", "end")}
    # start ran once (attempt 0); check again as attempt 100 of resume 1; then end.
    assert stored_attempts(s3_credentials, run, "MarkerFlow", ("start", "check", "end")) == {
        "start": {0: True}, "check": {0: False, 100: True}, "end": {100: True}}
    pods = attempts_by_pod(cluster, namespace, "marker-1")
    assert pods == {"start": [0], "check": [0, 100], "end": [100]}
    assert base.end_artifacts(s3_credentials, run, "MarkerFlow")["value"] == 42

    # The same attempt again asks for nothing: no new pod, the status stays.
    patch_spec(cluster, namespace, "marker-1", {"resume": {"attempt": 1}})
    time.sleep(3)
    assert attempts_by_pod(cluster, namespace, "marker-1") == pods
    again = base.get_run(cluster, namespace, "marker-1")["status"]
    assert (again["phase"], again["resumeAttempt"]) == ("Succeeded", 1)

    # The flow file's resume refuses a run that is not Failed, and an unknown run.
    done = flow_cli(operator, "marker_flow.py", "resume", "marker-1")
    assert done.returncode == 1
    assert f"FlowRun marker-1 in namespace {namespace} is Succeeded, not Failed" in done.stderr
    done = flow_cli(operator, "marker_flow.py", "resume", "no-such-run")
    assert done.returncode == 1
    assert f"FlowRun no-such-run in namespace {namespace} not found" in done.stderr


def test_flow_file_resume_command_resumes_a_failed_run_from_a_step(
        cluster: TestCluster, namespace: str, operator: Operator, s3_credentials: Path,
        tmp_path: Path) -> None:
    run, marker = failed_marker_run(cluster, namespace, operator, tmp_path, "marker-2")

    marker.touch()
    done = flow_cli(operator, "marker_flow.py", "resume", "marker-2", "--step", "check")
    assert done.returncode == 0, done.stderr
    assert (f"flowrun.kflow.dev/marker-2 in namespace {namespace}: resume 1 requested "
            "(from step check; attempts numbered from 100)") in done.stdout
    assert base.get_run(cluster, namespace, "marker-2")["spec"]["resume"] == {
        "attempt": 1, "step": "check"}
    run = wait_resumed(cluster, operator, namespace, "marker-2", 1)
    assert run["status"]["phase"] == "Succeeded", json.dumps(run["status"], indent=1)
    assert stored_attempts(s3_credentials, run, "MarkerFlow", ("start", "check", "end")) == {
        "start": {0: True}, "check": {0: False, 100: True}, "end": {100: True}}



def test_a_finished_run_is_deleted_after_its_ttl_and_its_history_stays_in_the_store(
        cluster: TestCluster, namespace: str, operator: Operator, s3_credentials: Path,
        tmp_path: Path) -> None:
    deploy(operator, "nap_flow.py")
    manifest = {"apiVersion": "kflow.dev/v1alpha1", "kind": "FlowRun",
                "metadata": {"name": "nap-ttl", "namespace": namespace},
                "spec": {"flowRef": {"name": "nap-flow"}, "parameters": {"seconds": "0"},
                         "ttlSecondsAfterFinished": 6}}
    path = tmp_path / "nap-ttl.json"
    path.write_text(json.dumps(manifest))
    done = cluster.kubectl("apply", "-f", str(path))
    assert done.returncode == 0, done.stderr
    run = base.wait_finished(cluster, operator, namespace, "nap-ttl")
    assert run["status"]["phase"] == "Succeeded", json.dumps(run["status"], indent=1)
    finished = time.monotonic()
    assert len(step_pods(cluster, namespace, "nap-ttl")) == 3

    def gone() -> bool:
        got = cluster.kubectl("get", "fr", "nap-ttl", "-n", namespace)
        return got.returncode != 0 and "NotFound" in got.stderr

    wait_for("the FlowRun to be deleted by its TTL", gone, timeout=40, interval=0.5)
    assert time.monotonic() - finished > 3      # not before its TTL (6 s after finishedAt)
    # Its pods (each holding kflow's finalizer) and its Flow snapshot follow.
    wait_for("the run's pods to go", lambda: not step_pods(cluster, namespace, "nap-ttl"),
             timeout=60)
    wait_for("the run's Flow snapshot to go", lambda: "nap-ttl-flow" not in {
        c.metadata.name for c in cluster.core.list_namespaced_config_map(namespace).items},
        timeout=60)
    # What the tasks wrote is still in the store.
    recorded = stored_attempts(s3_credentials, run, "NapFlow", ("start", "nap", "end"))
    assert recorded == {"start": {0: True}, "nap": {0: True}, "end": {0: True}}
    assert base.end_artifacts(s3_credentials, run, "NapFlow")["slept"] == 0


def test_a_new_run_resumes_from_a_failed_one_cloning_what_succeeded(
        cluster: TestCluster, namespace: str, operator: Operator, s3_credentials: Path,
        tmp_path: Path) -> None:
    origin, marker = failed_marker_run(cluster, namespace, operator, tmp_path, "origin-1")

    marker.touch()
    manifest = {"apiVersion": "kflow.dev/v1alpha1", "kind": "FlowRun",
                "metadata": {"name": "again-1", "namespace": namespace},
                "spec": {"flowRef": {"name": "marker-flow"},
                         "resumeFrom": {"run": "origin-1"}}}
    path = tmp_path / "again-1.json"
    path.write_text(json.dumps(manifest))
    done = cluster.kubectl("create", "-f", str(path))
    assert done.returncode == 0, done.stderr
    run = base.wait_finished(cluster, operator, namespace, "again-1")
    status = run["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert status["originRun"] == "origin-1"
    assert {name: (s["phase"], s["tasks"]["succeeded"], s["tasks"]["cloned"])
            for name, s in steps_of(run).items()} == {
        "start": ("Succeeded", 1, 1), "check": ("Succeeded", 1, 0), "end": ("Succeeded", 1, 0)}
    # start did not run again: its result (and the origin's parameter) was cloned.
    assert attempts_by_pod(cluster, namespace, "again-1") == {"check": [0], "end": [0]}
    assert stored_attempts(s3_credentials, run, "MarkerFlow", ("start", "check", "end")) == {
        "start": {0: True}, "check": {0: True}, "end": {0: True}}
    store = store_from_env({"KFLOW_S3_CREDENTIALS": str(s3_credentials)})
    try:
        start = TaskKey(namespace, "MarkerFlow", api_types.run_id(run), "start")
        meta = store.read_meta(start.attempt(0))
        assert meta.extra["cloned_from"] == f"MarkerFlow/{api_types.run_id(origin)}/start/0/0"
    finally:
        store.close()
    assert base.end_artifacts(s3_credentials, run, "MarkerFlow")["value"] == 42
    # The origin is untouched.
    assert base.get_run(cluster, namespace, "origin-1")["status"]["phase"] == "Failed"

"""The seed's workflows, as a user runs them from examples/, on the embedded cluster:
the linear and the branched flow, model selection with a comparison of every run,
continuous delivery with a fallback, resume after fixing a failed step's input, and a
FlowRun applied with kubectl and watched with `kubectl get flowruns -w`.

Reuses test_operator.py's per-test `operator` fixture (own namespace, prerequisites,
operator process). Flows run with `python examples/flows/<flow> run` as a user would;
results are read back with the client API or the scripts in examples/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import kflow.client
from kflow import api_types
from kflow.client import Flow, Run, Source
from kflow.store import store_from_env
from kflow.store.layout import TaskKey
from tests.e2e import test_operator as base
from tests.e2e.conftest import TestCluster, wait_for

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
operator = base.operator     # the fixture: one operator process per test


def _python(operator: base.Operator, script: Path, *args: str,
            timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args],
                          env={**os.environ, **operator.env}, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _flow(operator: base.Operator, flow: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _python(operator, EXAMPLES / "flows" / flow, *args)


@pytest.fixture
def client(cluster: TestCluster, s3_credentials: Path, namespace: str,
           operator: base.Operator) -> Any:
    """The client API pointed at the test's namespace (live runs and the store)."""
    from kubernetes import config as kube_config

    store = store_from_env({"KFLOW_S3_CREDENTIALS": str(s3_credentials)})
    api = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig))
    kflow.client.set_source(Source(store, namespace, api))
    yield kflow.client
    kflow.client.set_source(None)


def test_the_linear_and_the_branched_flow_run_from_the_flow_file(
        operator: base.Operator, client: Any) -> None:
    done = _flow(operator, "linear_flow.py", "run", "--rows", "400")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Succeeded" in done.stdout
    run = Flow("LinearFlow").latest_successful_run
    assert run is not None and run.parameters == {"rows": 400, "seed": 7}
    assert abs(run.data.model["slope"] - 3.0) < 0.1 and run.data.score < 0.5
    assert "validation MSE" in run["evaluate"].task.stdout

    done = _flow(operator, "branch_flow.py", "run", "--rows", "10")
    assert done.returncode == 0, done.stdout + done.stderr
    branched = Flow("BranchFlow").latest_run
    assert branched is not None and branched.successful
    assert branched.data.mean == 4.5 and branched.data.count == 10
    assert {s.id for s in branched} == {"start", "counts", "sums", "merge", "end"}


def test_model_selection_then_compare_every_run_and_serve_with_a_fallback(
        operator: base.Operator, client: Any) -> None:
    for args in (["--seed", "1"], ["--seed", "2"], ["--seed", "3", "--sabotage", "true"]):
        done = _flow(operator, "model_selection_flow.py", "run", *args)
        assert done.returncode == 0, done.stdout + done.stderr
    runs = list(Flow("ModelSelectionFlow"))
    assert len(runs) == 3 and all(r.successful for r in runs)
    newest, middle, _ = runs
    assert newest.parameters["sabotage"] is True
    for run in runs:
        assert run.data.model["features"] == ["x1", "x2"]       # the truth: 2*x1 - x2
        assert len(run.data.predictions) == 60
        assert run.data.leaderboard[0][1] == ["x1", "x2"]
        assert len(run["fit"]) == 4

    compared = _python(operator, EXAMPLES / "compare_runs.py")
    assert compared.returncode == 0, compared.stderr
    lines = compared.stdout.splitlines()
    assert len(lines) == 4 and lines[-1].startswith("best: ")
    assert {line.split()[0] for line in lines[:3]} == {r.id for r in runs}

    served = _python(operator, EXAMPLES / "serve_model.py")
    assert served.returncode == 0, served.stderr
    assert f"run {newest.id}: its model fails the sanity test" in served.stdout
    assert f"serving the model of run {middle.id} (features x1,x2)" in served.stdout


def _attempts(s3_credentials: Path, namespace: str, run_id: str) -> dict[str, list[int]]:
    store = store_from_env({"KFLOW_S3_CREDENTIALS": str(s3_credentials)})
    try:
        return {step: sorted(store.list_attempts(
            TaskKey(namespace, "ResumeFlow", run_id, step))) for step in
            ("start", "load", "validate", "summarise", "end")}
    finally:
        store.close()


def _set_gate(cluster: TestCluster, namespace: str, minimum: int) -> None:
    made = cluster.kubectl("create", "secret", "generic", "resume-example", "-n", namespace,
                           f"--from-literal=MIN_ROWS={minimum}", "--dry-run=client",
                           "-o", "yaml")
    assert made.returncode == 0, made.stderr
    applied = subprocess.run([cluster.kubectl_path, f"--kubeconfig={cluster.kubeconfig}",
                              "apply", "-f", "-"], input=made.stdout, capture_output=True,
                             text=True, timeout=60, check=False)
    assert applied.returncode == 0, applied.stderr


def _wait_succeeded(cluster: TestCluster, operator: base.Operator, namespace: str,
                    name: str) -> dict[str, Any]:
    def succeeded() -> dict[str, Any] | None:
        run = base.get_run(cluster, namespace, name)
        return run if (run.get("status") or {}).get("phase") == "Succeeded" else None

    return wait_for(f"FlowRun {name} to succeed after the resume", succeeded,
                    timeout=base.RUN_TIMEOUT, interval=0.5)


def test_resume_after_fixing_the_input_reruns_only_the_failed_step_and_what_follows(
        cluster: TestCluster, operator: base.Operator, namespace: str,
        s3_credentials: Path, client: Any) -> None:
    _set_gate(cluster, namespace, 1000)
    failed = _flow(operator, "resume_flow.py", "run")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "validate" in failed.stdout and "Failed" in failed.stdout
    first = Flow("ResumeFlow").latest_run
    assert first is not None and first.flowrun is not None and first.status == "Failed"
    start_sha = first["load"].task["data"].sha

    # Fixed by hand: the Secret, then the documented kubectl patch.
    _set_gate(cluster, namespace, 50)
    patched = cluster.kubectl("patch", "fr", first.flowrun, "-n", namespace, "--type",
                              "merge", "-p", '{"spec":{"resume":{"attempt":1}}}')
    assert patched.returncode == 0, patched.stderr
    _wait_succeeded(cluster, operator, namespace, first.flowrun)
    attempts = _attempts(s3_credentials, namespace, first.id)
    assert attempts["start"] == [0] and attempts["load"] == [0]      # kept, not rerun
    assert attempts["validate"][0] == 0 and len(attempts["validate"]) == 2
    assert len(attempts["summarise"]) == 1 and len(attempts["end"]) == 1
    again = Run(f"ResumeFlow/{first.id}")
    assert again.successful and again.data.mean == 24.75
    assert again["load"].task["data"].sha == start_sha

    # The same with `python flow.py resume` (no name: the flow's newest run).
    _set_gate(cluster, namespace, 1000)
    failed = _flow(operator, "resume_flow.py", "run", "--rows", "80")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    second = Flow("ResumeFlow").latest_run
    assert second is not None and second.id != first.id and second.flowrun is not None
    _set_gate(cluster, namespace, 50)
    resumed = _flow(operator, "resume_flow.py", "resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{second.flowrun} in namespace {namespace}: resume 1 requested" in resumed.stdout
    _wait_succeeded(cluster, operator, namespace, second.flowrun)
    attempts = _attempts(s3_credentials, namespace, second.id)
    assert attempts["start"] == [0] and attempts["load"] == [0]
    assert len(attempts["validate"]) == 2
    assert Run(f"ResumeFlow/{second.id}").data.mean == 19.75


def test_a_flowrun_applied_with_kubectl_and_watched(
        cluster: TestCluster, operator: base.Operator, namespace: str, client: Any) -> None:
    done = _flow(operator, "linear_flow.py", "deploy")
    assert done.returncode == 0, done.stderr
    applied = cluster.kubectl("apply", "-n", namespace, "-f",
                              str(EXAMPLES / "linear-flowrun.yaml"))
    assert applied.returncode == 0, applied.stderr
    watch = subprocess.Popen([cluster.kubectl_path, f"--kubeconfig={cluster.kubeconfig}",
                              "get", "flowruns", "-n", namespace, "-w"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run = base.wait_finished(cluster, operator, namespace, "linear-flow-1")
    finally:
        watch.terminate()
        seen, _ = watch.communicate(timeout=30)
    assert run["status"]["phase"] == "Succeeded"
    lines = [line.split() for line in seen.splitlines()]
    assert lines[0][:3] == ["NAME", "FLOW", "STATUS"]
    assert any(line[:3] == ["linear-flow-1", "linear-flow", "Succeeded"] for line in lines)
    finished = Run("LinearFlow/linear-flow-1")
    assert finished.id == api_types.run_id(run) and finished.parameters["rows"] == 500
    assert "example" in finished.tags

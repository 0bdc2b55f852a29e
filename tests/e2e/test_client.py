"""The client API on the embedded cluster: runs of TrainFlow read back with Metaflow's
names, live from their FlowRuns and, once a FlowRun is deleted, from the store.

Reuses test_operator.py's per-test `operator` fixture (own namespace, prerequisites,
operator process). Three runs: a good one, one failing in `start` (a bad parameter), a
good one started by "alice"; then the client is pointed at the namespace.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config as kube_config

import kflow
from kflow.client import Flow, KflowNamespaceMismatch, KflowNotFound, Run, Source, Task
from kflow.store import store_from_env
from tests.e2e import test_operator as base
from tests.e2e.conftest import TestCluster

pytestmark = pytest.mark.e2e

operator = base.operator     # the fixture: one operator process per test


def _apply(cluster: TestCluster, tmp_path: Path, namespace: str, name: str,
           parameters: dict[str, str], user: str | None = None) -> None:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if user:
        metadata["annotations"] = {"kflow.dev/user": user}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "kflow.dev/v1alpha1", "kind": "FlowRun", "metadata": metadata,
        "spec": {"flowRef": {"name": "train-flow"}, "parameters": parameters,
                 "tags": ["nightly"]}}))
    done = cluster.kubectl("apply", "-f", str(path))
    assert done.returncode == 0, done.stderr


def _source(cluster: TestCluster, s3_credentials: Path, namespace: str,
            live: bool = True) -> Source:
    store = store_from_env({"KFLOW_S3_CREDENTIALS": str(s3_credentials)})
    api = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig)) if live else None
    return Source(store, namespace, api)


@pytest.fixture
def client_runs(cluster: TestCluster, operator: base.Operator, namespace: str,
                s3_credentials: Path, tmp_path: Path) -> Iterator[dict[str, dict[str, Any]]]:
    base.deploy(operator, "train_flow.py")
    runs = {}
    for name, parameters, user in (("good", {"epochs": "2"}, None),
                                   ("bad", {"learning_rates": "x"}, None),
                                   ("alices", {}, "alice")):
        _apply(cluster, tmp_path, namespace, name, parameters, user)
        runs[name] = base.wait_finished(cluster, operator, namespace, name)
    assert [runs[n]["status"]["phase"] for n in ("good", "bad", "alices")] == [
        "Succeeded", "Failed", "Succeeded"]
    kflow.client.set_source(_source(cluster, s3_credentials, namespace))
    try:
        yield runs
    finally:
        kflow.client.namespace(None)
        kflow.client.set_source(None)


def test_runs_read_back_newest_first_with_data_parameters_logs_and_code(
        client_runs: dict[str, dict[str, Any]]) -> None:
    runs = list(Flow("TrainFlow"))
    assert [r.flowrun for r in runs] == ["alices", "bad", "good"]
    flow = Flow("TrainFlow")
    assert flow.latest_run is not None and flow.latest_run.flowrun == "alices"
    assert flow.latest_successful_run is not None
    assert flow.latest_successful_run.flowrun == "alices"

    good = flow["good"]                      # by FlowRun name, or by run id:
    assert Run(f"TrainFlow/{good.id}").flowrun == "good"
    assert good.id == kflow.api_types.run_id(client_runs["good"])
    assert good.successful and good.finished and good.status == "Succeeded"
    assert good.finished_at is not None and good.finished_at >= good.created_at
    assert good.parameters == {"learning_rates": "0.01,0.1,0.5", "epochs": 2}
    assert good.data is not None and good.data.model["rate"] == 0.5
    assert {"nightly", "runtime:kflow", "flowrun:good"} <= good.tags
    train = good["train"]
    assert len(train) == 3
    assert sorted(t.index for t in train) == [0, 1, 2]
    assert sorted(t.data.score for t in train) == sorted(
        t["score"].data for t in train)
    assert "best rate 0.5" in good["report"].task.stdout
    assert [s.id for s in good][-1] == "start" and "end" in good
    sha = client_runs["good"]["status"]["flow"]["codeSha256"]
    assert good.code is not None and good.code.sha256 == sha
    assert "class TrainFlow" in good.code.read("train_flow.py")
    end = Task(f"TrainFlow/{good.id}/end/0")
    assert end.successful and "model" in end
    assert end["model"].data == good.data.model and len(end["model"].sha) == 64

    bad = flow["bad"]
    assert not bad.successful and not bad.finished and bad.status == "Failed"
    assert bad.data is None
    start = bad["start"].task
    assert not start.successful and start.finished
    assert start.exception is not None and start.exception.type == "builtins.ValueError"
    assert "could not convert string to float" in str(start.exception)

    alices = flow["alices"]
    assert alices.user == "alice" and "user:alice" in alices.tags


def test_tags_namespaces_and_errors(client_runs: dict[str, dict[str, Any]]) -> None:
    good = Flow("TrainFlow")["good"]
    good.add_tag("candidate")
    assert [r.flowrun for r in Flow("TrainFlow").runs("candidate")] == ["good"]
    good.replace_tag("candidate", "champion")
    assert [r.flowrun for r in Flow("TrainFlow").runs("nightly", "champion")] == ["good"]
    assert "candidate" not in Flow("TrainFlow")["good"].tags
    with pytest.raises(kflow.client.ClientError, match="system tag"):
        good.remove_tag("runtime:kflow")

    kflow.client.namespace("user:alice")
    assert [r.flowrun for r in Flow("TrainFlow")] == ["alices"]
    with pytest.raises(KflowNamespaceMismatch, match="namespace"):
        Flow("TrainFlow")["good"]
    kflow.client.namespace("user:nobody")
    with pytest.raises(KflowNamespaceMismatch, match="no run in namespace"):
        Flow("TrainFlow")
    kflow.client.namespace(None)

    with pytest.raises(KflowNotFound, match="does not exist"):
        Flow("NoSuchFlow")
    with pytest.raises(KeyError, match="no run"):
        Flow("TrainFlow")["nope"]
    with pytest.raises(KflowNotFound, match="pathspec looks like"):
        Run("TrainFlow")
    with pytest.raises(KeyError, match="no artifact"):
        good["end"].task["nope"]


def test_a_deleted_flowrun_stays_readable_from_the_store(
        cluster: TestCluster, client_runs: dict[str, dict[str, Any]], namespace: str,
        s3_credentials: Path, operator: base.Operator) -> None:
    good_id = kflow.api_types.run_id(client_runs["good"])
    done = cluster.kubectl("delete", "fr", "good", "-n", namespace, "--wait=true",
                           "--timeout=60s")
    assert done.returncode == 0, done.stderr
    archived = Run(f"TrainFlow/{good_id}")
    assert archived.flowrun is None and archived.status == "Succeeded"
    assert archived.successful and archived.data is not None
    assert archived.data.model["rate"] == 0.5
    assert archived.parameters["epochs"] == 2
    assert Flow("TrainFlow")["good"].id == good_id        # the old name still finds it
    assert [r.id for r in Flow("TrainFlow")][-1] == good_id

    # The store alone (no cluster configured) has every run, newest first.
    kflow.client.set_source(_source(cluster, s3_credentials, namespace, live=False))
    listed = list(Flow("TrainFlow"))
    assert [r.id for r in listed][-1] == good_id and len(listed) == 3
    assert [r.status for r in listed] == ["Succeeded", "Unknown", "Succeeded"]
    assert listed[0].user == "alice"


def test_a_user_script_reads_runs_with_the_configuration(
        client_runs: dict[str, dict[str, Any]], operator: base.Operator,
        tmp_path: Path) -> None:
    """The seed's loop, as a data scientist runs it: configuration from the environment
    (`kflow cluster env` sets the same variables)."""
    script = tmp_path / "compare.py"
    script.write_text(textwrap.dedent("""
        from kflow import Flow, namespace
        namespace(None)
        for run in Flow("TrainFlow"):
            if run.successful:
                print(run.flowrun, run.data.model["rate"], round(run.data.score, 3))
    """))
    done = subprocess.run([sys.executable, str(script)], env={**os.environ, **operator.env},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["alices 0.5 0.875", "good 0.5 0.75"]


def _kflow(operator: base.Operator, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kflow.cli", *args],
                          env={**os.environ, **operator.env}, capture_output=True, text=True,
                          timeout=120, check=False)


def test_runs_describe_and_logs_commands(client_runs: dict[str, dict[str, Any]],
                                         operator: base.Operator, cluster: TestCluster,
                                         namespace: str) -> None:
    table = _kflow(operator, "runs", "TrainFlow")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["RUN", "FLOW", "STATUS", "STARTED", "DURATION", "USER",
                                "TAGS"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["alices", "TrainFlow", "Succeeded"], ["bad", "TrainFlow", "Failed"],
        ["good", "TrainFlow", "Succeeded"]]
    assert "alice" in lines[1] and "nightly" in lines[1]

    described = _kflow(operator, "describe", "bad")
    assert described.returncode == 0, described.stderr
    text = described.stdout
    assert "Status:      Failed" in text
    bad_id = kflow.api_types.run_id(client_runs["bad"])
    assert f"Failed: TrainFlow/{bad_id}/start/0 (attempt 0): builtins.ValueError" in text
    assert f"logs: kflow logs TrainFlow/{bad_id}/start/0" in text

    logs = _kflow(operator, "logs", "good/report")
    assert logs.returncode == 0, logs.stderr
    assert "best rate 0.5 score 0.750" in logs.stdout
    stderr = _kflow(operator, "logs", f"TrainFlow/{bad_id}/start/0", "--stderr")
    assert "could not convert string to float" in stderr.stdout

    # After the FlowRun and its pods are gone, the store still answers.
    done = cluster.kubectl("delete", "fr", "good", "-n", namespace, "--wait=true")
    assert done.returncode == 0, done.stderr
    logs = _kflow(operator, "logs", "good/report")
    assert logs.returncode == 0 and "best rate 0.5" in logs.stdout, logs.stderr

    missing = _kflow(operator, "describe", "nope")
    assert missing.returncode == 1
    assert "no run 'nope'" in missing.stderr and "kflow runs" in missing.stderr

"""The Helm chart on the embedded cluster: lint, render, the apiserver's dry run, bad
values refused by the schema, and a real install — the operator as a pod under the
chart's ServiceAccount, a FlowRun applied with kubectl succeeding, `helm test` running
a flow, an upgrade rolling the operator, an uninstall leaving no workload (the runs'
history stays in the store).

helm comes from `kflow.cluster.binaries.helm()` (built once from its Go module and
cached like the cluster's binaries).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from kflow.cluster import binaries, s3
from tests.e2e.conftest import TestCluster, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kflow"


@pytest.fixture(scope="module")
def helm_path() -> str:
    return binaries.helm(sys.stderr)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _helm(helm_path: str, cluster: TestCluster, *args: str,
          timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_path, f"--kubeconfig={cluster.kubeconfig}", *args],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "HELM_CACHE_HOME": "/tmp/kflow-helm/cache",
                               "HELM_CONFIG_HOME": "/tmp/kflow-helm/config",
                               "HELM_DATA_HOME": "/tmp/kflow-helm/data"})


def _store_values(cluster: TestCluster, namespace: str, credentials: Path) -> list[str]:
    """External store = the embedded cluster's S3 server, keys in a Secret made here."""
    creds = s3.read_credentials_file(credentials)
    cluster.core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="store-keys"), string_data={
            "KFLOW_S3_ACCESS_KEY": creds.access_key,
            "KFLOW_S3_SECRET_KEY": creds.secret_key}))
    return ["--set", f"objectStore.external.endpoint={creds.endpoint}",
            "--set", f"objectStore.external.bucket={creds.bucket}",
            "--set", f"objectStore.external.region={creds.region}",
            "--set", "objectStore.external.existingSecret=store-keys"]


GOOD = ["--set", "objectStore.external.endpoint=http://minio.minio.svc:9000",
        "--set", "objectStore.external.existingSecret=store-keys"]


def test_lint_render_and_the_apiservers_dry_run(helm_path: str, cluster: TestCluster,
                                                namespace: str) -> None:
    linted = _helm(helm_path, cluster, "lint", str(CHART), *GOOD)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in linted.stdout
    for extra in ([], ["--set", "operator.watchNamespaces={*}"],
                  ["--set", "operator.metrics.enabled=false"]):
        # Without the `helm test` hook: its Pod names a ServiceAccount a dry run does
        # not create (the install test runs the hook for real).
        rendered = _helm(helm_path, cluster, "template", "kf", str(CHART), "-n", namespace,
                         "--kube-version", "1.36.3", "--skip-tests", *GOOD, *extra)
        assert rendered.returncode == 0, rendered.stderr
        docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
        for doc in docs:                      # every container has requests, non-root
            spec = (doc.get("spec") or {}).get("template", {}).get("spec") or {}
            for container in spec.get("containers") or []:
                assert container["resources"]["requests"], doc["metadata"]["name"]
                assert container["securityContext"]["runAsNonRoot"] is True
                assert container["securityContext"]["allowPrivilegeEscalation"] is False
        path = Path(f"/tmp/kflow-chart-{namespace}.yaml")
        path.write_text(rendered.stdout)
        applied = cluster.kubectl("apply", "--dry-run=server", "-f", str(path))
        assert applied.returncode == 0, applied.stderr
        kinds = {d["kind"] for d in docs}
        assert {"Deployment", "ServiceAccount", "ConfigMap"} <= kinds
        assert ("ClusterRole" in kinds) == (extra[-1:] == ["operator.watchNamespaces={*}"])


@pytest.mark.parametrize(("values", "says"), [
    ([], "existingSecret"),                                 # external store needs its keys
    ([*GOOD, "--set", "operator.logLevel=loud"], "logLevel"),
    ([*GOOD, "--set", "objectStore.mode=s4"], "mode"),
    ([*GOOD, "--set", "steps.runAsUser=0"], "runAsUser"),
    ([*GOOD, "--set", "operator.resources.requests.cpu=lots"], "cpu"),
    ([*GOOD, "--set", "operator.watchNamespaces={Bad_NS}"], "watchNamespaces"),
    ([*GOOD, "--set", "surprise=1"], "surprise"),
])
def test_bad_values_are_refused_with_the_field(helm_path: str, cluster: TestCluster,
                                               values: list[str], says: str) -> None:
    rendered = _helm(helm_path, cluster, "template", "kf", str(CHART), "--kube-version",
                     "1.36.3", *values)
    assert rendered.returncode != 0
    assert says in rendered.stderr and "values don't meet the specifications" in \
        rendered.stderr, rendered.stderr


def _operator_pods(cluster: TestCluster, namespace: str) -> list[Any]:
    return [p for p in cluster.core.list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/component=operator").items
        if p.metadata.deletion_timestamp is None]


@pytest.fixture
def installed(helm_path: str, cluster: TestCluster, namespace: str,
              s3_credentials: Path) -> Iterator[list[str]]:
    ports = ["--set", f"operator.metrics.port={_free_port()}",
             "--set", f"operator.healthPort={_free_port()}"]
    values = _store_values(cluster, namespace, s3_credentials) + ports
    done = _helm(helm_path, cluster, "install", "kflow", str(CHART), "-n", namespace,
                 *values, "--wait", "--timeout", "180s")
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Run a first flow" in done.stdout           # NOTES.txt
        yield values
    finally:
        _helm(helm_path, cluster, "uninstall", "kflow", "-n", namespace, "--wait")


def test_install_run_a_flow_upgrade_and_uninstall(
        helm_path: str, cluster: TestCluster, namespace: str, s3_credentials: Path,
        installed: list[str], tmp_path: Path) -> None:
    pods = _operator_pods(cluster, namespace)
    assert len(pods) == 1 and pods[0].status.phase == "Running"
    assert pods[0].spec.service_account_name == "kflow-operator"
    first_uid = pods[0].metadata.uid
    # Least privilege, checked by the apiserver itself.
    account = f"system:serviceaccount:{namespace}:kflow-operator"
    for verb, resource, allowed in (("create", "pods", "yes"), ("patch", "flowruns", "yes"),
                                    ("get", "secrets", "no"), ("list", "secrets", "no"),
                                    ("create", "deployments", "no")):
        said = cluster.kubectl("auth", "can-i", verb, resource, "-n", namespace,
                               f"--as={account}")
        assert said.stdout.strip() == allowed, (verb, resource, said.stdout, said.stderr)
    steps = f"system:serviceaccount:{namespace}:kflow-step"
    said = cluster.kubectl("auth", "can-i", "--list", "-n", namespace, f"--as={steps}")
    assert "pods" not in said.stdout and "flowruns" not in said.stdout

    # A flow deployed as a user does, a FlowRun applied with kubectl.
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "KFLOW_NAMESPACE": namespace,
           "KFLOW_S3_CREDENTIALS": str(s3_credentials), "KFLOW_CONFIG": ""}
    deployed = subprocess.run([sys.executable, str(ROOT / "examples" / "flows" /
                                                   "linear_flow.py"), "deploy"],
                              env=env, capture_output=True, text=True, timeout=120,
                              check=False)
    assert deployed.returncode == 0, deployed.stderr
    applied = cluster.kubectl("apply", "-n", namespace, "-f",
                              str(ROOT / "examples" / "linear-flowrun.yaml"))
    assert applied.returncode == 0, applied.stderr

    def phase() -> str | None:
        done = cluster.kubectl("get", "fr", "linear-flow-1", "-n", namespace, "-o", "json")
        status = json.loads(done.stdout).get("status") or {} if done.returncode == 0 else {}
        found = status.get("phase")
        return found if found in ("Succeeded", "Failed", "Stopped") else None

    assert wait_for("the FlowRun under the installed operator", phase, timeout=180) \
        == "Succeeded"

    # `helm test`: a pod runs a tiny flow as a user of the namespace would.
    # (Deleted once it succeeded, with its ServiceAccount and Role; kept when it fails.)
    tested = _helm(helm_path, cluster, "test", "kflow", "-n", namespace, "--timeout", "240s")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "TEST SUITE:     kflow-test" in tested.stdout
    assert "Phase:          Succeeded" in tested.stdout
    flowruns = json.loads(cluster.kubectl("get", "fr", "-n", namespace, "-o", "json").stdout)
    helm_runs = [r for r in flowruns["items"]
                 if r["spec"]["flowRef"]["name"] == "helm-test-flow"]
    assert [r["status"]["phase"] for r in helm_runs] == ["Succeeded"]
    assert helm_runs[0]["metadata"]["annotations"]["kflow.dev/user"] == "helm-test"

    # A changed value rolls the operator (Recreate: one at a time).
    upgraded = _helm(helm_path, cluster, "upgrade", "kflow", str(CHART), "-n", namespace,
                     *installed, "--set", "operator.logLevel=verbose", "--wait",
                     "--timeout", "180s")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    rolled = wait_for("the upgraded operator pod", lambda: [
        p for p in _operator_pods(cluster, namespace)
        if p.metadata.uid != first_uid and p.status.phase == "Running"], timeout=120)
    assert "--verbose" in rolled[0].spec.containers[0].args

    removed = _helm(helm_path, cluster, "uninstall", "kflow", "-n", namespace, "--wait")
    assert removed.returncode == 0, removed.stderr
    wait_for("no operator pod", lambda: not _operator_pods(cluster, namespace), timeout=90)
    apps = client.AppsV1Api(cluster.api)
    assert not [d for d in apps.list_namespaced_deployment(namespace).items
                if (d.metadata.labels or {}).get("app.kubernetes.io/part-of") == "kflow"]
    # The history stays readable from the store.
    read = subprocess.run([sys.executable, "-c", (
        "from kflow import Run; r = Run('LinearFlow/linear-flow-1'); "
        "print(r.status, round(r.data.score, 3) < 1)")], env=env, capture_output=True,
        text=True, timeout=120, check=False)
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == ["Succeeded", "True"]

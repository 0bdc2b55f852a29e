"""The Helm chart on the embedded cluster: lint, render, the apiserver's dry run, bad
values refused by the schema, and real installs — the operator as a pod under the
chart's ServiceAccount, a FlowRun applied with kubectl succeeding, `helm test` running
a flow, an upgrade rolling the operator, an uninstall leaving no workload (the runs'
history stays in the store) — with an external store and with the bundled one (a
SeaweedFS pod whose data claim and keys outlive an uninstall).

helm comes from `kflow.cluster.binaries.helm()` (built once from its Go module and
cached like the cluster's binaries).
"""

from __future__ import annotations

import base64
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


def _free_ports(count: int) -> list[int]:
    """`count` distinct free ports (all held open while choosing)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


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
                  ["--set", "objectStore.mode=bundled"],
                  ["--set", "operator.metrics.enabled=false"]):
        # Without the `helm test` hook: its Pod names a ServiceAccount a dry run does
        # not create (the install test runs the hook for real).
        rendered = _helm(helm_path, cluster, "template", "kf", str(CHART), "-n", namespace,
                         "--kube-version", "1.36.3", "--skip-tests", *GOOD, *extra)
        assert rendered.returncode == 0, rendered.stderr
        docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
        for doc in docs:                      # every container has requests, non-root
            spec = (doc.get("spec") or {}).get("template", {}).get("spec") or {}
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                assert container["resources"]["requests"], doc["metadata"]["name"]
                assert container["securityContext"]["runAsNonRoot"] is True
                assert container["securityContext"]["allowPrivilegeEscalation"] is False
        path = Path(f"/tmp/kflow-chart-{namespace}.yaml")
        path.write_text(rendered.stdout)
        applied = cluster.kubectl("apply", "--dry-run=server", "-f", str(path))
        assert applied.returncode == 0, applied.stderr
        kinds = {d["kind"] for d in docs}
        assert {"Deployment", "ServiceAccount", "ConfigMap"} <= kinds
        bundled = {"PersistentVolumeClaim", "NetworkPolicy", "Service", "Secret"}
        assert (bundled <= kinds) == (extra[-1:] == ["objectStore.mode=bundled"])
        assert ("ClusterRole" in kinds) == (extra[-1:] == ["operator.watchNamespaces={*}"])


@pytest.mark.parametrize(("values", "says"), [
    ([], "existingSecret"),                                 # external store needs its keys
    ([*GOOD, "--set", "operator.logLevel=loud"], "logLevel"),
    ([*GOOD, "--set", "objectStore.mode=s4"], "mode"),
    ([*GOOD, "--set", "steps.runAsUser=0"], "runAsUser"),
    ([*GOOD, "--set", "operator.resources.requests.cpu=lots"], "cpu"),
    ([*GOOD, "--set", "operator.watchNamespaces={Bad_NS}"], "watchNamespaces"),
    ([*GOOD, "--set", "surprise=1"], "surprise"),
    (["--set", "objectStore.mode=bundled", "--set", "objectStore.bundled.ports.s3=0"], "s3"),
    (["--set", "objectStore.mode=bundled", "--set", "objectStore.bundled.persistence.size=big"],
     "size"),
])
def test_bad_values_are_refused_with_the_field(helm_path: str, cluster: TestCluster,
                                               values: list[str], says: str) -> None:
    rendered = _helm(helm_path, cluster, "template", "kf", str(CHART), "--kube-version",
                     "1.36.3", *values)
    assert rendered.returncode != 0
    assert says in rendered.stderr and "values don't meet the specifications" in \
        rendered.stderr, rendered.stderr


def test_the_bundled_stores_ports_must_differ(helm_path: str, cluster: TestCluster) -> None:
    rendered = _helm(helm_path, cluster, "template", "kf", str(CHART), "--kube-version",
                     "1.36.3", "--set", "objectStore.mode=bundled",
                     "--set", "objectStore.bundled.ports.filer=8333")
    assert rendered.returncode != 0
    assert "objectStore.bundled.ports: filer and s3 are both 8333; every port must differ" \
        in rendered.stderr, rendered.stderr


def _user_env(cluster: TestCluster, namespace: str, credentials: Path) -> dict[str, str]:
    """A user's environment: this cluster, this namespace, the store's credentials file."""
    return {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "KFLOW_NAMESPACE": namespace,
            "KFLOW_S3_CREDENTIALS": str(credentials), "KFLOW_CONFIG": ""}


def _run_the_linear_flow(cluster: TestCluster, namespace: str, env: dict[str, str]) -> None:
    """Deploy the linear flow as a user does, apply its FlowRun with kubectl, see it
    succeed under the installed operator."""
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


def _helm_test_passes(helm_path: str, cluster: TestCluster, namespace: str) -> None:
    """`helm test`: a pod runs a tiny flow as a user of the namespace would (deleted
    once it succeeded, with its ServiceAccount and Role; kept when it fails)."""
    tested = _helm(helm_path, cluster, "test", "kflow", "-n", namespace, "--timeout", "240s")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "TEST SUITE:     kflow-test" in tested.stdout
    assert "Phase:          Succeeded" in tested.stdout
    flowruns = json.loads(cluster.kubectl("get", "fr", "-n", namespace, "-o", "json").stdout)
    helm_runs = [r for r in flowruns["items"]
                 if r["spec"]["flowRef"]["name"] == "helm-test-flow"]
    assert [r["status"]["phase"] for r in helm_runs] == ["Succeeded"]
    assert helm_runs[0]["metadata"]["annotations"]["kflow.dev/user"] == "helm-test"


def _no_kflow_workload(cluster: TestCluster, namespace: str) -> None:
    """After `helm uninstall`: none of the chart's pods or Deployments in the namespace
    (finished step pods stay with their FlowRuns)."""
    def chart_pods() -> list[str]:
        return [p.metadata.name for p in cluster.core.list_namespaced_pod(
            namespace, label_selector="app.kubernetes.io/part-of=kflow,"
            "app.kubernetes.io/managed-by=Helm").items]

    wait_for("no pod of the chart", lambda: not chart_pods(), timeout=90)
    apps = client.AppsV1Api(cluster.api)
    assert not [d for d in apps.list_namespaced_deployment(namespace).items
                if (d.metadata.labels or {}).get("app.kubernetes.io/part-of") == "kflow"]


def _the_run_reads_back(env: dict[str, str]) -> None:
    read = subprocess.run([sys.executable, "-c", (
        "from kflow import Run; r = Run('LinearFlow/linear-flow-1'); "
        "print(r.status, round(r.data.score, 3) < 1)")], env=env, capture_output=True,
        text=True, timeout=120, check=False)
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == ["Succeeded", "True"]


def _operator_pods(cluster: TestCluster, namespace: str) -> list[Any]:
    return [p for p in cluster.core.list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/component=operator").items
        if p.metadata.deletion_timestamp is None]


@pytest.fixture
def installed(helm_path: str, cluster: TestCluster, namespace: str,
              s3_credentials: Path) -> Iterator[list[str]]:
    metrics, health = _free_ports(2)
    ports = ["--set", f"operator.metrics.port={metrics}", "--set", f"operator.healthPort={health}"]
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

    env = _user_env(cluster, namespace, s3_credentials)
    _run_the_linear_flow(cluster, namespace, env)
    _helm_test_passes(helm_path, cluster, namespace)

    # The documented CRD upgrade (NOTES.txt, docs/install.md), then a changed value
    # rolls the operator (Recreate: one at a time).
    crds = cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                           str(CHART / "crds"))
    assert crds.returncode == 0, crds.stderr
    assert crds.stdout.count("serverside-applied") == len(list((CHART / "crds").glob("*")))
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
    _no_kflow_workload(cluster, namespace)
    _the_run_reads_back(env)           # the history stays readable from the store


STORE_PORTS = ("s3", "s3Grpc", "master", "masterGrpc", "volume", "volumeGrpc", "filer",
               "filerGrpc", "admin", "adminGrpc")


@pytest.fixture
def claimable_volume(cluster: TestCluster, namespace: str,
                     tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A hostPath PersistentVolume of a storage class of this test's own: (class, dir)."""
    storage_class, directory = f"kflow-e2e-{namespace}", tmp_path / "pv"
    cluster.core.create_persistent_volume(client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name=storage_class),
        spec=client.V1PersistentVolumeSpec(
            capacity={"storage": "1Gi"}, access_modes=["ReadWriteOnce"],
            storage_class_name=storage_class,
            persistent_volume_reclaim_policy="Retain",
            host_path=client.V1HostPathVolumeSource(path=str(directory)))))
    try:
        yield storage_class, directory
    finally:
        cluster.core.delete_persistent_volume(storage_class)


def test_the_bundled_store_install_run_uninstall_and_reinstall(
        helm_path: str, cluster: TestCluster, namespace: str,
        claimable_volume: tuple[str, Path], tmp_path: Path) -> None:
    """objectStore.mode=bundled: a SeaweedFS pod on a claim, keys generated into a
    Secret; the flow, `helm test` and the client all use it; uninstall keeps the claim
    and the keys, and a reinstall serves the same history."""
    storage_class, data_dir = claimable_volume
    *free, metrics, health = _free_ports(len(STORE_PORTS) + 2)
    ports = dict(zip(STORE_PORTS, free, strict=True))
    # The process node has no Service networking: pods reach the store on loopback.
    values = ["--set", "objectStore.mode=bundled",
              "--set", f"objectStore.bundled.endpoint=http://127.0.0.1:{ports['s3']}",
              "--set", f"objectStore.bundled.persistence.storageClass={storage_class}",
              "--set", "objectStore.bundled.persistence.size=1Gi",
              "--set", f"operator.metrics.port={metrics}",
              "--set", f"operator.healthPort={health}",
              *(x for name, port in ports.items()
                for x in ("--set", f"objectStore.bundled.ports.{name}={port}"))]

    def install() -> None:
        done = _helm(helm_path, cluster, "install", "kflow", str(CHART), "-n", namespace,
                     *values, "--wait", "--timeout", "180s")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "kubectl port-forward" in done.stdout and "kflow-s3-keys" in done.stdout

    try:
        install()
        claim = cluster.core.read_namespaced_persistent_volume_claim("kflow-s3", namespace)
        assert claim.status.phase == "Bound" and claim.spec.volume_name == storage_class
        keys = cluster.core.read_namespaced_secret("kflow-s3-keys", namespace)
        creds = s3.S3Credentials(
            endpoint=f"http://127.0.0.1:{ports['s3']}",
            access_key=base64.b64decode(keys.data["KFLOW_S3_ACCESS_KEY"]).decode(),
            secret_key=base64.b64decode(keys.data["KFLOW_S3_SECRET_KEY"]).decode())
        assert wait_for("the bundled store answering", lambda: s3.probe(creds) is None,
                        timeout=60)
        anonymous = s3.S3Credentials(creds.endpoint, "", "")
        assert s3.probe(anonymous) is not None                  # keys are required
        credentials = tmp_path / "store.json"
        s3.write_credentials_file(credentials, creds)
        env = _user_env(cluster, namespace, credentials)

        _run_the_linear_flow(cluster, namespace, env)
        _helm_test_passes(helm_path, cluster, namespace)
        # The data went to the claim's volume (`-dir=/data` became its directory).
        assert [p.name for p in data_dir.glob("*.dat")], sorted(os.listdir(data_dir))

        removed = _helm(helm_path, cluster, "uninstall", "kflow", "-n", namespace, "--wait")
        assert removed.returncode == 0, removed.stderr
        _no_kflow_workload(cluster, namespace)
        wait_for("the store gone", lambda: s3.probe(creds) is not None, timeout=30)
        kept = cluster.core.read_namespaced_persistent_volume_claim("kflow-s3", namespace)
        assert kept.metadata.deletion_timestamp is None
        assert cluster.core.read_namespaced_secret("kflow-s3-keys", namespace).data == \
            keys.data

        install()                                               # the same keys, the same data
        assert wait_for("the store back", lambda: s3.probe(creds) is None, timeout=60)
        _the_run_reads_back(env)
    finally:
        _helm(helm_path, cluster, "uninstall", "kflow", "-n", namespace, "--wait")
        cluster.core.delete_collection_namespaced_persistent_volume_claim(namespace)

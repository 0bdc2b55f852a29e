"""`python flow.py deploy` against a real cluster and a real S3 server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kflow import packaging
from kflow.cluster import s3
from tests.e2e.conftest import TestCluster
from tests.e2e.crds_helper import install_crds

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flows" / "train_flow.py"


def flow_cli(flow_file: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(flow_file), *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


@pytest.fixture
def env(cluster: TestCluster, namespace: str, s3_credentials: Path) -> dict[str, str]:
    install_crds(cluster)
    return {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "KFLOW_NAMESPACE": namespace,
            "KFLOW_S3_CREDENTIALS": str(s3_credentials), "KFLOW_CONFIG": "",
            "KFLOW_USER": "alice"}


def test_deploy_uploads_once_applies_in_place_and_bumps_generation_on_change(
        cluster: TestCluster, namespace: str, env: dict[str, str], tmp_path: Path) -> None:
    flow_file = tmp_path / "train_flow.py"
    shutil.copy(EXAMPLE, flow_file)
    # A package of its own (content-addressed: a store kept from an earlier test run
    # would already hold the example's).
    flow_file.write_text(flow_file.read_text() + f"\n# {namespace}\n")

    first = flow_cli(flow_file, env, "deploy")
    assert first.returncode == 0, first.stderr
    assert "uploaded" in first.stdout
    assert f"flow.kflow.dev/train-flow in namespace {namespace} created (generation 1)" in (
        first.stdout)

    # The package is in the bucket under its sha256, byte for byte.
    creds = s3.read_credentials_file(Path(env["KFLOW_S3_CREDENTIALS"]))
    package = packaging.build_package(flow_file)
    stored = s3.client(creds).get_object(creds.bucket, packaging.package_key(package.sha256))
    try:
        assert stored.read() == package.data
    finally:
        stored.close()
        stored.release_conn()

    again = flow_cli(flow_file, env, "deploy")
    assert again.returncode == 0, again.stderr
    assert "already in the object store" in again.stdout
    assert "unchanged (generation 1)" in again.stdout

    flow_file.write_text(flow_file.read_text().replace("@batch(memory=2048, cpu=1)",
                                                       "@batch(memory=4096, cpu=2)"))
    changed = flow_cli(flow_file, env, "deploy")
    assert changed.returncode == 0, changed.stderr
    assert "uploaded" in changed.stdout
    assert "updated (generation 2)" in changed.stdout

    got = cluster.kubectl("get", "flow", "train-flow", "-n", namespace, "-o", "json")
    assert got.returncode == 0, got.stderr
    body = json.loads(got.stdout)
    train = next(s for s in body["spec"]["steps"] if s["name"] == "train")
    assert train["resources"]["requests"] == {"cpu": "2", "memory": "4096Mi"}
    assert body["spec"]["codePackage"]["sha256"] != package.sha256
    assert body["metadata"]["labels"]["kflow.dev/flow"] == "train-flow"

    # Steps, schedule and last run are the operator's status summary (filled on acceptance).
    table = cluster.kubectl("get", "flows", "-n", namespace)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["NAME", "STEPS", "SCHEDULE", "LAST", "SCHEDULE", "LAST", "RUN",
                              "AGE"]
    assert row.split()[0] == "train-flow"


def test_kubectl_explain_teaches_the_flow_api(cluster: TestCluster, env: dict[str, str]) -> None:
    out = cluster.kubectl("explain", "flow.spec.steps")
    assert out.returncode == 0, out.stderr
    for field in ("foreach", "next", "resources", "retry", "timeoutSeconds"):
        assert field in out.stdout


def test_a_broken_flow_is_not_deployed(cluster: TestCluster, namespace: str,
                                       env: dict[str, str], tmp_path: Path) -> None:
    flow_file = tmp_path / "train_flow.py"
    flow_file.write_text(EXAMPLE.read_text().replace("self.next(self.choose)",
                                                     "self.next(self.chose)"))
    out = flow_cli(flow_file, env, "deploy")
    assert out.returncode == 1
    assert f"{flow_file}:" in out.stderr and "'chose'" in out.stderr and "choose" in out.stderr
    assert "nothing was run or deployed" in out.stderr
    listed = cluster.kubectl("get", "flows", "-n", namespace, "-o", "name")
    assert listed.stdout.strip() == ""


def test_deploy_without_object_store_settings_says_what_to_do(
        cluster: TestCluster, namespace: str, env: dict[str, str], tmp_path: Path) -> None:
    bare = {k: v for k, v in env.items() if not k.startswith("KFLOW_S3")}
    out = flow_cli(EXAMPLE, {**bare, "HOME": str(tmp_path)}, "deploy")
    assert out.returncode == 1
    assert "kflow configure" in out.stderr
    # Nothing half-written: no Flow without its code package.
    listed = cluster.kubectl("get", "flows", "-n", namespace, "-o", "name")
    assert listed.returncode == 0 and listed.stdout.strip() == ""

"""Fixtures of the end-to-end tests: one real cluster per session, one namespace per test.

By default the cluster is kflow's embedded one (`kflow cluster up` in a
temporary folder: real etcd, kube-apiserver, controller-manager, scheduler,
SeaweedFS and the process node). With `KFLOW_TEST_CLUSTER=kind` on a machine
with Docker, pytest-kind's `kind_cluster` is used instead (see README).
`KFLOW_TEST_CLUSTER_DIR` reuses (or keeps) an embedded cluster in that folder.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from kubernetes import client, config

from kflow.cluster import processes, s3, supervisor
from kflow.cluster.components import Layout

T = TypeVar("T")


@dataclass
class TestCluster:
    """A running cluster as the tests see it."""

    __test__ = False  # not a test class, despite its name

    kubeconfig: Path
    kubectl_path: str
    api: client.ApiClient
    core: client.CoreV1Api
    apps: client.AppsV1Api
    embedded_dir: Path | None  # the embedded cluster's folder; None on kind

    def kubectl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster (check=False; look at returncode)."""
        return subprocess.run(
            [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )


def _connect(kubeconfig: Path, kubectl_path: str, embedded_dir: Path | None) -> TestCluster:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    return TestCluster(kubeconfig, kubectl_path, api, client.CoreV1Api(api),
                       client.AppsV1Api(api), embedded_dir)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCluster]:
    if os.environ.get("KFLOW_TEST_CLUSTER", "embedded") == "kind":
        kind = request.getfixturevalue("kind_cluster")
        yield _connect(Path(kind.kubeconfig_path), str(kind.kubectl_path), None)
        return
    # A SIGTERM (CI's timeout, `kill`) must still run the teardown below: no orphans.
    signal.signal(signal.SIGTERM, _interrupt)
    keep = "KFLOW_TEST_CLUSTER_DIR" in os.environ
    directory = (Path(os.environ["KFLOW_TEST_CLUSTER_DIR"]) if keep
                 else tmp_path_factory.mktemp("kflow-cluster"))
    try:
        report = supervisor.up(directory)
        yield _connect(report.layout.kubeconfig, report.state.kubectl, report.layout.dir)
    finally:
        if not keep:
            survivors = supervisor.down(directory)
            assert not survivors, f"cluster processes survived `down`: {survivors}"


@pytest.fixture(scope="session")
def s3_credentials(cluster: TestCluster,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A credentials file of a real S3 server: the embedded cluster's, or on kind one
    started here on loopback (the SDK side of a deploy runs on this machine)."""
    if cluster.embedded_dir is not None:
        yield Layout(cluster.embedded_dir).s3_credentials
        return
    state = tmp_path_factory.mktemp("s3")
    ports = processes.free_ports(s3.PORT_NAMES)
    creds = s3.new_credentials(s3.endpoint_for(ports["s3"]))
    config_path = s3.write_config(state, creds)
    s3.prepare_data_dir(state / "data")
    record = processes.start(s3.server_argv(s3.find_weed(), state / "data", config_path, ports),
                             state / "weed.log", env=s3.server_env(os.environ, state / "data"),
                             cwd=state / "data")
    try:
        wait_for("the S3 server", lambda: s3.probe(creds) is None, timeout=60)
        s3.ensure_bucket(creds)
        s3.write_credentials_file(state / "s3-credentials.json", creds)
        yield state / "s3-credentials.json"
    finally:
        processes.stop(record)
        s3.remove_sockets(ports)


def wait_for(what: str, check: Callable[[], T], timeout: float = 60.0,
             interval: float = 0.2) -> T:
    """Poll `check()` until it returns a truthy value; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@pytest.fixture
def namespace(cluster: TestCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount), deleted after the test."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))

    def has_default_sa() -> bool:
        return any(sa.metadata.name == "default" for sa in
                   cluster.core.list_namespaced_service_account(name).items)

    wait_for(f"ServiceAccount {name}/default", has_default_sa, timeout=30)
    yield name
    cluster.core.delete_namespace(name)
    # Step pods carry kflow's finalizer, which only a running operator releases; the
    # test's operator is gone by now, so let them go as an admin would.
    for pod in cluster.core.list_namespaced_pod(name).items:
        if pod.metadata.finalizers:
            try:
                cluster.core.patch_namespaced_pod(pod.metadata.name, name,
                                                  {"metadata": {"finalizers": None}})
            except client.ApiException as exc:
                if exc.status != 404:
                    raise

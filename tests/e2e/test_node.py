"""The process node behaves like a kubelet: pods, logs, restarts, limits, deletion, API access.

Every pod uses `python:3.11-slim` with `python -c` so the same tests run on kind. Where
the process node differs (no mount namespaces), the pod code looks for the node's
`KFLOW_*` variables first and falls back to the real paths.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.conftest import TestCluster, wait_for

pytestmark = pytest.mark.e2e
IMAGE = "python:3.11-slim"
EMBEDDED = os.environ.get("KFLOW_TEST_CLUSTER", "embedded") != "kind"


# -- helpers -----------------------------------------------------------------------------
def core(cluster: TestCluster) -> Any:
    """The typed client, untyped here: the tests pass plain dict bodies."""
    return cluster.core


def apps(cluster: TestCluster) -> Any:
    return cluster.apps


def container(code: str, name: str = "main", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "command": ["python", "-c", code], **extra}


def make_pod(
    cluster: TestCluster,
    namespace: str,
    name: str,
    code: str,
    restart: str = "Never",
    containers: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 5,
            "containers": containers or [container(code)],
            **spec,
        },
    }
    core(cluster).create_namespaced_pod(namespace, body)


def pod(cluster: TestCluster, namespace: str, name: str) -> Any:
    return core(cluster).read_namespaced_pod(name, namespace)


def wait_phase(
    cluster: TestCluster, namespace: str, name: str, *phases: str, timeout: float = 60
) -> Any:
    def check() -> Any:
        current = pod(cluster, namespace, name)
        return current if current.status.phase in phases else None

    return wait_for(f"pod {name} in {phases}", check, timeout=timeout)


def logs(cluster: TestCluster, namespace: str, name: str, *args: str) -> str:
    result = cluster.kubectl("logs", "-n", namespace, name, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def terminated(p: Any, index: int = 0) -> Any:
    return p.status.container_statuses[index].state.terminated


def pod_gone(cluster: TestCluster, namespace: str, name: str) -> bool:
    try:
        pod(cluster, namespace, name)
    except client.ApiException as exc:
        return bool(exc.status == 404)
    return False


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


# -- the node ------------------------------------------------------------------------------
def test_node_is_ready_with_real_capacity(cluster: TestCluster) -> None:
    nodes: Any = core(cluster).list_node().items
    assert nodes
    node = nodes[0]
    ready = {c.type: c.status for c in node.status.conditions}
    assert ready["Ready"] == "True"
    assert ready["MemoryPressure"] == "False"
    assert int(node.status.allocatable["pods"]) > 0
    if EMBEDDED:
        assert node.status.capacity["cpu"] == str(os.cpu_count())
        meminfo = Path("/proc/meminfo").read_text()
        kib = re.search(r"MemTotal:\s+(\d+) kB", meminfo)
        assert kib and node.status.capacity["memory"] == f"{kib.group(1)}Ki"
        assert node.status.node_info.container_runtime_version == "process://kflow"
        assert node.metadata.labels["kubernetes.io/os"] == "linux"
        coordination: Any = client.CoordinationV1Api(cluster.api)
        lease = coordination.read_namespaced_lease(node.metadata.name, "kube-node-lease")
        assert lease.spec.lease_duration_seconds == 40
        assert lease.metadata.owner_references[0].name == node.metadata.name


def test_pod_succeeds_and_its_output_is_readable(cluster: TestCluster, namespace: str) -> None:
    code = "import sys; print('hello from a pod'); print('on stderr', file=sys.stderr)"
    make_pod(cluster, namespace, "hello", code)
    done = wait_phase(cluster, namespace, "hello", "Succeeded", "Failed")
    assert done.status.phase == "Succeeded"
    assert terminated(done).exit_code == 0
    assert terminated(done).reason == "Completed"
    assert done.status.pod_ip
    out = logs(cluster, namespace, "hello")
    assert "hello from a pod" in out
    assert "on stderr" in out


def test_a_pods_cpu_request_sets_its_weight_against_the_control_plane(
        cluster: TestCluster, namespace: str) -> None:
    code = "import os; print('nice', os.nice(0))"
    make_pod(cluster, namespace, "small", code, containers=[
        container(code, resources={"requests": {"cpu": "100m"}})])
    make_pod(cluster, namespace, "whole", code, containers=[
        container(code, resources={"requests": {"cpu": "1"}})])
    for name, nice in (("small", 10), ("whole", 0)):
        assert wait_phase(cluster, namespace, name, "Succeeded", "Failed").status.phase == \
            "Succeeded"
        assert logs(cluster, namespace, name).split() == ["nice", str(nice)]


def test_failing_pod_reports_exit_code_and_termination_message(
    cluster: TestCluster, namespace: str
) -> None:
    code = (
        "import os, sys\n"
        "path = os.environ.get('KFLOW_TERMINATION_MESSAGE_PATH', '/dev/termination-log')\n"
        "open(path, 'w').write('it went wrong')\n"
        "sys.exit(3)\n"
    )
    make_pod(cluster, namespace, "fails", code)
    done = wait_phase(cluster, namespace, "fails", "Succeeded", "Failed")
    assert done.status.phase == "Failed"
    state = terminated(done)
    assert state.exit_code == 3
    assert state.reason == "Error"
    assert state.message == "it went wrong"


def test_fallback_to_logs_on_error(cluster: TestCluster, namespace: str) -> None:
    code = "import sys; print('last words'); sys.exit(2)"
    spec = container(code, terminationMessagePolicy="FallbackToLogsOnError")
    make_pod(cluster, namespace, "fallback", "", containers=[spec])
    done = wait_phase(cluster, namespace, "fallback", "Failed")
    assert "last words" in terminated(done).message


def test_pod_too_big_for_the_node_stays_pending(cluster: TestCluster, namespace: str) -> None:
    spec = container("print(1)", resources={"requests": {"memory": "100Ti"}})
    make_pod(cluster, namespace, "huge", "", containers=[spec])

    def failed_scheduling() -> Any:
        events = core(cluster).list_namespaced_event(namespace).items
        return [e for e in events if e.reason == "FailedScheduling"]

    events = wait_for("FailedScheduling event", failed_scheduling, timeout=30)
    assert any("Insufficient memory" in (e.message or "") for e in events)
    assert pod(cluster, namespace, "huge").status.phase == "Pending"


def test_deployment_pod_runs(cluster: TestCluster, namespace: str) -> None:
    labels = {"app": "web"}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        container("import time; print('serving', flush=True); time.sleep(600)")
                    ],
                },
            },
        },
    }
    apps(cluster).create_namespaced_deployment(namespace, body)

    def available() -> bool:
        dep = apps(cluster).read_namespaced_deployment("web", namespace)
        return (dep.status.available_replicas or 0) >= 1

    wait_for("deployment web available", available, timeout=60)
    pods = core(cluster).list_namespaced_pod(namespace, label_selector="app=web").items
    assert pods and pods[0].status.phase == "Running"
    assert pods[0].status.container_statuses[0].ready


def test_deleting_a_running_pod_ends_its_process(cluster: TestCluster, namespace: str) -> None:
    # The process ignores SIGTERM, so only the SIGKILL after the grace period ends it.
    code = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('pid', os.getpid(), flush=True)\n"
        "time.sleep(600)\n"
    )
    make_pod(cluster, namespace, "stubborn", code, terminationGracePeriodSeconds=3)
    wait_phase(cluster, namespace, "stubborn", "Running")
    out = wait_for("pid in logs", lambda: logs(cluster, namespace, "stubborn").strip())
    pid = int(out.split()[1])
    started = time.monotonic()
    core(cluster).delete_namespaced_pod("stubborn", namespace)
    wait_for("pod object gone", lambda: pod_gone(cluster, namespace, "stubborn"), timeout=30)
    assert time.monotonic() - started >= 2.5, "the grace period was not honoured"
    if EMBEDDED:  # on the process node the container's pid is a host pid
        wait_for(f"process {pid} gone", lambda: process_gone(pid), timeout=10)


def test_owner_deletion_collects_dependents(cluster: TestCluster, namespace: str) -> None:
    owner = core(cluster).create_namespaced_config_map(
        namespace, {"metadata": {"name": "owner"}, "data": {"k": "v"}}
    )
    body = {
        "metadata": {
            "name": "dependent",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": owner.metadata.uid,
                }
            ],
        },
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [container("import time; time.sleep(600)")],
        },
    }
    core(cluster).create_namespaced_pod(namespace, body)
    wait_phase(cluster, namespace, "dependent", "Running")
    core(cluster).delete_namespaced_config_map("owner", namespace)
    wait_for("dependent pod collected", lambda: pod_gone(cluster, namespace, "dependent"), 60)


def test_memory_hog_is_oom_killed(cluster: TestCluster, namespace: str) -> None:
    code = "import time; hog = b'x' * (200 * 1024 * 1024); time.sleep(60)"
    spec = container(code, resources={"limits": {"memory": "64Mi"}})
    make_pod(cluster, namespace, "hog", "", containers=[spec])
    done = wait_phase(cluster, namespace, "hog", "Failed", "Succeeded", timeout=60)
    state = terminated(done)
    assert state.reason == "OOMKilled"
    assert state.exit_code == 137


def test_on_failure_restarts_and_previous_logs(cluster: TestCluster, namespace: str) -> None:
    code = (
        "import os, sys\n"
        "data = os.environ.get('KFLOW_VOLUME_DATA', '/data')\n"
        "marker = os.path.join(data, 'ran-once')\n"
        "if not os.path.exists(marker):\n"
        "    open(marker, 'w').close(); print('first run'); sys.exit(1)\n"
        "print('second run')\n"
    )
    spec = container(code, volumeMounts=[{"name": "data", "mountPath": "/data"}])
    make_pod(
        cluster,
        namespace,
        "retry",
        "",
        restart="OnFailure",
        containers=[spec],
        volumes=[{"name": "data", "emptyDir": {}}],
    )
    done = wait_phase(cluster, namespace, "retry", "Succeeded", "Failed", timeout=60)
    assert done.status.phase == "Succeeded"
    status = done.status.container_statuses[0]
    assert status.restart_count == 1
    assert status.last_state.terminated.exit_code == 1
    assert logs(cluster, namespace, "retry").strip() == "second run"
    assert logs(cluster, namespace, "retry", "--previous").strip() == "first run"


def test_logs_tail_timestamps_limit_and_follow(cluster: TestCluster, namespace: str) -> None:
    code = "import time\nfor i in range(8):\n    print('line', i, flush=True); time.sleep(0.4)\n"
    make_pod(cluster, namespace, "talker", code)
    wait_phase(cluster, namespace, "talker", "Running", "Succeeded")
    followed = cluster.kubectl("logs", "-f", "-n", namespace, "talker", timeout=60)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines() == [f"line {i}" for i in range(8)]
    wait_phase(cluster, namespace, "talker", "Succeeded")
    assert logs(cluster, namespace, "talker", "--tail=2").splitlines() == ["line 6", "line 7"]
    stamped = logs(cluster, namespace, "talker", "--timestamps", "--tail=1").strip()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z line 7$", stamped)
    assert logs(cluster, namespace, "talker", "--limit-bytes=6") == "line 0"


def test_active_deadline_fails_the_pod(cluster: TestCluster, namespace: str) -> None:
    make_pod(cluster, namespace, "slow", "import time; time.sleep(600)", activeDeadlineSeconds=2)
    done = wait_phase(cluster, namespace, "slow", "Failed", timeout=60)
    assert done.status.reason == "DeadlineExceeded"
    assert terminated(done) is not None


def test_env_from_configmap_secret_fieldref_and_expansion(
    cluster: TestCluster, namespace: str
) -> None:
    core(cluster).create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"COLOR": "blue", "SIZE": "9"}}
    )
    core(cluster).create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}
    )
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
        {
            "name": "COLOR_ONE",
            "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "COLOR"}},
        },
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {
            "name": "MISSING",
            "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": True}},
        },
        {"name": "GREETING", "value": "$(POD_NAME) in $(POD_NS) likes $(CFG_COLOR), $$(POD_NAME)"},
    ]
    code = (
        "import json, os, sys\n"
        "keys = ['POD_NAME', 'POD_NS', 'TEAM', 'COLOR_ONE', 'PASSWORD', 'MISSING',\n"
        "        'GREETING', 'CFG_SIZE']\n"
        "print(json.dumps({k: os.environ.get(k) for k in keys}))\n"
        "print('ARGS', sys.argv[1:])\n"
    )
    spec = container(
        code,
        args=["$(CFG_SIZE)", "$(UNDEFINED)"],
        env=env,
        envFrom=[{"prefix": "CFG_", "configMapRef": {"name": "settings"}}],
    )
    body = {
        "metadata": {"name": "envs", "labels": {"team": "ml"}},
        "spec": {"restartPolicy": "Never", "containers": [spec]},
    }
    core(cluster).create_namespaced_pod(namespace, body)
    wait_phase(cluster, namespace, "envs", "Succeeded")
    first, second = logs(cluster, namespace, "envs").splitlines()[:2]
    values = json.loads(first)
    assert values == {
        "POD_NAME": "envs",
        "POD_NS": namespace,
        "TEAM": "ml",
        "COLOR_ONE": "blue",
        "PASSWORD": "s3cret",
        "MISSING": None,
        "GREETING": f"envs in {namespace} likes blue, $(POD_NAME)",
        "CFG_SIZE": "9",
    }
    assert second == "ARGS ['9', '$(UNDEFINED)']"


LIST_PODS = """
import base64, json, os, ssl, urllib.error, urllib.request
ns = os.environ['POD_NS']
if os.environ.get('KUBECONFIG'):
    cfg = json.load(open(os.environ['KUBECONFIG']))
    cluster = cfg['clusters'][0]['cluster']
    server = cluster['server']
    ca = base64.b64decode(cluster['certificate-authority-data']).decode()
    token = open(cfg['users'][0]['user']['tokenFile']).read()
else:
    sa = '/var/run/secrets/kubernetes.io/serviceaccount'
    host, port = os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT']
    server = f'https://{host}:{port}'
    ca = open(sa + '/ca.crt').read()
    token = open(sa + '/token').read()
request = urllib.request.Request(
    f'{server}/api/v1/namespaces/{ns}/pods', headers={'Authorization': 'Bearer ' + token})
try:
    answer = urllib.request.urlopen(request, context=ssl.create_default_context(cadata=ca))
    print('STATUS', answer.status)
except urllib.error.HTTPError as exc:
    print('STATUS', exc.code)
"""


def test_pod_credentials_follow_rbac(cluster: TestCluster, namespace: str) -> None:
    rbac: Any = client.RbacAuthorizationV1Api(cluster.api)
    for name in ("lister", "nobody"):
        core(cluster).create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "lister-reads-pods"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "lister", "namespace": namespace}],
        },
    )
    env = [{"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    for account in ("lister", "nobody"):
        make_pod(
            cluster,
            namespace,
            account,
            "",
            containers=[container(LIST_PODS, env=env)],
            serviceAccountName=account,
        )
    for account, expected in (("lister", "STATUS 200"), ("nobody", "STATUS 403")):
        wait_phase(cluster, namespace, account, "Succeeded", "Failed")
        assert logs(cluster, namespace, account).strip() == expected


def test_unmapped_image_without_command_explains_itself(
    cluster: TestCluster, namespace: str
) -> None:
    if not EMBEDDED:
        pytest.skip("images carry no filesystem only on the process node")
    body = {
        "metadata": {"name": "bare"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox:1.36"}],
        },
    }
    core(cluster).create_namespaced_pod(namespace, body)

    def waiting() -> Any:
        statuses = pod(cluster, namespace, "bare").status.container_statuses or []
        state = statuses[0].state.waiting if statuses else None
        return state if state and state.reason == "CreateContainerConfigError" else None

    state = wait_for("CreateContainerConfigError", waiting, timeout=30)
    assert "command" in state.message and "image map" in state.message

"""Step pod manifests: golden files for the example Flows, and each rule on its own.

Regenerate the golden pods with ``KFLOW_REGENERATE=1`` (then review the diff).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from kflow import api_types
from kflow.planning.model import StartTask, TaskId
from kflow_operator import naming
from kflow_operator.podspec import PodConfig, PodSpecError, build_pod

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "fixtures" / "golden" / "pods"
FLOWS = {
    "example": ROOT / "examples" / "flow.yaml",
    "train_flow": ROOT / "tests" / "fixtures" / "golden" / "manifests" / "train_flow.yaml",
    "branch_flow": ROOT / "tests" / "fixtures" / "golden" / "manifests" / "branch_flow.yaml",
}
RUN_UID = "0f2c9a1e-77aa-4b1e-9c33-5d1e2f3a4b5c"
READY_AT = datetime(2026, 11, 29, 10, 0, 0, 120_456, tzinfo=UTC)
CREATED_AT = datetime(2026, 11, 29, 10, 0, 0, 250_999, tzinfo=UTC)


def load_flow(key: str) -> dict[str, Any]:
    flow: dict[str, Any] = yaml.safe_load(FLOWS[key].read_text())
    flow["metadata"].setdefault("namespace", "ml")
    return flow


def make_run(flow: dict[str, Any], name: str = "run-1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": api_types.API_VERSION,
        "kind": "FlowRun",
        "metadata": {"name": name, "namespace": flow["metadata"]["namespace"], "uid": RUN_UID,
                     "annotations": {"kflow.dev/user": "alice"}},
        "spec": {"flowRef": {"name": flow["metadata"]["name"]},
                 "parameters": {"alpha": "0.7", "mode": "full"}, "tags": ["exp-3"], **spec},
    }


def start(step: str, task: str = "0", attempt: int = 0, last: int = 0) -> StartTask:
    return StartTask(TaskId(step, task), attempt, last)


def all_pods(key: str) -> list[dict[str, Any]]:
    flow = load_flow(key)
    run = make_run(flow)
    pods = []
    for step in flow["spec"]["steps"]:
        retries = (step.get("retry") or {}).get("times", 0)
        task = start(step["name"], "3" if step["name"] == "train" else "0",
                     1 if retries else 0, retries)
        if step["name"] != flow["spec"].get("start"):      # the start step has no parents
            task = dataclasses.replace(task, ready_at=READY_AT)
        pods.append(build_pod(flow, run, task, PodConfig(), created_at=CREATED_AT))
    return pods


@pytest.mark.parametrize("key", sorted(FLOWS))
def test_pods_match_golden(key: str) -> None:
    pods = all_pods(key)
    golden = GOLDEN / f"{key}.yaml"
    if os.environ.get("KFLOW_REGENERATE") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(yaml.safe_dump_all(pods, sort_keys=False))
    assert golden.exists(), f"no golden file {golden}: run with KFLOW_REGENERATE=1 once"
    assert pods == list(yaml.safe_load_all(golden.read_text()))


def test_deterministic_and_inputs_untouched() -> None:
    flow = load_flow("example")
    run = make_run(flow)
    before = (copy.deepcopy(flow), copy.deepcopy(run))
    first = build_pod(flow, run, start("train", "3"), PodConfig())
    assert first == build_pod(flow, run, start("train", "3"), PodConfig())
    assert (flow, run) == before


def test_train_step_pod() -> None:
    flow = load_flow("example")
    pod = build_pod(flow, make_run(flow), start("train", "3", 1, 3), PodConfig())
    meta, spec = pod["metadata"], pod["spec"]
    container = spec["containers"][0]
    assert meta["name"] == "run-1-train-3-1"
    assert meta["labels"]["team"] == "fraud"
    assert meta["labels"]["kflow.dev/task"] == "3"
    assert meta["annotations"][api_types.ANNOTATION_SAFE_TO_EVICT] == "false"
    assert meta["annotations"]["kflow.dev/code-sha256"] == flow["spec"]["codePackage"]["sha256"]
    assert meta["ownerReferences"] == [{
        "apiVersion": "kflow.dev/v1alpha1", "kind": "FlowRun", "name": "run-1", "uid": RUN_UID,
        "controller": True, "blockOwnerDeletion": True}]
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 3600 + 120
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["serviceAccountName"] == "kflow-step"
    assert spec["nodeSelector"] == {"kflow.dev/pool": "gpu"}
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1000,
                                       "runAsGroup": 1000,
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "60000Mi", "ephemeral-storage": "10240Mi"},
        "limits": {"memory": "60000Mi", "nvidia.com/gpu": "1"}}
    assert container["envFrom"] == [{"secretRef": {"name": "wandb-credentials"}},
                                    {"secretRef": {"name": "kflow-s3"}}]
    assert {"name": "TOKENIZERS_PARALLELISM", "value": "false"} in container["env"]
    assert {"name": "KFLOW_USER", "value": "alice"} in container["env"]
    assert container["command"] == ["python", "-m", "kflow.runner"]
    args = container["args"]
    assert args[args.index("--run-id") + 1] == "run-1-0f2c9a1e"
    assert args[args.index("--max-user-code-retries") + 1] == "3"
    assert args[args.index("--attempt") + 1] == "1"
    assert "--param" not in args                       # parameters go to the start step only
    assert args[args.index("--tag") + 1] == "exp-3"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_start_step_gets_the_parameters() -> None:
    flow = load_flow("example")
    args = build_pod(flow, make_run(flow), start("start"), PodConfig())["spec"]["containers"][0][
        "args"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--param"] == ["alpha=0.7",
                                                                          "mode=full"]


def test_defaults_apply_per_resource_the_step_says_nothing_about() -> None:
    flow = load_flow("example")
    run = make_run(flow)
    config = PodConfig(default_limits={"memory": "1Gi"})
    plain = build_pod(flow, run, start("join"), config)["spec"]["containers"][0]["resources"]
    assert plain == {"requests": {"cpu": "100m", "memory": "256Mi"},
                     "limits": {"memory": "1Gi"}}
    train = build_pod(flow, run, start("train", "1"), config)["spec"]["containers"][0]
    assert train["resources"]["limits"] == {"memory": "60000Mi", "nvidia.com/gpu": "1"}
    assert "cpu" in train["resources"]["requests"]     # the step's own 2, not the default
    assert train["resources"]["requests"]["cpu"] == "2"


def test_step_settings_never_override_kflows_own() -> None:
    flow = load_flow("example")
    train = next(s for s in flow["spec"]["steps"] if s["name"] == "train")
    train["kubernetes"]["labels"] = {"kflow.dev/run": "evil", "app.kubernetes.io/part-of": "x",
                                     "team": "fraud"}
    train["kubernetes"]["annotations"] = {api_types.ANNOTATION_SAFE_TO_EVICT: "true",
                                          "kflow.dev/stop-reason": "Stopped", "note": "hi",
                                          "kflow.dev/ready-at": "2000-01-01T00:00:00Z",
                                          "kflow.dev/created-at": "2000-01-01T00:00:00Z"}
    train["environment"] = {"KFLOW_S3_ENDPOINT": "http://evil", "KFLOW_USER": "mallory",
                            "KFLOW_TASK_READY_AT": "x", "OK": "1"}
    train["kubernetes"]["serviceAccount"] = "trainer"
    pod = build_pod(flow, make_run(flow), start("train", "2"), PodConfig())
    meta = pod["metadata"]
    assert meta["labels"]["kflow.dev/run"] == "run-1"
    assert meta["labels"]["app.kubernetes.io/part-of"] == "kflow"
    assert meta["annotations"][api_types.ANNOTATION_SAFE_TO_EVICT] == "false"
    assert "kflow.dev/stop-reason" not in meta["annotations"]
    assert meta["annotations"]["note"] == "hi"
    assert "kflow.dev/ready-at" not in meta["annotations"]      # no ready_at, no created_at
    assert "kflow.dev/created-at" not in meta["annotations"]
    env = pod["spec"]["containers"][0]["env"]
    assert env[:2] == [{"name": "OK", "value": "1"}, {"name": "KFLOW_USER", "value": "alice"}]
    assert [e["name"] for e in env[2:]] == ["KFLOW_TASK_READY_AT", "KFLOW_TASK_CREATED_AT"]
    assert pod["spec"]["serviceAccountName"] == "trainer"


def test_no_credentials_in_the_manifest() -> None:
    flow = load_flow("example")
    text = yaml.safe_dump(build_pod(flow, make_run(flow), start("end"), PodConfig()))
    assert "SECRET_KEY" not in text and "ACCESS_KEY" not in text


def test_step_image_overrides_flow_image_and_config_knobs() -> None:
    flow = load_flow("example")
    config = PodConfig(run_as_user=None, run_as_group=None, code_cache_dir="/cache",
                       image_pull_policy="IfNotPresent", s3_secret_name="s3")
    pod = build_pod(flow, make_run(flow), start("full"), config, origin_run_id="old-12345678")
    container = pod["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/kflow/kflow-runner:0.1.0-cuda"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert pod["spec"]["securityContext"] == {"runAsNonRoot": True,
                                              "seccompProfile": {"type": "RuntimeDefault"}}
    assert {"name": "KFLOW_CODE_CACHE", "value": "/cache"} in container["env"]
    assert container["envFrom"] == [{"secretRef": {"name": "s3"}}]
    assert container["args"][-2:] == ["--origin-run-id", "old-12345678"]
    assert "activeDeadlineSeconds" not in pod["spec"]
    # The Helm chart's split: endpoint, bucket, region from a ConfigMap, keys from the
    # Secret, which comes last (it wins).
    split = build_pod(flow, make_run(flow), start("full"),
                      dataclasses.replace(config, s3_config_name="s3-where"))
    assert split["spec"]["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": "s3-where"}}, {"secretRef": {"name": "s3"}}]


def test_long_and_nested_identities_stay_valid() -> None:
    flow = load_flow("example")
    run = make_run(flow, name="r" * 63)
    task = ".".join(["1234"] * 20)
    pod = build_pod(flow, run, start("train", task), PodConfig())
    assert len(pod["metadata"]["name"]) <= 63
    assert all(len(v) <= 63 for v in pod["metadata"]["labels"].values())
    assert pod["metadata"]["annotations"][naming.ANNOTATION_TASK] == task


def test_errors() -> None:
    flow = load_flow("example")
    run = make_run(flow)
    with pytest.raises(PodSpecError, match="no step 'nope'"):
        build_pod(flow, run, start("nope"), PodConfig())
    pinned = {**run, "status": {"flow": {"codeSha256": "a" * 64}}}
    with pytest.raises(PodSpecError, match="pinned"):
        build_pod(flow, pinned, start("start"), PodConfig())
    no_uid = copy.deepcopy(run)
    del no_uid["metadata"]["uid"]
    with pytest.raises(PodSpecError, match="uid"):
        build_pod(flow, no_uid, start("start"), PodConfig())


def test_timing_annotations_have_milliseconds_and_reach_the_runner() -> None:
    flow = load_flow("example")
    task = dataclasses.replace(start("train", "2"), ready_at=READY_AT)
    pod = build_pod(flow, make_run(flow), task, PodConfig(), created_at=CREATED_AT)
    annotations = pod["metadata"]["annotations"]
    assert annotations["kflow.dev/ready-at"] == "2026-11-29T10:00:00.120Z"
    assert annotations["kflow.dev/created-at"] == "2026-11-29T10:00:00.250Z"
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["KFLOW_TASK_READY_AT"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['kflow.dev/ready-at']"
    assert env["KFLOW_TASK_CREATED_AT"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['kflow.dev/created-at']"

"""The reconciler against an in-memory `KubeApi` (no cluster): pinning, validation,
idempotence. The real API is covered by tests/e2e/test_operator.py."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from kflow.planning.model import Event
from kflow_operator.flows import FlowReconciler
from kflow_operator.metrics import OperatorMetrics
from kflow_operator.observe import owner_uid
from kflow_operator.podspec import ANNOTATION_CODE_SHA256, ANNOTATION_STOP_REASON
from kflow_operator.reconcile import Reconciler
from kflow_operator.settings import OperatorConfig

ROOT = Path(__file__).resolve().parents[3]
FLOW = ROOT / "tests" / "fixtures" / "golden" / "manifests" / "branch_flow.yaml"
NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
NS = "ml"


class FakeKube:
    """`KubeApi` over dicts; records writes."""

    def __init__(self) -> None:
        self.flowruns: dict[str, dict[str, Any]] = {}
        self.flows: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.configmaps: dict[str, dict[str, Any]] = {}
        self.events: list[Event] = []
        self.status_writes = 0
        self.flow_status_writes = 0
        self.released: list[str] = []

    def get_flowrun(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.flowruns.get(name))

    def get_flow(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.flows.get(name))

    def patch_flowrun_status(self, namespace: str, name: str,
                             status: Mapping[str, Any]) -> None:
        self.status_writes += 1
        current = self.flowruns[name].setdefault("status", {})
        for key, value in status.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = copy.deepcopy(value)

    def patch_flowrun_labels(self, namespace: str, name: str,
                             labels: Mapping[str, str]) -> None:
        self.flowruns[name]["metadata"].setdefault("labels", {}).update(labels)

    def list_flowruns(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        key, _, value = selector.partition("=")
        return [copy.deepcopy(r) for r in self.flowruns.values()
                if (r["metadata"].get("labels") or {}).get(key) == value]

    def create_flowrun(self, body: Mapping[str, Any]) -> bool:
        name = body["metadata"]["name"]
        if name in self.flowruns:
            return False
        self.flowruns[name] = copy.deepcopy(dict(body))
        self.flowruns[name]["metadata"].update(uid=f"uid-{name}", generation=1,
                                               creationTimestamp="2026-11-29T10:00:00Z")
        return True

    def patch_flowrun(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        run = self.flowruns.get(name)
        if run is None:
            return
        for part, values in patch.items():
            for key, value in values.items():
                if isinstance(value, Mapping):
                    run.setdefault(part, {}).setdefault(key, {}).update(value)
                else:
                    run.setdefault(part, {})[key] = value

    def list_flows(self, namespace: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(f) for f in self.flows.values()]

    def patch_flow_status(self, namespace: str, name: str,
                          status: Mapping[str, Any]) -> None:
        self.flow_status_writes += 1
        current = self.flows[name].setdefault("status", {})
        for key, value in status.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = copy.deepcopy(value)

    def list_pods(self, namespace: str, selector: str,
                  owner: str | None) -> list[dict[str, Any]]:
        return [copy.deepcopy(p) for p in self.pods.values()
                if owner is None or owner_uid(p) == owner]

    def release_pod(self, pod: Mapping[str, Any]) -> None:
        self.released.append(pod["metadata"]["name"])
        self.pods.pop(pod["metadata"]["name"], None)     # its deletion completes

    def create_pod(self, pod: Mapping[str, Any]) -> bool:
        name = pod["metadata"]["name"]
        if name in self.pods:
            return False
        self.pods[name] = {**copy.deepcopy(dict(pod)), "status": {"phase": "Pending"}}
        self.pods[name]["metadata"]["creationTimestamp"] = "2026-11-29T10:00:00Z"
        return True

    def delete_pod(self, namespace: str, name: str, reason: str) -> None:
        pod = self.pods.get(name)
        if pod is not None:
            pod["metadata"].setdefault("annotations", {})[ANNOTATION_STOP_REASON] = reason
            pod["metadata"]["deletionTimestamp"] = "2026-11-29T10:00:00Z"

    def delete_flowrun(self, namespace: str, name: str, uid: str) -> None:
        if self.flowruns.get(name, {}).get("metadata", {}).get("uid") == uid:
            del self.flowruns[name]

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.configmaps.get(name))

    def create_configmap(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self.configmaps.setdefault(name, copy.deepcopy(dict(body)))
        return copy.deepcopy(self.configmaps[name])

    def create_event(self, run: Mapping[str, Any], event: Event) -> None:
        self.events.append(event)

    # -- test helpers -------------------------------------------------------------------

    def succeed(self, step: str) -> None:
        for pod in self.pods.values():
            if pod["metadata"]["annotations"]["kflow.dev/step"] == step:
                pod["status"] = {"phase": "Succeeded", "containerStatuses": [{
                    "name": "step", "state": {"terminated": {
                        "exitCode": 0, "message": json.dumps({"ok": True}),
                        "startedAt": "2026-11-29T10:00:01Z",
                        "finishedAt": "2026-11-29T10:00:02Z"}}}]}


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    flow = yaml.safe_load(FLOW.read_text())
    flow["metadata"].update({"generation": 1, "uid": "flow-uid"})
    fake.flows["branch-flow"] = flow
    return fake


def add_run(kube: FakeKube, name: str = "run-1", flow: str = "branch-flow",
            parameters: dict[str, str] | None = None) -> None:
    kube.flowruns[name] = {
        "apiVersion": "kflow.dev/v1alpha1", "kind": "FlowRun",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1},
        "spec": {"flowRef": {"name": flow}, "parameters": parameters or {}},
    }


def reconciler(kube: FakeKube) -> Reconciler:
    return Reconciler(kube, OperatorConfig(), clock=lambda: NOW)


def test_first_reconcile_pins_the_flow_and_starts_the_start_step(kube: FakeKube) -> None:
    add_run(kube)
    reconciler(kube).reconcile(NS, "run-1")
    assert list(kube.pods) == ["run-1-start-0-0"]
    status = kube.flowruns["run-1"]["status"]
    sha = kube.flows["branch-flow"]["spec"]["codePackage"]["sha256"]
    assert status["flow"] == {"generation": 1, "codeSha256": sha}
    assert status["phase"] in ("Pending", "Running")
    snapshot = kube.configmaps["run-1-flow"]
    assert snapshot["metadata"]["ownerReferences"][0]["uid"] == "uid-run-1"
    assert kube.flowruns["run-1"]["metadata"]["labels"]["kflow.dev/flow"] == "branch-flow"

    reconciler(kube).reconcile(NS, "run-1")            # sees its pod (the step's startedAt)
    writes, events = kube.status_writes, len(kube.events)
    reconciler(kube).reconcile(NS, "run-1")            # nothing changed: nothing done
    assert (list(kube.pods), kube.status_writes, len(kube.events)) == (
        ["run-1-start-0-0"], writes, events)


def test_a_redeploy_mid_run_does_not_change_the_runs_code(kube: FakeKube) -> None:
    add_run(kube)
    shell = reconciler(kube)
    shell.reconcile(NS, "run-1")
    old_sha = kube.flows["branch-flow"]["spec"]["codePackage"]["sha256"]
    kube.flows["branch-flow"]["spec"]["codePackage"]["sha256"] = "f" * 64
    kube.flows["branch-flow"]["metadata"]["generation"] = 2
    kube.succeed("start")
    reconciler(kube).reconcile(NS, "run-1")            # a fresh process: reads the ConfigMap
    started = {p["metadata"]["annotations"]["kflow.dev/step"]: p for p in kube.pods.values()}
    assert set(started) == {"start", "counts", "sums"}
    assert {p["metadata"]["annotations"][ANNOTATION_CODE_SHA256]
            for p in started.values()} == {old_sha}
    assert kube.flowruns["run-1"]["status"]["flow"]["generation"] == 1


@pytest.mark.parametrize(("flow", "parameters", "accepted", "text"), [
    ("nope", {}, "FlowNotFound", "Flow 'nope' not found in namespace ml"),
    ("branch-flow", {"rows": "ten"}, "InvalidParameter", "'ten' is not a whole number"),
    ("branch-flow", {"rowz": "1"}, "InvalidParameter", "rowz is not a parameter"),
])
def test_invalid_runs_fail_once_with_invalid_spec(kube: FakeKube, flow: str,
                                                  parameters: dict[str, str], accepted: str,
                                                  text: str) -> None:
    add_run(kube, flow=flow, parameters=parameters)
    reconciler(kube).reconcile(NS, "run-1")
    status = kube.flowruns["run-1"]["status"]
    assert status["phase"] == "Failed"
    assert status["failure"]["reason"] == "InvalidSpec" and text in status["failure"]["message"]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {"Accepted": ("False", accepted), "Progressing": ("False", "Failed"),
                          "Succeeded": ("False", "InvalidSpec")}
    assert [e.reason for e in kube.events] == ["InvalidSpec"]
    assert kube.pods == {}

    writes = kube.status_writes
    reconciler(kube).reconcile(NS, "run-1")
    assert (kube.status_writes, len(kube.events)) == (writes, 1)


def test_a_gone_run_is_nothing_to_do(kube: FakeKube) -> None:
    assert reconciler(kube).reconcile(NS, "missing") is None
    assert kube.status_writes == 0


def _fail(kube: FakeKube, step: str) -> None:
    for pod in kube.pods.values():
        if pod["metadata"]["annotations"]["kflow.dev/step"] == step:
            pod["status"] = {"phase": "Failed", "containerStatuses": [{
                "name": "step", "state": {"terminated": {
                    "exitCode": 1, "message": json.dumps({"ok": False}),
                    "startedAt": "2026-11-29T10:00:01Z",
                    "finishedAt": "2026-11-29T10:00:02Z"}}}]}


def test_deleted_pods_stay_until_the_run_no_longer_needs_them(kube: FakeKube) -> None:
    add_run(kube)
    shell = reconciler(kube)
    shell.reconcile(NS, "run-1")
    start = kube.pods["run-1-start-0-0"]
    assert start["metadata"]["finalizers"] == ["kflow.dev/step"]
    kube.succeed("start")
    shell.reconcile(NS, "run-1")
    kube.delete_pod(NS, "run-1-start-0-0", "kubectl")   # a user deletes a finished pod
    shell.reconcile(NS, "run-1")
    assert kube.released == []                          # the run still needs its result
    assert not any(p["metadata"]["annotations"]["kflow.dev/step"] == "start"
                   and p["metadata"]["name"] != "run-1-start-0-0" for p in kube.pods.values())
    _fail(kube, "counts")
    kube.delete_pod(NS, "run-1-counts-0-0", "kubectl")
    shell.reconcile(NS, "run-1")                        # fails the run (no retries)
    assert kube.flowruns["run-1"]["status"]["phase"] == "Failed"
    assert sorted(kube.released) == ["run-1-counts-0-0", "run-1-start-0-0"]
    assert "run-1-sums-0-0" in kube.pods                # not deleted: kept for a resume


def test_the_pods_of_a_gone_run_are_released(kube: FakeKube) -> None:
    add_run(kube)
    reconciler(kube).reconcile(NS, "run-1")
    del kube.flowruns["run-1"]
    kube.delete_pod(NS, "run-1-start-0-0", "garbage collection")
    reconciler(kube).reconcile(NS, "run-1")
    assert kube.released == ["run-1-start-0-0"]


def test_a_run_changing_phase_updates_its_flows_last_run(kube: FakeKube) -> None:
    flows = FlowReconciler(kube, clock=lambda: NOW)
    flows.reconcile(NS, "branch-flow")
    status = kube.flows["branch-flow"]["status"]
    assert (status["stepCount"], status["conditions"][0]["status"]) == (5, "True")
    assert "lastRun" not in status
    add_run(kube)
    woken: list[tuple[str, str]] = []
    metrics = OperatorMetrics(started=datetime(2026, 1, 1, tzinfo=UTC))
    runs = Reconciler(kube, OperatorConfig(), clock=lambda: NOW, metrics=metrics,
                      flow_changed=lambda ns, flow: woken.append((ns, flow)))
    runs.reconcile(NS, "run-1")
    assert woken == [(NS, "branch-flow")]
    flows.reconcile(NS, "branch-flow")
    phase = kube.flowruns["run-1"]["status"]["phase"]
    assert kube.flows["branch-flow"]["status"]["lastRun"]["name"] == "run-1"
    assert kube.flows["branch-flow"]["status"]["lastRun"]["phase"] == phase
    assert metrics.tasks_started.value() == 1
    assert metrics.flowruns.value(phase=phase) == 1

    writes = kube.flow_status_writes
    flows.reconcile(NS, "branch-flow")                  # nothing changed: no write
    assert kube.flow_status_writes == writes


def test_a_finished_run_is_deleted_once_its_ttl_has_passed(kube: FakeKube) -> None:
    add_run(kube)
    kube.flowruns["run-1"]["spec"]["ttlSecondsAfterFinished"] = 30
    clock = [NOW]
    shell = Reconciler(kube, OperatorConfig(), clock=lambda: clock[0])
    shell.reconcile(NS, "run-1")
    for step in ("start", "counts", "sums", "merge", "end"):
        kube.succeed(step)
        shell.reconcile(NS, "run-1")
    assert kube.flowruns["run-1"]["status"]["phase"] == "Succeeded"
    assert shell.reconcile(NS, "run-1") == pytest.approx(30, abs=1)
    clock[0] += timedelta(seconds=31)
    assert shell.reconcile(NS, "run-1") is None
    assert "run-1" not in kube.flowruns


def test_an_invalid_run_is_deleted_after_its_ttl_too(kube: FakeKube) -> None:
    add_run(kube, flow="nope")
    kube.flowruns["run-1"]["spec"]["ttlSecondsAfterFinished"] = 10
    clock = [NOW]
    shell = Reconciler(kube, OperatorConfig(), clock=lambda: clock[0])
    assert shell.reconcile(NS, "run-1") == pytest.approx(10, abs=1)
    assert kube.flowruns["run-1"]["status"]["failure"]["reason"] == "InvalidSpec"
    clock[0] += timedelta(seconds=5)
    assert shell.reconcile(NS, "run-1") == pytest.approx(5, abs=1)
    clock[0] += timedelta(seconds=6)
    assert shell.reconcile(NS, "run-1") is None and "run-1" not in kube.flowruns


def test_pods_record_when_their_task_was_ready_and_the_status_sums_up_overhead(
        kube: FakeKube) -> None:
    add_run(kube)
    now = [NOW + timedelta(milliseconds=5)]
    metrics = OperatorMetrics(started=datetime(2026, 1, 1, tzinfo=UTC))
    runs = Reconciler(kube, OperatorConfig(), clock=lambda: now[0], metrics=metrics)
    runs.reconcile(NS, "run-1")
    start = kube.pods["run-1-start-0-0"]["metadata"]["annotations"]
    assert start["kflow.dev/created-at"] == "2026-11-29T10:00:00.005Z"
    assert "kflow.dev/ready-at" not in start                       # the start has no parents
    clock = {"startedAt": (NOW + timedelta(milliseconds=400)).timestamp(),
             "userStartedAt": (NOW + timedelta(milliseconds=600)).timestamp(),
             "userFinishedAt": (NOW + timedelta(milliseconds=1600)).timestamp(),
             "finishedAt": (NOW + timedelta(milliseconds=1700)).timestamp()}
    kube.succeed("start")
    kube.pods["run-1-start-0-0"]["status"]["containerStatuses"][0]["state"]["terminated"][
        "message"] = json.dumps({"ok": True, "at": clock})
    now[0] = NOW + timedelta(milliseconds=1950)
    runs.reconcile(NS, "run-1")
    children = [p["metadata"]["annotations"] for n, p in kube.pods.items()
                if n != "run-1-start-0-0"]
    assert children and all(a["kflow.dev/ready-at"] == "2026-11-29T10:00:01.700Z"
                            and a["kflow.dev/created-at"] == "2026-11-29T10:00:01.950Z"
                            for a in children)
    assert (f"kflow_task_transition_seconds_count {len(children)}"
            in metrics.registry.exposition())
    status = kube.flowruns["run-1"]["status"]
    overhead = {s["name"]: s for s in status["steps"]}["start"]["overhead"]
    assert overhead == {"samples": 1, "toStartP50": "0.395s", "toStartMax": "0.395s",
                        "userCode": "1.000s", "kflow": "0.695s"}
    assert status["overhead"] == {"samples": 1, "userCode": "1.000s", "kflow": "0.695s"}
    runs.reconcile(NS, "run-1")                          # sees the new pods
    writes = kube.status_writes
    runs.reconcile(NS, "run-1")                          # nothing changed: no write
    assert kube.status_writes == writes
    assert kube.flowruns["run-1"]["status"]["overhead"] == status["overhead"]


def test_a_resume_from_run_pins_its_origin_and_clones_what_succeeded(kube: FakeKube) -> None:
    add_run(kube, "origin-1")
    shell = reconciler(kube)
    shell.reconcile(NS, "origin-1")
    kube.succeed("start")
    shell.reconcile(NS, "origin-1")
    kube.succeed("counts")
    _fail(kube, "sums")
    shell.reconcile(NS, "origin-1")
    assert kube.flowruns["origin-1"]["status"]["phase"] == "Failed"
    add_run(kube, "run-2")
    kube.flowruns["run-2"]["spec"]["resumeFrom"] = {"run": "origin-1"}
    shell.reconcile(NS, "run-2")
    pinned = json.loads(kube.configmaps["run-2-flow"]["data"]["flow.json"])["origin"]
    assert pinned["run"] == "origin-1" and pinned["runId"] == "origin-1-uidorigi"
    assert sorted(t[0] for t in pinned["tasks"]) == ["counts", "start"]
    started = [p for p in kube.pods.values() if owner_uid(p) == "uid-run-2"]
    assert [p["metadata"]["annotations"]["kflow.dev/step"] for p in started] == ["sums"]
    args = started[0]["spec"]["containers"][0]["args"]
    assert args[args.index("--origin-run-id") + 1] == "origin-1-uidorigi"
    status = kube.flowruns["run-2"]["status"]
    assert status["originRun"] == "origin-1"
    assert {s["name"]: s["tasks"]["cloned"] for s in status["steps"]} == {
        "start": 1, "counts": 1, "sums": 0, "merge": 0, "end": 0}


def test_a_resume_from_an_unfinished_run_fails_with_what_to_do(kube: FakeKube) -> None:
    add_run(kube, "origin-1")
    reconciler(kube).reconcile(NS, "origin-1")
    add_run(kube, "run-2")
    kube.flowruns["run-2"]["spec"]["resumeFrom"] = {"run": "origin-1"}
    reconciler(kube).reconcile(NS, "run-2")
    status = kube.flowruns["run-2"]["status"]
    assert status["phase"] == "Failed" and status["reason"] == "InvalidSpec"
    accepted = {c["type"]: c for c in status["conditions"]}["Accepted"]
    assert accepted["reason"] == "InvalidResumeFrom"
    assert "origin-1 is Pending, not finished; wait for it to end" in accepted["message"]
    assert "run-2-flow" not in kube.configmaps


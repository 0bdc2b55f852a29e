"""Malformed and hostile FlowRuns, all at once: each is refused clearly, the rest runs.

One operator (the `operator` fixture: own namespace, own process), the example
branch flow deployed, plus ``typed-flow`` (the same Flow with a float, a bool, a json
and a required parameter, applied as a manifest: no run of it gets as far as a pod).
Then, concurrently, one valid run and the hostile ones below. Each hostile run is
either refused by the apiserver (kubectl exits 1 with a message naming the field:
the CRD schema and its CEL rules) or ends ``Failed`` with ``failure.reason``
``InvalidSpec``, condition ``Accepted=False`` with the operator's reason, and a
message naming the field and what to do. Throughout, the valid run succeeds, the
operator stays alive (liveness answers) and logs no traceback.

Objects are created with ``kubectl create`` (not ``apply``): apply would copy the
whole object into the ``last-applied-configuration`` annotation, and a 1 MB value
would then be refused for the annotation's size rather than for the field's.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kflow import api_types
from tests.e2e import test_operator as base
from tests.e2e.conftest import TestCluster, wait_for

pytestmark = pytest.mark.e2e

operator = base.operator     # the fixture: one operator process per test
Operator = base.Operator

FLOW = "branch-flow"
TYPED_FLOW = "typed-flow"
VALID_RUN = "valid-" + "x" * 57          # 63 characters: the longest name a run may have
HOSTILE_TIMEOUT = 180.0
TERMINAL = ("Succeeded", "Failed", "Stopped")


@dataclass(frozen=True)
class Rejected:
    """Refused at admission: kubectl's stderr contains each of `texts`."""

    spec: dict[str, Any]
    texts: tuple[str, ...]
    metadata: dict[str, Any] | None = None    # extra metadata (labels, annotations)
    name: str | None = None                   # the object's name when not the case id


@dataclass(frozen=True)
class Refused:
    """Created, then ended Failed/InvalidSpec with condition Accepted=False `reason`."""

    spec: dict[str, Any]
    reason: str
    texts: tuple[str, ...]


def _on(flow: str, **spec: Any) -> dict[str, Any]:
    return {"flowRef": {"name": flow}, **spec}


ADMISSION: dict[str, Rejected] = {
    "no-flowref": Rejected({"parameters": {"rows": "3"}}, ("spec.flowRef: Required value",)),
    "param-not-a-string": Rejected(_on(FLOW, parameters={"rows": 10}), (
        "spec.parameters.rows", "must be of type string")),
    "param-bad-name": Rejected(_on(FLOW, parameters={"rows; rm -rf /": "1"}), (
        "spec.parameters: keys are parameter names",)),
    "param-1mb": Rejected(_on(FLOW, parameters={"rows": "9" * 1_000_000}), (
        "spec.parameters.rows: Too long: may not be more than 32768",)),
    "params-10000": Rejected(_on(FLOW, parameters={f"p{i}": "1" for i in range(10_000)}), (
        "spec.parameters: Too many: 10000: must have at most 128 items",)),
    "parallelism-0": Rejected(_on(FLOW, maxParallelism=0), (
        "spec.maxParallelism", "greater than or equal to 1")),
    "parallelism-negative": Rejected(_on(FLOW, maxParallelism=-1), (
        "spec.maxParallelism", "greater than or equal to 1")),
    "parallelism-1e9": Rejected(_on(FLOW, maxParallelism=10**9), (
        "spec.maxParallelism", "less than or equal to 10000")),
    "parallelism-string": Rejected(_on(FLOW, maxParallelism="16"), (
        "spec.maxParallelism", "must be of type integer")),
    "stop-yes": Rejected(_on(FLOW, stop="yes"), ("spec.stop", "must be of type boolean")),
    "name-253": Rejected(_on(FLOW), ("metadata.name", "must be a DNS-1123 label"),
                         name="n" * 253),
    "annotations-300k": Rejected(_on(FLOW), ("metadata.annotations: Too long",),
                                 metadata={"annotations": {"note": "x" * 300_000}}),
    "label-100": Rejected(_on(FLOW), ("metadata.labels", "must be no more than 63"),
                          metadata={"labels": {"team": "x" * 100}}),
    "tags-duplicated": Rejected(_on(FLOW, tags=["a", "b", "a"]), (
        'spec.tags[2]: Duplicate value: "a"',)),
    "tags-51": Rejected(_on(FLOW, tags=[f"t{i}" for i in range(51)]), (
        "spec.tags: Too many: 51: must have at most 50 items",)),
    "unknown-fields": Rejected({"flowRef": {"name": FLOW, "kind": "Flow"}, "priority": 1}, (
        'unknown field "spec.flowRef.kind"', 'unknown field "spec.priority"')),
    "flowref-191-dotted": Rejected(_on(".".join(["f" * 63] * 3)), (
        "spec.flowRef.name", "may not be more than 63")),
    "resume-from-itself": Rejected(_on(FLOW, resumeFrom={"run": "resume-from-itself"}), (
        "spec.resumeFrom.run: a run cannot resume from itself",)),
    "resume-and-resume-from": Rejected(
        _on(FLOW, resume={"attempt": 1}, resumeFrom={"run": VALID_RUN}),
        ("spec.resume and spec.resumeFrom cannot both be set",)),
}

OPERATOR: dict[str, Refused] = {
    "flow-missing": Refused(_on("no-such-flow"), "FlowNotFound", (
        "Flow 'no-such-flow' not found", "deploy it")),
    "int-ten": Refused(_on(FLOW, parameters={"rows": "ten"}), "InvalidParameter", (
        "spec.parameters.rows: 'ten' is not a whole number",)),
    "float-x": Refused(_on(TYPED_FLOW, parameters={"mode": "m", "ratio": "x"}),
                       "InvalidParameter", ("spec.parameters.ratio: 'x' is not a number",)),
    "bool-maybe": Refused(_on(TYPED_FLOW, parameters={"mode": "m", "verbose": "maybe"}),
                          "InvalidParameter", (
                              "spec.parameters.verbose: 'maybe' is not true or false",)),
    "json-bad": Refused(_on(TYPED_FLOW, parameters={"mode": "m", "config": "{bad"}),
                        "InvalidParameter", ("spec.parameters.config: '{bad' is not JSON",)),
    "required-missing": Refused(_on(TYPED_FLOW), "InvalidParameter", (
        "spec.parameters.mode: parameter mode is required", "give it a value")),
    "param-unknown": Refused(_on(FLOW, parameters={"rowz": "3"}), "InvalidParameter", (
        "spec.parameters: rowz is not a parameter of flow BranchFlow", "fix the name")),
    "resume-step-unknown": Refused(_on(FLOW, resume={"attempt": 1, "step": "nosuch"}),
                                   "InvalidResume", (
                                       "spec.resume.step: nosuch is not a step of flow "
                                       "BranchFlow",)),
    # resumeFrom needs a finished run of the same flow (kflow_operator.origin): a missing
    # one, and the valid run while it still runs, are refused, not run from the start.
    "resume-from-missing": Refused(_on(FLOW, resumeFrom={"run": "no-such-run"}),
                                   "InvalidResumeFrom", (
                                       "spec.resumeFrom.run: FlowRun no-such-run not found",)),
    "resume-from-unfinished": Refused(
        _on(FLOW, resumeFrom={"run": VALID_RUN, "step": "merge"}), "InvalidResumeFrom", (
            f"spec.resumeFrom.run: {VALID_RUN} is", "not finished")),
}


def _flowrun(namespace: str, name: str, spec: dict[str, Any],
             metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": api_types.API_VERSION, "kind": api_types.FLOWRUN_KIND,
            "metadata": {"name": name, "namespace": namespace, **(metadata or {})},
            "spec": spec}


def _typed_flow(cluster: TestCluster, namespace: str) -> dict[str, Any]:
    """The deployed branch flow under another name, with parameters of every type."""
    done = cluster.kubectl("get", "flow", FLOW, "-n", namespace, "-o", "json")
    assert done.returncode == 0, done.stderr
    spec = json.loads(done.stdout)["spec"]
    spec["parameters"] = [*spec.get("parameters", []),
                          {"name": "ratio", "type": "float", "default": 0.5},
                          {"name": "verbose", "type": "bool", "default": False},
                          {"name": "config", "type": "json", "default": {}},
                          {"name": "mode", "type": "str", "required": True}]
    return {"apiVersion": api_types.API_VERSION, "kind": api_types.FLOW_KIND,
            "metadata": {"name": TYPED_FLOW, "namespace": namespace}, "spec": spec}


def _create_all(cluster: TestCluster, tmp_path: Path,
                objects: dict[str, dict[str, Any]]) -> dict[str, tuple[int, str]]:
    """`kubectl create -f` each object, concurrently: id → (exit code, stdout + stderr)."""
    def create(item: tuple[str, dict[str, Any]]) -> tuple[str, tuple[int, str]]:
        key, body = item
        path = tmp_path / f"{key}.json"
        path.write_text(json.dumps(body))
        done = cluster.kubectl("create", "-f", str(path), timeout=120)
        return key, (done.returncode, done.stdout + done.stderr)

    with ThreadPoolExecutor(max_workers=6) as pool:
        return dict(pool.map(create, objects.items()))


def _liveness_ok(operator: Operator) -> bool:
    """The operator's liveness endpoint answers 200 (the fixture passed its URL)."""
    args = [str(arg) for arg in operator.process.args]  # type: ignore[union-attr]
    url = args[args.index("--liveness") + 1]
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _conditions(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (run.get("status") or {}).get("conditions") or []}


def test_hostile_flowruns_are_refused_clearly_and_a_valid_run_still_succeeds(
        cluster: TestCluster, namespace: str, operator: Operator, tmp_path: Path) -> None:
    base.deploy(operator, "branch_flow.py")
    typed = _create_all(cluster, tmp_path, {TYPED_FLOW: _typed_flow(cluster, namespace)})
    assert typed[TYPED_FLOW][0] == 0, typed[TYPED_FLOW][1]

    objects = {VALID_RUN: _flowrun(namespace, VALID_RUN, _on(FLOW, parameters={"rows": "10"}))}
    objects.update({key: _flowrun(namespace, case.name or key, case.spec, case.metadata)
                    for key, case in ADMISSION.items()})
    objects.update({key: _flowrun(namespace, key, case.spec) for key, case in OPERATOR.items()})
    created = _create_all(cluster, tmp_path, objects)

    # Refused at admission: exit code 1, the message names the field.
    for key, bad in ADMISSION.items():
        code, output = created[key]
        assert code == 1, f"{key}: the apiserver accepted it:\n{output}"
        missing = [text for text in bad.texts if text not in output]
        assert not missing, f"{key}: {missing} not in the apiserver's answer:\n{output}"
    for key in (VALID_RUN, *OPERATOR):
        assert created[key][0] == 0, f"{key}: {created[key][1]}"

    # One polling loop: every created run reaches a terminal phase; the operator lives.
    def all_finished() -> dict[str, dict[str, Any]] | None:
        if operator.process.poll() is not None:
            pytest.fail(f"the operator died:\n{operator.log_tail()}")
        assert _liveness_ok(operator), f"liveness failed:\n{operator.log_tail()}"
        done = cluster.kubectl("get", "fr", "-n", namespace, "-o", "json")
        assert done.returncode == 0, done.stderr
        runs = {r["metadata"]["name"]: r for r in json.loads(done.stdout)["items"]}
        finished = {name: run for name, run in runs.items()
                    if (run.get("status") or {}).get("phase") in TERMINAL}
        return runs if set(finished) == {VALID_RUN, *OPERATOR} == set(runs) else None

    runs = wait_for("every FlowRun to finish", all_finished, timeout=HOSTILE_TIMEOUT,
                    interval=1.0)
    assert runs is not None    # wait_for returns a truthy value or fails

    valid = runs[VALID_RUN]
    assert valid["status"]["phase"] == "Succeeded", json.dumps(valid["status"], indent=1)
    assert base.steps_summary(valid) == {name: ("Succeeded", 1, 1) for name in
                                    ("start", "counts", "sums", "merge", "end")}

    for key, refused in OPERATOR.items():
        status = runs[key]["status"]
        described = f"{key}: {json.dumps(status, indent=1)}"
        assert status["phase"] == "Failed", described
        assert status["failure"]["reason"] == "InvalidSpec", described
        accepted = _conditions(runs[key])["Accepted"]
        assert (accepted["status"], accepted["reason"]) == ("False", refused.reason), described
        for text in refused.texts:
            assert text in status["failure"]["message"], described
            assert text in accepted["message"], described

    # Only the valid run made pods; the operator is still alive and logged no traceback.
    pod_runs = {(pod.metadata.labels or {}).get(api_types.LABEL_RUN)
                for pod in cluster.core.list_namespaced_pod(namespace).items if pod.metadata}
    assert pod_runs == {VALID_RUN}
    assert operator.process.poll() is None
    assert _liveness_ok(operator)
    log = operator.log_path.read_text(errors="replace")
    assert "Traceback" not in log, operator.log_tail(200)

"""The Flow and FlowRun CRDs on a real kube-apiserver.

The examples are accepted, `kubectl get` shows the printer columns, `kubectl explain`
teaches the API, and each malformed manifest below (one broken rule each) is rejected
on admission with a message naming the bad field. Creates are server-side dry runs;
update rules run against a real object in the test's namespace.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kflow import api_types
from tests.e2e.conftest import TestCluster
from tests.e2e.crds_helper import EXAMPLES, install_crds, load_example

pytestmark = pytest.mark.e2e

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def crds(cluster: TestCluster) -> TestCluster:
    install_crds(cluster)
    return cluster


@pytest.fixture(scope="module")
def custom(crds: TestCluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(crds.api)


def _create(custom: client.CustomObjectsApi, namespace: str, body: Manifest,
            dry_run: bool = True) -> Manifest:
    plural = api_types.FLOW_PLURAL if body["kind"] == "Flow" else api_types.FLOWRUN_PLURAL
    result = custom.create_namespaced_custom_object(
        api_types.GROUP, api_types.VERSION, namespace, plural, body,
        dry_run="All" if dry_run else None, field_validation="Strict")
    return cast(Manifest, result)


def _rejection(call: Callable[[], object], status: int = 422) -> str:
    """Run an API call that must be rejected (422 Invalid); return the apiserver's message."""
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == status, caught.value.body
    return str(caught.value.body)


def _ago(seconds: int) -> str:
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- what is accepted ---------------------------------------------------------------


def test_examples_are_accepted(crds: TestCluster, namespace: str) -> None:
    for name in ("flow.yaml", "flowrun.yaml"):
        done = crds.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / name))
        assert done.returncode == 0, done.stderr


def test_printer_columns(crds: TestCluster, namespace: str) -> None:
    for name in ("flow.yaml", "flowrun.yaml"):
        assert crds.kubectl("apply", "-n", namespace, "-f",
                            str(EXAMPLES / name)).returncode == 0
    flows = crds.kubectl("get", "fl", "-n", namespace)
    assert flows.returncode == 0, flows.stderr
    assert flows.stdout.split("\n")[0].split() == ["NAME", "STEPS", "SCHEDULE", "LAST",
                                                   "SCHEDULE", "LAST", "RUN", "AGE"]
    runs = crds.kubectl("get", "flowruns", "-n", namespace)
    assert runs.returncode == 0, runs.stderr
    assert runs.stdout.split("\n")[0].split() == ["NAME", "FLOW", "STATUS", "STEPS", "STARTED",
                                                  "DURATION", "REASON", "AGE"]
    assert "train-flow-20261129-1   train-flow" in runs.stdout
    # the whole category at once
    both = crds.kubectl("get", "kflow", "-n", namespace, "-o", "name")
    assert sorted(both.stdout.split()) == ["flow.kflow.dev/train-flow",
                                           "flowrun.kflow.dev/train-flow-20261129-1"]


def test_status_columns_read_the_status(crds: TestCluster, namespace: str,
                                        custom: client.CustomObjectsApi) -> None:
    _create(custom, namespace, load_example("flowrun.yaml"), dry_run=False)
    status = {"phase": "Running", "progress": "3/7", "duration": "1m30s",
              "startedAt": _ago(90),
              "steps": [{"name": "start", "phase": "Succeeded",
                         "tasks": {"total": 1, "succeeded": 1}},
                        {"name": "train", "phase": "Running",
                         "tasks": {"total": 100, "running": 16, "pending": 80,
                                   "succeeded": 4}}],
              "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running",
                              "message": "3 of 7 steps done",
                              "lastTransitionTime": "2026-11-29T10:00:00Z"}]}
    custom.patch_namespaced_custom_object_status(
        api_types.GROUP, api_types.VERSION, namespace, api_types.FLOWRUN_PLURAL,
        "train-flow-20261129-1", {"status": status})
    row = crds.kubectl("get", "fr", "-n", namespace, "--no-headers").stdout.split()
    assert row[:4] == ["train-flow-20261129-1", "train-flow", "Running", "3/7"], row
    assert row[4] in ("90s", "91s", "92s", "93s"), row  # Started, as an age
    assert row[5] == "1m30s", row


def test_flow_status_columns(crds: TestCluster, namespace: str,
                             custom: client.CustomObjectsApi) -> None:
    _create(custom, namespace, load_example("flow.yaml"), dry_run=False)
    custom.patch_namespaced_custom_object_status(
        api_types.GROUP, api_types.VERSION, namespace, api_types.FLOW_PLURAL, "train-flow",
        {"status": {"stepCount": 7, "schedule": "0 0 * * * Europe/Paris",
                    "lastRun": {"name": "train-flow-20261129-1", "phase": "Failed"},
                    "observedGeneration": 1,
                    "conditions": [{"type": "Accepted", "status": "True", "reason": "Valid",
                                    "message": "", "lastTransitionTime": _ago(5),
                                    "observedGeneration": 1}]}})
    wide = crds.kubectl("get", "fl", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "STEPS", "SCHEDULE", "LAST", "SCHEDULE", "LAST", "RUN",
                               "AGE", "LAST", "STATUS", "NEXT", "SCHEDULE", "ACCEPTED"]
    assert wide[1].split()[:8] == ["train-flow", "7", "0", "0", "*", "*", "*", "Europe/Paris"]
    assert wide[1].split()[8] == "train-flow-20261129-1", wide
    assert wide[1].split()[-2:] == ["Failed", "True"], wide


def test_explain_teaches_the_api(crds: TestCluster) -> None:
    def explain(field: str) -> str:
        done = crds.kubectl("explain", field)
        assert done.returncode == 0, done.stderr
        return " ".join(done.stdout.split())  # kubectl wraps descriptions

    spec = explain("flowrun.spec")
    for field in ("flowRef", "parameters", "maxParallelism", "tags", "stop", "resume",
                  "resumeFrom"):
        assert f"{field} <" in spec
    assert "parsed by each parameter's type" in spec  # descriptions, not just names
    steps = explain("flow.spec.steps")
    for text in ("in topological order", "foreach <string>", "switch <Object>",
                 "timeoutSeconds <integer>", "split-foreach (the one next step runs once"):
        assert text in steps
    assert "it never decreases" in explain("fr.spec.resume.attempt")


def _big_flow(count: int, width: int, name_length: int) -> Manifest:
    """A flow of `count` steps where every other step fans out to the next `width` steps
    (split-static and split-switch alternately): the most work for the CEL rules."""
    flow = load_example("flow.yaml")
    names = ["start"] + [f"s{i:04d}".ljust(name_length, "x") for i in range(count - 2)] + ["end"]
    steps: list[Manifest] = [{"name": "start", "type": "start", "next": [names[1]]}]
    for i in range(1, count - 1):
        targets = names[i + 1:i + 1 + width]
        if len(targets) < 2:
            steps.append({"name": names[i], "type": "linear", "next": ["end"]})
        elif i % 2:
            steps.append({"name": names[i], "type": "split-static", "next": targets})
        else:
            steps.append({"name": names[i], "type": "split-switch", "next": targets,
                          "switch": {"condition": "mode", "cases": [
                              {"value": str(k), "step": t} for k, t in enumerate(targets)]}})
    steps.append({"name": "end", "type": "end"})
    flow["spec"]["steps"] = steps
    return flow


@pytest.mark.parametrize(("width", "name_length"), [(1, 63), (64, 5)],
                         ids=["chain-long-names", "64-wide"])
def test_largest_flows_fit_the_cel_budget(width: int, name_length: int,
                                          custom: client.CustomObjectsApi) -> None:
    """1000 steps pass the rules' runtime cost limits (the estimate is checked when the
    CRD is installed; this checks what the apiserver actually spends)."""
    flow = _big_flow(api_types.MAX_STEPS, width, name_length)
    assert _create(custom, "default", flow)["metadata"]["name"] == "train-flow"


def test_generated_names_are_checked(custom: client.CustomObjectsApi) -> None:
    run = load_example("flowrun.yaml")
    del run["metadata"]["name"]
    run["metadata"]["generateName"] = "train-flow-"
    assert _create(custom, "default", run)["metadata"]["name"].startswith("train-flow-")
    run["metadata"]["generateName"] = "train.flow-"  # a DNS subdomain, not a label
    message = _rejection(lambda: _create(custom, "default", run))
    assert "metadata.name" in message and "DNS-1123 label" in message, message


def _recursive_switch(flow: Manifest) -> None:
    choose = _step(flow, "choose")
    choose["next"] = ["choose", "fast"]
    choose["switch"]["cases"] = [{"value": "again", "step": "choose"},
                                 {"value": "done", "step": "fast"}]
    flow["spec"]["steps"] = [s for s in flow["spec"]["steps"] if s["name"] != "full"]


def _minimal(flow: Manifest) -> None:
    flow["spec"] = {k: flow["spec"][k] for k in ("flowName", "image", "codePackage")}
    flow["spec"].update(start="start", end="end", steps=[
        {"name": "start", "type": "start", "next": ["end"]}, {"name": "end", "type": "end"}])


def _static_start(flow: Manifest) -> None:
    flow["spec"]["steps"] = [
        {"name": "start", "type": "split-static", "next": ["a", "b"]},
        {"name": "a", "type": "linear", "next": ["join"]},
        {"name": "b", "type": "linear", "next": ["join"]},
        {"name": "join", "type": "join", "join": True, "next": ["end"]},
        {"name": "end", "type": "end"}]


@pytest.mark.parametrize("change", [_recursive_switch, _minimal, _static_start],
                         ids=["recursive-switch", "minimal", "split-static-start"])
def test_valid_variants_are_accepted(change: Callable[[Manifest], None],
                                     custom: client.CustomObjectsApi) -> None:
    flow = load_example("flow.yaml")
    change(flow)
    _create(custom, "default", flow)


# --- what is rejected on create ------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A manifest that breaks one rule: the example, changed by `change`."""

    id: str
    example: str
    change: Callable[[Manifest], None]
    field: str                 # the field path the error must name
    words: str = ""            # and a piece of the message
    status: int = 422          # 400 for what the decoder rejects (unknown fields)


def _step(flow: Manifest, name: str) -> Manifest:
    steps: list[Manifest] = flow["spec"]["steps"]
    return next(s for s in steps if s["name"] == name)


def _set(path: str, value: Any) -> Callable[[Manifest], None]:
    def change(body: Manifest) -> None:
        *parents, last = path.split(".")
        node = body
        for key in parents:
            node = node[key]
        node[last] = value
    return change


def _drop(path: str) -> Callable[[Manifest], None]:
    def change(body: Manifest) -> None:
        *parents, last = path.split(".")
        node = body
        for key in parents:
            node = node[key]
        del node[last]
    return change


def _step_change(name: str, **fields: Any) -> Callable[[Manifest], None]:
    def change(flow: Manifest) -> None:
        step = _step(flow, name)
        for key, value in fields.items():
            if value is None:
                step.pop(key, None)
            else:
                step[key] = value
    return change


def _rename_step(flow: Manifest) -> None:
    _step(flow, "train")["name"] = "Train"


BAD_CREATES = [
    # Flow: structure
    Bad("flow-missing-image", "flow.yaml", _drop("spec.image"), "spec.image", "Required"),
    Bad("flow-missing-code-sha", "flow.yaml", _drop("spec.codePackage.sha256"),
        "spec.codePackage.sha256", "Required"),
    Bad("flow-bad-sha", "flow.yaml", _set("spec.codePackage.sha256", "abc"),
        "spec.codePackage.sha256"),
    Bad("flow-flowname-not-identifier", "flow.yaml", _set("spec.flowName", "train-flow"),
        "spec.flowName"),
    Bad("flow-bad-step-type", "flow.yaml", _step_change("train", type="map"),
        "spec.steps[1].type", "Unsupported value"),
    Bad("flow-step-name-pattern", "flow.yaml", _rename_step, "spec.steps[1].name"),
    Bad("flow-line-wrong-type", "flow.yaml", _step_change("train", line="eighteen"),
        "spec.steps[1].line", "integer"),
    Bad("flow-negative-timeout", "flow.yaml", _step_change("train", timeoutSeconds=-5),
        "spec.steps[1].timeoutSeconds"),
    Bad("flow-retry-5", "flow.yaml", _step_change("train", retry={"times": 5}),
        "spec.steps[1].retry.times", "less than or equal to 4"),
    Bad("flow-bad-quantity", "flow.yaml",
        _step_change("train", resources={"requests": {"memory": "lots"}}),
        "spec.steps[1].resources.requests.memory"),
    Bad("flow-bad-parameter-type", "flow.yaml",
        _set("spec.parameters", [{"name": "alpha", "type": "double"}]),
        "spec.parameters[0].type", "Unsupported value"),
    Bad("flow-reserved-parameter", "flow.yaml",
        _set("spec.parameters", [{"name": "tags", "type": "str"}]),
        "spec.parameters[0].name", "reserved"),
    Bad("flow-bad-cron", "flow.yaml", _set("spec.schedule.cron", "every day"),
        "spec.schedule.cron"),
    Bad("flow-project-production-mismatch", "flow.yaml",
        _set("spec.project", {"name": "fraud", "branch": "prod", "production": False}),
        "spec.project.production"),
    Bad("flow-bad-name", "flow.yaml", _set("metadata.name", "a" * 64), "metadata.name"),
    # Flow: cross-field (CEL)
    Bad("flow-start-missing", "flow.yaml", _set("spec.start", "begin"), "spec.start",
        "begin is not a step"),
    Bad("flow-end-missing", "flow.yaml", _set("spec.end", "finish"), "spec.end"),
    Bad("flow-next-unknown", "flow.yaml", _step_change("train", next=["nowhere"]),
        "spec.steps[1].next", "nowhere is not a step"),
    Bad("flow-foreach-missing", "flow.yaml", _step_change("start", foreach=None),
        "spec.steps[0].foreach", "split-foreach"),
    Bad("flow-foreach-on-linear", "flow.yaml", _step_change("train", foreach="models"),
        "spec.steps[1].foreach"),
    Bad("flow-switch-on-linear", "flow.yaml", _step_change(
        "train", switch={"condition": "mode", "cases": [{"value": "a", "step": "join"},
                                                        {"value": "b", "step": "end"}]}),
        "spec.steps[1].switch", "split-switch"),
    Bad("flow-switch-cases-vs-next", "flow.yaml", _step_change("choose", next=["fast", "end"]),
        "spec.steps[3].next", "switch.cases"),
    Bad("flow-end-has-next", "flow.yaml", _step_change("end", next=["start"]),
        "spec.steps[6].next", "end step has no next"),
    Bad("flow-linear-no-next", "flow.yaml", _step_change("train", next=[]),
        "spec.steps[1].next", "at least one next"),
    Bad("flow-linear-two-next", "flow.yaml", _step_change("train", next=["join", "end"]),
        "spec.steps[1].next", "exactly one next"),
    Bad("flow-join-flag", "flow.yaml", _step_change("join", join=False),
        "spec.steps[2].join"),
    Bad("flow-second-end", "flow.yaml", _step_change("full", type="end", next=None),
        "spec.steps[5].type", "must have type end"),
    Bad("flow-start-is-join", "flow.yaml", _step_change("start", type="join", join=True,
                                                         foreach=None),
        "spec.steps[0].type", "cannot be a join"),
    Bad("flow-self-loop", "flow.yaml", _step_change("train", next=["train"]),
        "spec.steps[1].next", "cannot go to itself"),
    Bad("flow-catch-on-foreach", "flow.yaml", _step_change("start", catch={"var": "e"}),
        "spec.steps[0].catch"),
    Bad("flow-duplicate-step", "flow.yaml",
        lambda f: f["spec"]["steps"].append({"name": "train", "type": "linear",
                                             "next": ["end"]}),
        "spec.steps[7]", "Duplicate value"),
    # FlowRun
    Bad("run-missing-flowref", "flowrun.yaml", _drop("spec.flowRef"), "spec.flowRef",
        "Required"),
    Bad("run-flowref-not-a-flow-name", "flowrun.yaml", _set("spec.flowRef.name", "a.b"),
        "spec.flowRef.name", "should match"),
    Bad("run-max-parallelism-0", "flowrun.yaml", _set("spec.maxParallelism", 0),
        "spec.maxParallelism", "greater than or equal to 1"),
    Bad("run-max-parallelism-string", "flowrun.yaml", _set("spec.maxParallelism", "many"),
        "spec.maxParallelism", "integer"),
    Bad("run-too-many-tags", "flowrun.yaml", _set("spec.tags", [f"t{i}" for i in range(51)]),
        "spec.tags", "must have at most 50 items"),
    Bad("run-empty-tag", "flowrun.yaml", _set("spec.tags", [""]), "spec.tags[0]"),
    Bad("run-bad-parameter-key", "flowrun.yaml", _set("spec.parameters", {"learning rate": "1"}),
        "spec.parameters", "keys are parameter names"),
    Bad("run-parameter-not-string", "flowrun.yaml", _set("spec.parameters", {"alpha": 0.7}),
        "spec.parameters.alpha", "string"),
    Bad("run-resume-and-resume-from", "flowrun.yaml",
        _set("spec", {"flowRef": {"name": "train-flow"}, "resume": {"attempt": 1},
                      "resumeFrom": {"run": "train-flow-20261128-3"}}),
        "spec.resumeFrom", "cannot both be set"),
    Bad("run-resume-from-itself", "flowrun.yaml",
        _set("spec.resumeFrom", {"run": "train-flow-20261129-1"}), "spec.resumeFrom.run"),
    Bad("run-resume-attempt-0", "flowrun.yaml", _set("spec.resume", {"attempt": 0}),
        "spec.resume.attempt"),
    Bad("run-unknown-field", "flowrun.yaml", _set("spec.maxWorkers", 3), "spec.maxWorkers",
        "unknown field", status=400),
]


@pytest.mark.parametrize("bad", BAD_CREATES, ids=[b.id for b in BAD_CREATES])
def test_malformed_create_is_rejected(bad: Bad, custom: client.CustomObjectsApi) -> None:
    body = load_example(bad.example)
    bad.change(body)
    message = _rejection(lambda: _create(custom, "default", body), bad.status)
    assert bad.field in message, message
    assert bad.words in message, message


# --- what is rejected on update -------------------------------------------------------


@dataclass(frozen=True)
class BadUpdate:
    """A FlowRun created with `before` merged into its spec, then patched with `patch`."""

    id: str
    before: Manifest
    patch: Manifest
    field: str
    words: str


BAD_UPDATES = [
    BadUpdate("flowref-changes", {}, {"flowRef": {"name": "other-flow"}}, "spec.flowRef",
              "immutable"),
    BadUpdate("stop-true-to-false", {"stop": True}, {"stop": False}, "spec.stop",
              "cannot go back"),
    BadUpdate("stop-removed", {"stop": True}, {"stop": None}, "spec.stop", "cannot go back"),
    BadUpdate("resume-attempt-decreases", {"resume": {"attempt": 3}},
              {"resume": {"attempt": 2}}, "spec.resume.attempt", "may only increase"),
    BadUpdate("resume-removed", {"resume": {"attempt": 3}}, {"resume": None},
              "spec.resume.attempt", "may only increase"),
    BadUpdate("resume-step-without-bump", {"resume": {"attempt": 1}},
              {"resume": {"step": "train"}}, "spec.resume.step", "together with"),
    BadUpdate("resume-a-stopped-run", {"stop": True}, {"resume": {"attempt": 1}},
              "spec.resume.attempt", "stopped run"),
    BadUpdate("resume-from-added", {}, {"resumeFrom": {"run": "train-flow-20261128-3"}},
              "spec.resumeFrom", "immutable"),
    BadUpdate("resume-from-changed", {"resumeFrom": {"run": "train-flow-20261128-3"}},
              {"resumeFrom": {"run": "train-flow-20261128-4"}}, "spec.resumeFrom",
              "immutable"),
]


@pytest.mark.parametrize("bad", BAD_UPDATES, ids=[b.id for b in BAD_UPDATES])
def test_malformed_update_is_rejected(bad: BadUpdate, namespace: str,
                                      custom: client.CustomObjectsApi) -> None:
    body = load_example("flowrun.yaml")
    body["spec"].update(bad.before)
    _create(custom, namespace, body, dry_run=False)
    name = body["metadata"]["name"]
    message = _rejection(lambda: custom.patch_namespaced_custom_object(
        api_types.GROUP, api_types.VERSION, namespace, api_types.FLOWRUN_PLURAL, name,
        {"spec": bad.patch}))
    assert bad.field in message, message
    assert bad.words in message, message


def test_allowed_updates(namespace: str, custom: client.CustomObjectsApi) -> None:
    """The control fields move the way docs/api.md says they may."""
    body = load_example("flowrun.yaml")
    _create(custom, namespace, body, dry_run=False)
    name = body["metadata"]["name"]

    def patch(spec: Manifest) -> None:
        custom.patch_namespaced_custom_object(
            api_types.GROUP, api_types.VERSION, namespace, api_types.FLOWRUN_PLURAL, name,
            {"spec": spec})

    patch({"resume": {"attempt": 1}})
    patch({"resume": {"attempt": 4, "step": "train"}})       # any increase
    patch({"tags": ["experiment-3", "good"], "maxParallelism": 4})
    patch({"stop": True})
    patch({"stop": True, "tags": ["done"]})                   # stop stays true

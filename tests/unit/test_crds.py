"""The CRD files, read as data: structural, documented, bounded, and in step with api_types.

No cluster here (tests/e2e/test_crds.py runs them on a real apiserver). These checks
catch what the apiserver would accept but users would miss: a field without a
description (`kubectl explain` shows nothing), a list without maxItems (CEL cost
and etcd size), a constant in kflow.api_types that no longer matches the schema.
The examples are checked against the schemas with a small structural validator.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kflow import api_types

ROOT = Path(__file__).resolve().parents[2]
Schema = dict[str, Any]


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "crds" / name).read_text())
    return data


FLOW = load("kflow.dev_flows.yaml")
FLOWRUN = load("kflow.dev_flowruns.yaml")
CRDS = {"Flow": FLOW, "FlowRun": FLOWRUN}


def version(crd: dict[str, Any]) -> dict[str, Any]:
    versions: list[dict[str, Any]] = crd["spec"]["versions"]
    assert len(versions) == 1
    return versions[0]


def root(crd: dict[str, Any]) -> Schema:
    schema: Schema = version(crd)["schema"]["openAPIV3Schema"]
    return schema


def at(schema: Schema, path: str) -> Schema:
    """The schema at a dotted path; `[]` steps into array items, `{}` into map values."""
    node = schema
    for part in path.split("."):
        if part == "[]":
            node = node["items"]
        elif part == "{}":
            node = node["additionalProperties"]
        else:
            node = node["properties"][part]
    return node


def walk(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every schema node below `schema` with its path (metadata excluded)."""
    for name, child in schema.get("properties", {}).items():
        if path == "" and name == "metadata":
            continue
        yield f"{path}.{name}".lstrip("."), child
        yield from walk(child, f"{path}.{name}".lstrip("."))
    if "items" in schema:
        yield f"{path}[]", schema["items"]
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield f"{path}{{}}", schema["additionalProperties"]
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def rules(schema: Schema) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, node in [("", schema), *walk(schema)]:
        for rule in node.get("x-kubernetes-validations", []):
            yield path, rule
    for rule in at(schema, "metadata.name").get("x-kubernetes-validations", []):
        yield "metadata.name", rule


# --- names ----------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "plural", "singular", "short"), [
    (api_types.FLOW_KIND, api_types.FLOW_PLURAL, api_types.FLOW_SINGULAR,
     api_types.FLOW_SHORT_NAMES),
    (api_types.FLOWRUN_KIND, api_types.FLOWRUN_PLURAL, api_types.FLOWRUN_SINGULAR,
     api_types.FLOWRUN_SHORT_NAMES),
])
def test_names_match_api_types(kind: str, plural: str, singular: str,
                               short: tuple[str, ...]) -> None:
    crd = CRDS[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{plural}.{api_types.GROUP}"
    spec = crd["spec"]
    assert spec["group"] == api_types.GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                             "singular": singular, "shortNames": list(short),
                             "categories": [api_types.CATEGORY]}
    assert short == ({"Flow": ("fl",), "FlowRun": ("fr",)}[kind])
    v = version(crd)
    assert (v["name"], v["served"], v["storage"]) == (api_types.VERSION, True, True)
    assert v["subresources"] == {"status": {}}
    assert api_types.API_VERSION == "kflow.dev/v1alpha1"


def test_printer_columns() -> None:
    def columns(crd: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [(c["name"], c["type"], c["jsonPath"])
                for c in version(crd)["additionalPrinterColumns"] if not c.get("priority")]

    assert columns(FLOW) == [
        ("Steps", "integer", ".status.stepCount"),
        ("Schedule", "string", ".status.schedule"),
        ("Last Schedule", "date", ".status.lastScheduleTime"),
        ("Last Run", "string", ".status.lastRun.name"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    assert columns(FLOWRUN) == [
        ("Flow", "string", ".spec.flowRef.name"),
        ("Status", "string", ".status.phase"),
        ("Steps", "string", ".status.progress"),
        ("Started", "date", ".status.startedAt"),
        ("Duration", "string", ".status.duration"),
        ("Reason", "string", ".status.reason"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]


@pytest.mark.parametrize("kind", CRDS)
def test_printer_columns_point_at_declared_fields(kind: str) -> None:
    schema = root(CRDS[kind])
    for column in version(CRDS[kind])["additionalPrinterColumns"]:
        path = column["jsonPath"].lstrip(".")
        if path.startswith("metadata."):
            continue
        path = re.sub(r"\[\?\(.*\)\]", ".[]", path)  # conditions[?(@.type=="X")] -> items
        node = at(schema, path)
        expected = {"integer": "integer", "string": "string", "date": "string"}[column["type"]]
        assert node["type"] == expected, column


# --- structural and documented -------------------------------------------------------


@pytest.mark.parametrize("kind", CRDS)
def test_every_field_has_a_description(kind: str) -> None:
    schema = root(CRDS[kind])
    assert schema.get("description")
    missing = [path for path, node in walk(schema) if not node.get("description")]
    assert missing == []


@pytest.mark.parametrize("kind", CRDS)
def test_schema_is_structural(kind: str) -> None:
    """Every node has a type (or is int-or-string / preserve-unknown-fields); objects
    have properties or additionalProperties, never both."""
    for path, node in walk(root(CRDS[kind])):
        if node.get("x-kubernetes-int-or-string"):
            assert [alt["type"] for alt in node["anyOf"]] == ["integer", "string"], path
            continue
        if node.get("x-kubernetes-preserve-unknown-fields"):
            continue
        assert node.get("type") in {"object", "array", "string", "integer", "boolean"}, path
        if node["type"] == "object":
            assert ("properties" in node) != ("additionalProperties" in node), path
        if node["type"] == "array":
            assert "items" in node, path


@pytest.mark.parametrize("kind", CRDS)
def test_lists_maps_and_strings_are_bounded(kind: str) -> None:
    """maxItems / maxProperties / maxLength everywhere: the CEL cost estimate needs
    them, and they bound the object's size in etcd."""
    unbounded = []
    for path, node in walk(root(CRDS[kind])):
        kind_ = node.get("type")
        if kind_ == "array" and "maxItems" not in node:
            unbounded.append(path)
        if kind_ == "object" and "additionalProperties" in node and "maxProperties" not in node:
            unbounded.append(path)
        if kind_ == "string" and path not in ("apiVersion", "kind") and not (
                "maxLength" in node or "enum" in node or node.get("format") == "date-time"
                or "{64}" in node.get("pattern", "")):
            unbounded.append(path)
    assert unbounded == []


@pytest.mark.parametrize("kind", CRDS)
def test_list_maps_are_keyed_by_required_fields(kind: str) -> None:
    for path, node in walk(root(CRDS[kind])):
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            assert set(keys) <= set(node["items"]["required"]), path


@pytest.mark.parametrize("kind", CRDS)
def test_every_rule_explains_itself(kind: str) -> None:
    found = list(rules(root(CRDS[kind])))
    assert len(found) >= 5
    for path, rule in found:
        assert rule.get("message") or rule.get("messageExpression"), (path, rule)
        assert rule.get("reason", "FieldValueInvalid") in {
            "FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired",
            "FieldValueDuplicate"}, (path, rule)
        if "oldSelf" not in rule["rule"]:
            assert "optionalOldSelf" not in rule, (path, rule)


def test_conditions_follow_the_api_conventions() -> None:
    for crd in CRDS.values():
        conditions = at(root(crd), "status.conditions")
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        item = conditions["items"]
        assert set(item["required"]) == {"type", "status", "reason", "message",
                                         "lastTransitionTime"}
        assert set(item["properties"]) == {*item["required"], "observedGeneration"}
        assert item["properties"]["status"]["enum"] == [s.value for s in
                                                        api_types.ConditionStatus]
        assert item["properties"]["lastTransitionTime"]["format"] == "date-time"
    for crd, types in ((FLOW, api_types.FLOW_CONDITIONS),
                       (FLOWRUN, api_types.FLOWRUN_CONDITIONS)):
        described = at(root(crd), "status.conditions")["description"]
        assert all(t.value in described for t in types)


# --- api_types constants ---------------------------------------------------------------


def test_enums_match_the_schemas() -> None:
    flow, run = root(FLOW), root(FLOWRUN)
    assert at(flow, "spec.steps.[].type")["enum"] == [t.value for t in api_types.StepType]
    assert at(flow, "spec.parameters.[].type")["enum"] == [
        t.value for t in api_types.ParameterType]
    phases = [p.value for p in api_types.RunPhase]
    assert at(run, "status.phase")["enum"] == phases
    assert at(flow, "status.lastRun.phase")["enum"] == phases
    assert at(run, "status.steps.[].phase")["enum"] == [p.value for p in api_types.StepPhase]
    assert at(run, "status.failure.reason")["enum"] == [
        r.value for r in api_types.FailureReason]
    assert {"Succeeded", "Failed", "Stopped"} == api_types.TERMINAL_PHASES
    assert api_types.RunPhase.STOPPED.terminal and not api_types.RunPhase.RUNNING.terminal


def test_patterns_and_limits_match_the_schemas() -> None:
    flow, run = root(FLOW), root(FLOWRUN)
    step = at(flow, "spec.steps.[]")
    assert step["properties"]["name"]["pattern"] == api_types.STEP_NAME_PATTERN
    assert step["properties"]["name"]["maxLength"] == api_types.STEP_NAME_MAX
    assert at(flow, "spec.start")["pattern"] == api_types.STEP_NAME_PATTERN
    assert at(run, "spec.resume.step")["pattern"] == api_types.STEP_NAME_PATTERN
    assert at(flow, "spec.flowName")["pattern"] == api_types.FLOW_NAME_PATTERN
    assert step["properties"]["foreach"]["pattern"] == api_types.IDENTIFIER_PATTERN
    param = at(flow, "spec.parameters.[].name")
    assert param["pattern"] == api_types.PARAMETER_NAME_PATTERN
    assert param["maxLength"] == api_types.PARAMETER_NAME_MAX
    run_keys = at(run, "spec.parameters")["x-kubernetes-validations"][0]["rule"]
    assert api_types.PARAMETER_NAME_PATTERN in run_keys
    assert f"size(k) <= {api_types.PARAMETER_NAME_MAX}" in run_keys
    assert at(flow, "spec.codePackage.sha256")["pattern"] == api_types.SHA256_PATTERN
    assert at(run, "status.flow.codeSha256")["pattern"] == api_types.SHA256_PATTERN
    assert at(run, "spec.resumeFrom.run")["pattern"] == api_types.RESOURCE_NAME_PATTERN
    # a Flow's name is a DNS-1123 label: a longer or dotted flowRef could name no Flow
    assert at(run, "spec.flowRef.name")["pattern"] == api_types.RESOURCE_NAME_PATTERN
    assert at(run, "spec.flowRef.name")["maxLength"] == api_types.RESOURCE_NAME_MAX
    for crd in (flow, run):
        name_rule = at(crd, "metadata.name")["x-kubernetes-validations"][0]["rule"]
        assert api_types.RESOURCE_NAME_PATTERN in name_rule
        assert f"size(self) <= {api_types.RESOURCE_NAME_MAX}" in name_rule

    assert at(flow, "spec.steps")["maxItems"] == api_types.MAX_STEPS
    assert at(flow, "spec.steps.[].next")["maxItems"] == api_types.MAX_NEXT
    assert at(flow, "spec.steps.[].switch.cases")["maxItems"] == api_types.MAX_SWITCH_CASES
    assert at(flow, "spec.parameters")["maxItems"] == api_types.MAX_PARAMETERS
    assert at(run, "spec.parameters")["maxProperties"] == api_types.MAX_PARAMETERS
    assert at(run, "spec.parameters.{}")["maxLength"] == api_types.MAX_PARAMETER_VALUE
    assert at(run, "spec.tags")["maxItems"] == api_types.MAX_TAGS
    assert at(run, "spec.tags.[]")["maxLength"] == api_types.MAX_TAG_LENGTH
    assert at(flow, "spec.steps.[].retry.times")["maximum"] == api_types.MAX_RETRY_TIMES
    assert at(flow, "spec.triggerOnFinish")["maxItems"] == api_types.MAX_TRIGGERS
    assert at(flow, "spec.description")["maxLength"] == api_types.MAX_DESCRIPTION
    assert at(flow, "spec.steps.[].doc")["maxLength"] == api_types.MAX_STEP_DOC
    assert at(run, "spec.maxParallelism")["maximum"] == api_types.MAX_MAX_PARALLELISM
    assert str(api_types.DEFAULT_MAX_PARALLELISM) in at(run, "spec.maxParallelism")[
        "description"]


def test_reserved_parameter_names_match_the_rule() -> None:
    rule = at(root(FLOW), "spec.parameters.[]")["x-kubernetes-validations"][0]["rule"]
    assert set(re.findall(r"'([a-z-]+)'", rule)) == api_types.RESERVED_PARAMETER_NAMES


def test_label_keys() -> None:
    assert api_types.KFLOW_LABELS == ("kflow.dev/flow", "kflow.dev/run", "kflow.dev/step",
                                      "kflow.dev/task", "kflow.dev/attempt")
    assert all(key.startswith("app.kubernetes.io/") for key in api_types.APP_LABELS)
    assert api_types.common_labels() == {"app.kubernetes.io/part-of": "kflow",
                                         "app.kubernetes.io/managed-by": "kflow"}
    assert api_types.common_labels(name="train-flow", component="step") == {
        "app.kubernetes.io/part-of": "kflow", "app.kubernetes.io/managed-by": "kflow",
        "app.kubernetes.io/name": "train-flow", "app.kubernetes.io/component": "step"}


# --- the examples against the schemas --------------------------------------------------


def check(schema: Schema, value: Any, path: str, errors: list[str]) -> None:
    """A small structural validator: types, required, enum, pattern, bounds, unknown
    fields (what the apiserver checks before CEL)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, int | str):
            errors.append(f"{path}: int or string expected")
        elif isinstance(value, str) and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match")
        return
    expected = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool}
    kind = schema["type"]
    if not isinstance(value, expected[kind]) or (kind == "integer" and isinstance(value, bool)):
        errors.append(f"{path}: {kind} expected, got {value!r}")
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            errors.append(f"{path}: length out of bounds")
    elif isinstance(value, int) and not isinstance(value, bool):
        if not schema.get("minimum", value) <= value <= schema.get("maximum", value):
            errors.append(f"{path}: {value} out of bounds")
    elif isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            errors.append(f"{path}: item count out of bounds")
        for index, item in enumerate(value):
            check(schema["items"], item, f"{path}[{index}]", errors)
    elif isinstance(value, dict):
        errors.extend(f"{path}.{key}: required" for key in schema.get("required", [])
                      if key not in value)
        props = schema.get("properties")
        for key, item in value.items():
            if props is not None and key not in props:
                errors.append(f"{path}.{key}: unknown field")
            elif props is not None:
                check(props[key], item, f"{path}.{key}", errors)
            elif isinstance(schema.get("additionalProperties"), dict):
                check(schema["additionalProperties"], item, f"{path}.{key}", errors)


@pytest.mark.parametrize(("example", "kind"), [("flow.yaml", "Flow"),
                                               ("flowrun.yaml", "FlowRun")])
def test_examples_match_the_schemas(example: str, kind: str) -> None:
    body = yaml.safe_load((ROOT / "examples" / example).read_text())
    assert body["apiVersion"] == api_types.API_VERSION and body["kind"] == kind
    errors: list[str] = []
    schema = root(CRDS[kind])
    check(schema["properties"]["spec"], body["spec"], "spec", errors)
    assert errors == []
    assert re.match(api_types.RESOURCE_NAME_PATTERN, body["metadata"]["name"])


def test_validator_catches_mistakes() -> None:
    """The validator above is not vacuous."""
    errors: list[str] = []
    spec = yaml.safe_load((ROOT / "examples" / "flowrun.yaml").read_text())["spec"]
    spec.update(maxParallelism=0, tags=[""], extra=1)
    check(root(FLOWRUN)["properties"]["spec"], spec, "spec", errors)
    assert errors == ["spec.maxParallelism: 0 out of bounds", "spec.tags[0]: length out of bounds",
                      "spec.extra: unknown field"]

"""The `Flow` resource of a flow (pure): graph + decorators + code package → a dict.

Owns: the Flow object's shape (it matches crds/kflow.dev_flows.yaml; a
golden test keeps the two in step) and the DNS-safe resource name derived
from the class name. Nothing here talks to a cluster or the object store;
`kflow.deploy` does. Deterministic: the same inputs give the same dict, so
deploying unchanged code changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kflow import api_types
from kflow.resources import (
    catch_var,
    environment_vars,
    retry_policy,
    step_image,
    step_resources,
    timeout_seconds,
)

if TYPE_CHECKING:
    from kflow.decorator_base import StepDecorator
    from kflow.flowspec import FlowSpec
    from kflow.graph import FlowGraph, StepNode
    from kflow.packaging import CodePackage

MAX_NAME = 63
MAX_DESCRIPTION = 8192  # spec.description (the CRD's maxLength)
MAX_STEP_DOC = 2048     # spec.steps[].doc


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def resource_name(flow_name: str, project: str | None = None, branch: str | None = None) -> str:
    """DNS-1123 name of a flow's resource: `TrainFlow` → `train-flow`.

    With @project the project and branch lead (`fraud-prod-train-flow`), so two
    branches of one project deploy side by side. Names over 63 characters are
    cut and end with a hash of the full name, so they stay distinct.
    """
    kebab = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", flow_name).lower()
    parts = [p for p in (project, branch, kebab) if p]
    name = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name) or "flow"
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9].rstrip('-')}-{digest}"
    return name


def _kubernetes_settings(decorators: Sequence[StepDecorator]) -> dict[str, Any]:
    """The pod settings of a step's @kubernetes that are not resources."""
    k8s = next((d for d in decorators if d.name == "kubernetes"), None)
    if k8s is None:
        return {}
    out: dict[str, Any] = {}
    for ours, theirs in (("nodeSelector", "node_selector"), ("tolerations", "tolerations"),
                         ("secrets", "secrets"), ("serviceAccount", "service_account"),
                         ("labels", "labels"), ("annotations", "annotations")):
        if value := k8s.attributes.get(theirs):
            out[ours] = value
    if "tolerations" in out:  # Metaflow takes V1Toleration-style snake_case keys too
        out["tolerations"] = [{_camel(k): v for k, v in t.items()} for t in out["tolerations"]]
    return out


def _step(node: StepNode, flow_cls: type[FlowSpec]) -> dict[str, Any]:
    step: dict[str, Any] = {"name": node.name, "type": node.type, "next": list(node.out)}
    if node.foreach_var:
        step["foreach"] = node.foreach_var
    if node.type == "split-switch":
        step["switch"] = {"condition": node.switch_var,
                          "cases": [{"value": v, "step": s} for v, s in node.switch_cases]}
    step["join"] = node.is_join
    if node.doc:
        step["doc"] = _clip(node.doc, MAX_STEP_DOC)
    step["line"] = node.lineno
    decorators: Sequence[StepDecorator] = getattr(getattr(flow_cls, node.name), "decorators", [])
    kube = step_resources(decorators).to_kubernetes()
    if any(kube.values()):
        step["resources"] = {k: v for k, v in kube.items() if v}
    if image := step_image(decorators):
        step["image"] = image
    if any(d.name == "retry" for d in decorators):
        policy = retry_policy(decorators)
        step["retry"] = {"times": policy.times,
                         "minutesBetweenRetries": policy.minutes_between_retries}
    has_catch, var = catch_var(decorators)
    if has_catch:
        step["catch"] = {"printException": bool(next(
            d for d in decorators if d.name == "catch").get("print_exception"))}
        if var:
            step["catch"]["var"] = var
    if (seconds := timeout_seconds(decorators)) is not None:
        step["timeoutSeconds"] = seconds
    if env := environment_vars(decorators):
        step["environment"] = env
    if kube_settings := _kubernetes_settings(decorators):
        step["kubernetes"] = kube_settings
    return step


def flow_identity(flow_cls: type[FlowSpec], username: str,
                  flow_name: str | None = None) -> tuple[str, str | None]:
    """(the Flow resource's name, @project's branch or None) for `username`: what
    `deploy` names the Flow, and what `trigger` looks for."""
    project = getattr(flow_cls, "_flow_decorators", {}).get("project")
    branch = project.resolve_branch(username) if project is not None else None
    name = resource_name(flow_name or flow_cls.__name__,
                         project.project_name if project else None, branch)
    return name, branch


def flow_manifest(
    flow_cls: type[FlowSpec],
    graph: FlowGraph,
    package: CodePackage,
    *,
    package_url: str,
    image: str,
    namespace: str,
    username: str,
) -> dict[str, Any]:
    """The Flow object to server-side-apply (`username` picks @project's user branch)."""
    from kflow.parameters import flow_parameters

    flow_decorators = getattr(flow_cls, "_flow_decorators", {})
    project = flow_decorators.get("project")
    name, branch = flow_identity(flow_cls, username, graph.name)
    spec: dict[str, Any] = {
        "flowName": graph.name,
        "image": image,
        "codePackage": {"url": package_url, "sha256": package.sha256,
                        "flowFile": package.flow_file, "size": package.size},
    }
    if graph.doc:
        spec["description"] = _clip(graph.doc, MAX_DESCRIPTION)
    if project is not None and branch is not None:
        spec["project"] = {"name": project.project_name, "branch": branch,
                           "production": branch.startswith("prod")}
    schedule = flow_decorators.get("schedule")
    if schedule is not None:
        spec["schedule"] = {"cron": schedule.cron_expression()}
        if schedule.timezone:
            spec["schedule"]["timezone"] = schedule.timezone
        spec["schedule"].update(schedule.spec_options())
    trigger = flow_decorators.get("trigger_on_finish")
    if trigger is not None:
        spec["triggerOnFinish"] = [{"flow": f} for f in trigger.flows]
    parameters = [p.to_spec() for _, p in flow_parameters(flow_cls)]
    if parameters:
        spec["parameters"] = parameters
    spec["start"], spec["end"] = graph.start, graph.end
    spec["steps"] = [_step(node, flow_cls) for node in graph.steps.values()]
    labels = {**api_types.common_labels(name="kflow", component="flow"),
              api_types.LABEL_FLOW: name}
    return {
        "apiVersion": f"{api_types.GROUP}/{api_types.VERSION}",
        "kind": api_types.FLOW_KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }

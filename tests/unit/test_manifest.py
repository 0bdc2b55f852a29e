"""The Flow manifest: names, the example flows' golden manifests, determinism."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from kflow import graph, manifest, packaging
from tests.fixtures.flows import load_flow, load_flow_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "flows").glob("*_flow.py"))
GOLDEN = ROOT / "tests" / "fixtures" / "golden" / "manifests"


@pytest.mark.parametrize(("flow", "project", "branch", "expected"), [
    ("TrainFlow", None, None, "train-flow"),
    ("HTTPServerFlow", None, None, "http-server-flow"),
    ("Flow2Go", None, None, "flow2-go"),
    ("my_flow", None, None, "my-flow"),
    ("TrainFlow", "fraud", "user.alice", "fraud-user-alice-train-flow"),
    ("TrainFlow", "fraud", "prod", "fraud-prod-train-flow"),
])
def test_resource_names_are_dns_safe(flow: str, project: str | None, branch: str | None,
                                     expected: str) -> None:
    assert manifest.resource_name(flow, project, branch) == expected


def test_long_names_are_cut_with_a_distinguishing_hash() -> None:
    a = manifest.resource_name("A" * 40 + "TrainingFlow", "project_" + "x" * 20, "test.b1")
    b = manifest.resource_name("A" * 40 + "TrainingFlow", "project_" + "x" * 20, "test.b2")
    assert len(a) <= 63 and len(b) <= 63
    assert a != b


def build(path: Path) -> dict[str, object]:
    flow_cls = load_flow_file(path)
    package = packaging.build_package(path)
    return manifest.flow_manifest(
        flow_cls, graph.build_graph(flow_cls), package,
        package_url=f"s3://kflow/{packaging.package_key(package.sha256)}",
        image="ghcr.io/kflow/kflow-runner:test", namespace="ml", username="alice")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_flows_match_their_golden_manifest(path: Path) -> None:
    body = build(path)
    golden = GOLDEN / f"{path.stem}.yaml"
    if os.environ.get("KFLOW_REGENERATE"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(yaml.safe_dump(body, sort_keys=False))
    assert golden.exists(), f"no golden file {golden}: run with KFLOW_REGENERATE=1 once"
    assert body == yaml.safe_load(golden.read_text())


def test_the_manifest_is_deterministic() -> None:
    assert build(EXAMPLES[0]) == build(EXAMPLES[0])


def test_decorators_reach_the_steps() -> None:
    body = build(ROOT / "examples" / "flows" / "train_flow.py")
    spec = body["spec"]
    assert isinstance(spec, dict)
    steps = {s["name"]: s for s in spec["steps"]}
    train = steps["train"]
    assert train["resources"] == {"requests": {"cpu": "1", "memory": "2048Mi"},
                                  "limits": {"memory": "2048Mi"}}
    assert train["retry"]["times"] == 2
    assert train["timeoutSeconds"] == 1800
    assert train["environment"] == {"OMP_NUM_THREADS": "1"}
    assert steps["start"]["foreach"] == "rates"
    assert steps["choose"]["join"] is True
    assert steps["report"]["catch"]["var"] == "report_error"
    assert spec["schedule"] == {"cron": "0 0 * * *"}
    assert [p["name"] for p in spec["parameters"]] == ["learning_rates", "epochs"]


def test_switch_and_project_fixtures() -> None:
    switch = load_flow("switch")
    g = graph.build_graph(switch)
    package = packaging.build_package(Path(g.file))
    body = manifest.flow_manifest(switch, g, package, package_url="s3://b/k", image="i",
                                  namespace="n", username="alice")
    split = next(s for s in body["spec"]["steps"] if s["type"] == "split-switch")
    assert split["switch"]["condition"]
    assert {c["step"] for c in split["switch"]["cases"]} == set(split["next"])

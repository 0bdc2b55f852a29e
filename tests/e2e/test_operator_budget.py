"""The operator's API budget on a real cluster: pod creates and status writes are paced
by client-side token buckets, and a run's status writes are coalesced.

The operator runs with small buckets (2 pod creates/s, 1 status write/s, bursts of 1)
so a 12-way foreach has to wait for them; its /metrics tell how often and how long.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kflow import api_types
from kflow.planning.run import parse_time
from tests.e2e import test_operator as base
from tests.e2e.conftest import TestCluster

pytestmark = pytest.mark.e2e

FLOWS = Path(__file__).resolve().parent / "flows"
WIDTH = 12
operator = base.operator     # the fixture: one operator process per test


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings the `operator` fixture passes on (it must be requested after this one)."""
    monkeypatch.setenv("KFLOW_POD_CREATES_PER_SECOND", "2")
    monkeypatch.setenv("KFLOW_POD_CREATE_BURST", "1")
    monkeypatch.setenv("KFLOW_STATUS_WRITES_PER_SECOND", "1")
    monkeypatch.setenv("KFLOW_STATUS_WRITE_BURST", "1")
    yield


def test_pod_creates_and_status_writes_keep_to_their_budget(
        small_budget: None, cluster: TestCluster, namespace: str, operator: base.Operator,
        s3_credentials: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(FLOWS / "fanout_flow.py"), "deploy"],
                          env=operator.env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    base.apply_run(cluster, namespace, tmp_path, "fan-1", "fanout-flow",
                   {"width": str(WIDTH)})
    run = base.wait_finished(cluster, operator, namespace, "fan-1")
    status = run["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert base.end_artifacts(s3_credentials, run, "FanoutFlow")["total"] == sum(
        i * i for i in range(WIDTH))
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"{api_types.LABEL_RUN}=fan-1").items
    assert len(pods) == WIDTH + 3                  # one pod per task: nothing twice

    metrics = operator.scrape()
    creates = metrics['kflow_throttle_waits_total{bucket="pod-create"}']
    create_wait = metrics['kflow_throttle_wait_seconds_total{bucket="pod-create"}']
    # 12 body pods wanted at once, 1 in the burst, 2 per second after it: ≥ 11 waits
    # and about 5.5 s of waiting in all.
    assert creates >= WIDTH - 1, metrics
    assert create_wait >= (WIDTH - 1) / 2 * 0.8, metrics
    # Status writes: at most one per second (plus the burst), however many pod events
    # arrived meanwhile; those events were folded into fewer, larger writes.
    writes = metrics["kflow_status_writes_total"]
    started, finished = parse_time(status["startedAt"]), parse_time(status["finishedAt"])
    assert started is not None and finished is not None
    seconds = (finished - started).total_seconds()
    assert writes <= seconds + 1 + 2, (writes, seconds)   # +2: whole-second timestamps
    assert metrics['kflow_throttle_waits_total{bucket="status-write"}'] >= 1, metrics
    pod_events = 4 * (WIDTH + 3)        # each pod: created, scheduled, running, finished
    assert writes < pod_events / 2, (writes, pod_events)

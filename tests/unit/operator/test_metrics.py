"""The metrics registry's text exposition, `OperatorMetrics`' bookkeeping, `/metrics`."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from kflow_operator.metrics import (
    CONTENT_TYPE,
    Counter,
    Histogram,
    OperatorMetrics,
    Registry,
    serve,
)

STARTED = datetime(2026, 1, 1, tzinfo=UTC)


def test_counters_and_histograms_follow_the_text_format() -> None:
    registry = Registry()
    requests = registry.register(Counter("kflow_requests_total", "Requests.", ("verb",)))
    seconds = registry.register(Histogram("kflow_seconds", "Durations.", ("kind",),
                                          buckets=(0.1, 1.0)))
    requests.inc(verb='get "x"\n')
    requests.inc(2, verb="create")
    seconds.observe(0.05, kind="run")
    seconds.observe(0.5, kind="run")
    assert registry.exposition() == (
        "# HELP kflow_requests_total Requests.\n"
        "# TYPE kflow_requests_total counter\n"
        'kflow_requests_total{verb="create"} 2\n'
        'kflow_requests_total{verb="get \\"x\\"\\n"} 1\n'
        "# HELP kflow_seconds Durations.\n"
        "# TYPE kflow_seconds histogram\n"
        'kflow_seconds_bucket{kind="run",le="0.1"} 1\n'
        'kflow_seconds_bucket{kind="run",le="1"} 2\n'
        'kflow_seconds_bucket{kind="run",le="+Inf"} 2\n'
        'kflow_seconds_sum{kind="run"} 0.55\n'
        'kflow_seconds_count{kind="run"} 2\n')


def test_wrong_labels_and_negative_increments_are_refused() -> None:
    counter = Counter("c_total", "C.", ("verb",))
    with pytest.raises(ValueError, match="expected"):
        counter.inc(outcome="ok")
    with pytest.raises(ValueError, match="only goes up"):
        counter.inc(-1, verb="get")


def test_runs_by_phase_move_between_phases_and_leave_when_gone() -> None:
    metrics = OperatorMetrics(started=STARTED)
    metrics.run_phase("ns", "a", "Running")
    metrics.run_phase("ns", "b", "Running")
    metrics.run_phase("ns", "a", "Succeeded")
    metrics.run_phase("ns", "a", "Succeeded")
    assert (metrics.flowruns.value(phase="Running"),
            metrics.flowruns.value(phase="Succeeded")) == (1, 1)
    metrics.run_phase("ns", "b", None)
    assert metrics.flowruns.value(phase="Running") == 0


def test_a_finished_attempt_counts_once_and_not_if_it_ended_before_the_operator() -> None:
    metrics = OperatorMetrics(started=STARTED)
    later = STARTED + timedelta(seconds=5)
    for _ in range(3):
        metrics.task_finished(("uid", "train", "t0", "1"), "succeeded", later)
    metrics.task_finished(("uid", "train", "t1", "1"), "failed", later)
    metrics.task_finished(("uid", "start", "t", "1"), "succeeded", STARTED - timedelta(1))
    assert metrics.tasks_finished.value(outcome="succeeded") == 1
    assert metrics.tasks_finished.value(outcome="failed") == 1


def test_created_pods_observe_their_delay_since_the_task_was_ready() -> None:
    metrics = OperatorMetrics(started=STARTED)
    metrics.pod_created(STARTED, STARTED + timedelta(milliseconds=30))
    metrics.pod_created(None, STARTED)                                  # counted only
    metrics.pod_created(STARTED, STARTED - timedelta(seconds=1))        # skew: 0, not < 0
    assert metrics.tasks_started.value() == 3
    text = metrics.registry.exposition()
    assert "# TYPE kflow_task_transition_seconds histogram" in text
    assert 'kflow_task_transition_seconds_bucket{le="0.01"} 1' in text
    assert 'kflow_task_transition_seconds_bucket{le="0.05"} 2' in text
    assert 'kflow_task_transition_seconds_bucket{le="10"} 2' in text
    assert "kflow_task_transition_seconds_count 2" in text
    assert "kflow_task_transition_seconds_sum 0.03" in text


def test_timed_reconciles_are_observed_and_their_errors_counted() -> None:
    metrics = OperatorMetrics(started=STARTED)

    def broken(namespace: str, name: str) -> float | None:
        raise RuntimeError("boom")

    assert metrics.timed("flowrun", lambda namespace, name: 3.0)("ns", "a") == 3.0
    with pytest.raises(RuntimeError):
        metrics.timed("flowrun", broken)("ns", "a")
    assert metrics.reconcile_errors.value(kind="flowrun", error="RuntimeError") == 1
    text = metrics.registry.exposition()
    assert 'kflow_reconcile_duration_seconds_count{kind="flowrun"} 2' in text
    metrics.throttled("pod-create")(0.25)
    assert metrics.throttle_seconds.value(bucket="pod-create") == 0.25


def test_the_endpoint_serves_metrics_and_nothing_else() -> None:
    metrics = OperatorMetrics(started=STARTED)
    metrics.tasks_started.inc()
    server = serve(metrics.registry, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
            assert answer.headers["Content-Type"] == CONTENT_TYPE
            assert "kflow_tasks_started_total 1\n" in answer.read().decode()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{base}/other", timeout=5)
        assert info.value.code == 404
        info.value.close()
    finally:
        server.shutdown()
        server.server_close()

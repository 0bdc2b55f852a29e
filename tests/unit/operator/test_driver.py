"""A hybrid run's driver, alive or lost, from its FlowRun and the clock (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kflow_operator.driver import driver_lost
from kflow_operator.settings import from_env

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def _run(beat: datetime | None, created: datetime = NOW - timedelta(minutes=10)) -> dict:
    status = {} if beat is None else {"driver": {
        "host": "laptop", "pid": 4242, "heartbeatAt": beat.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    return {"metadata": {"creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "spec": {"driver": "Local"}, "status": status}


def test_a_driver_that_reports_is_alive_until_the_timeout() -> None:
    lost, wait = driver_lost(_run(NOW - timedelta(seconds=30)), NOW, 120.0)
    assert lost is None and 90.0 <= wait <= 91.0


def test_a_silent_driver_is_lost_with_who_and_what_to_do() -> None:
    lost, wait = driver_lost(_run(NOW - timedelta(seconds=121)), NOW, 120.0)
    assert lost is not None and wait == 0.0
    assert "on laptop (pid 4242) has not reported for 121 s (limit 120 s)" in lost
    assert "run --local" in lost


def test_before_its_first_report_the_creation_counts() -> None:
    young = _run(None, created=NOW - timedelta(seconds=5))
    assert driver_lost(young, NOW, 120.0)[0] is None
    old = _run(None, created=NOW - timedelta(seconds=500))
    lost, _ = driver_lost(old, NOW, 120.0)
    assert lost is not None and "(it never reported)" in lost


def test_the_timeout_is_an_operator_setting() -> None:
    assert from_env({}).driver_timeout_seconds == 120.0
    assert from_env({"KFLOW_DRIVER_TIMEOUT_SECONDS": "30"}).driver_timeout_seconds == 30.0

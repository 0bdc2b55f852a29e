"""Restart rules, crash-loop back-off, deadlines, grace periods, termination messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kflow.cluster.node.policy import (
    BACKOFF_MAX,
    Backoff,
    backoff_message,
    cpu_nice,
    deadline_exceeded,
    go_duration,
    grace_seconds,
    next_backoff,
    restart_decision,
    should_restart,
    termination_message,
)


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        ("Always", 0, True),
        ("Always", 1, True),
        ("OnFailure", 0, False),
        ("OnFailure", 2, True),
        ("Never", 1, False),
    ],
)
def test_should_restart(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


def test_backoff_sequence_like_kubelet() -> None:
    # first crash: restart at once, entry 10 s
    first = restart_decision(None, finished=100.0, now=100.0)
    assert first.restart_now and first.entry == Backoff(10.0, 100.0)
    # second crash right away: wait 10 s
    second = restart_decision(first.entry, finished=101.0, now=101.0)
    assert not second.restart_now and second.wait == pytest.approx(10.0)
    # after the wait it restarts and doubles
    later = restart_decision(first.entry, finished=101.0, now=111.5)
    assert later.restart_now and later.entry is not None and later.entry.delay == 20.0
    delays = []
    entry = None
    for step in range(8):
        entry = next_backoff(entry, float(step))
        delays.append(entry.delay)
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_backoff_resets_after_a_long_quiet_time() -> None:
    entry = Backoff(BACKOFF_MAX, 0.0)
    assert next_backoff(entry, 2 * BACKOFF_MAX + 1).delay == 10.0
    assert restart_decision(
        entry, finished=2 * BACKOFF_MAX + 1, now=2 * BACKOFF_MAX + 1
    ).restart_now


def test_go_duration_and_message() -> None:
    assert go_duration(10) == "10s"
    assert go_duration(80) == "1m20s"
    assert go_duration(300) == "5m0s"
    assert backoff_message(20, "c", "p", "ns", "u") == (
        "back-off 20s restarting failed container=c pod=p_ns(u)"
    )


def test_deadline() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert not deadline_exceeded(None, 5, start)
    assert not deadline_exceeded(start, None, start + timedelta(days=1))
    assert not deadline_exceeded(start, 5, start + timedelta(seconds=4))
    assert deadline_exceeded(start, 5, start + timedelta(seconds=5))


def test_grace_seconds() -> None:
    assert grace_seconds({"metadata": {}, "spec": {}}) == 30
    assert grace_seconds({"spec": {"terminationGracePeriodSeconds": 3}}) == 3
    pod = {
        "metadata": {"deletionGracePeriodSeconds": 0},
        "spec": {"terminationGracePeriodSeconds": 3},
    }
    assert grace_seconds(pod) == 0


def test_termination_message() -> None:
    assert termination_message(b"done", None, False, "") == "done"
    assert termination_message(b"x" * 5000, None, False, "") == "x" * 4096
    assert termination_message(b"", "File", True, "tail") is None
    assert termination_message(b"", "FallbackToLogsOnError", True, "tail") == "tail"
    assert termination_message(b"", "FallbackToLogsOnError", False, "tail") is None
    assert termination_message(b"file", "FallbackToLogsOnError", True, "tail") == "file"


@pytest.mark.parametrize(("cores", "nice"), [
    (None, 19), (0.001, 19), (0.1, 10), (0.25, 6), (0.5, 3), (1.0, 0), (4.0, 0)])
def test_cpu_nice_mirrors_cpu_shares(cores: float | None, nice: int) -> None:
    assert cpu_nice(cores) == nice

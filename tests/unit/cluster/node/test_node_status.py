"""Pod phase, conditions and container statuses as a kubelet reports them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kflow.cluster.node.status import (
    ContainerView,
    PodReport,
    Running,
    Terminated,
    Waiting,
    build_status,
    container_status,
    exit_details,
    parse_time,
    pod_phase,
    terminated_from_api,
    termination_reason,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = T0 + timedelta(seconds=7)


def running(name: str = "c") -> ContainerView:
    return ContainerView(name, "img", Running(T0, "process://10"), ready=True)


def ended(code: int, name: str = "c", restarts: int = 0) -> ContainerView:
    reason = termination_reason(code, False)
    return ContainerView(
        name, "img", Terminated(code, reason, T1, T0, "process://10"), restart_count=restarts
    )


def waiting(name: str = "c", reason: str = "ContainerCreating") -> ContainerView:
    return ContainerView(name, "img", Waiting(reason))


def backoff(code: int, name: str = "c") -> ContainerView:
    last = Terminated(code, termination_reason(code, False), T1, T0, "process://10")
    return ContainerView(name, "img", Waiting("CrashLoopBackOff"), 2, last)


@pytest.mark.parametrize(
    ("policy", "init", "containers", "phase"),
    [
        ("Never", [], [waiting()], "Pending"),
        ("Never", [], [running()], "Running"),
        ("Never", [], [ended(0)], "Succeeded"),
        ("Never", [], [ended(1)], "Failed"),
        ("Never", [], [ended(0, "a"), running("b")], "Running"),
        ("Never", [], [ended(0, "a"), ended(2, "b")], "Failed"),
        ("OnFailure", [], [ended(0)], "Succeeded"),
        ("OnFailure", [], [backoff(1)], "Running"),
        ("Always", [], [ended(0)], "Running"),
        ("Always", [], [backoff(1)], "Running"),
        ("Never", [running("i")], [waiting()], "Pending"),
        ("Never", [ended(1, "i")], [waiting()], "Failed"),
        ("OnFailure", [backoff(1, "i")], [waiting()], "Pending"),
        ("Always", [ended(0, "i")], [running()], "Running"),
    ],
)
def test_phase(
    policy: str, init: list[ContainerView], containers: list[ContainerView], phase: str
) -> None:
    assert pod_phase(policy, init, containers) == phase


def test_terminal_phase_after_deletion() -> None:
    assert pod_phase("Always", [], [ended(0)], terminal=True) == "Succeeded"
    assert pod_phase("Always", [], [ended(143)], terminal=True) == "Failed"
    assert pod_phase("Always", [], [waiting()], terminal=True) == "Failed"


def test_exit_details_and_reasons() -> None:
    assert exit_details(0) == (0, None)
    assert exit_details(3) == (3, None)
    assert exit_details(-9) == (137, 9)
    assert exit_details(-15) == (143, 15)
    assert termination_reason(0, False) == "Completed"
    assert termination_reason(1, False) == "Error"
    assert termination_reason(137, True) == "OOMKilled"


def test_container_status_shapes() -> None:
    status = container_status(ended(3))
    assert status["state"] == {
        "terminated": {
            "exitCode": 3,
            "reason": "Error",
            "startedAt": "2026-01-02T03:04:05Z",
            "finishedAt": "2026-01-02T03:04:12Z",
            "containerID": "process://10",
        }
    }
    assert status["containerID"] == "process://10"
    assert status["ready"] is False and status["started"] is False
    assert status["lastState"] == {}
    live = container_status(running())
    assert live["state"] == {"running": {"startedAt": "2026-01-02T03:04:05Z"}}
    assert live["ready"] is True and live["started"] is True
    crash = container_status(backoff(1))
    assert crash["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert crash["lastState"]["terminated"]["exitCode"] == 1
    assert crash["restartCount"] == 2
    assert "containerID" not in container_status(waiting())


def test_oom_and_signal_fields() -> None:
    state = Terminated(137, "OOMKilled", T1, T0, "process://1", signal=9, message="m")
    out = container_status(ContainerView("c", "img", state))["state"]["terminated"]
    assert out["signal"] == 9 and out["reason"] == "OOMKilled" and out["message"] == "m"


def report(containers: tuple[ContainerView, ...], **extra: object) -> PodReport:
    return PodReport("Never", (), containers, T0, True, **extra)  # type: ignore[arg-type]


def test_build_status_running_pod() -> None:
    previous = {"conditions": [{"type": "PodScheduled", "status": "True"}]}
    status = build_status(report((running(),)), previous, T1)
    assert status["phase"] == "Running"
    assert status["podIP"] == "127.0.0.1" and status["podIPs"] == [{"ip": "127.0.0.1"}]
    assert status["hostIPs"] == [{"ip": "127.0.0.1"}]
    assert status["startTime"] == "2026-01-02T03:04:05Z"
    kinds = {c["type"]: c["status"] for c in status["conditions"]}
    assert kinds == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
        "PodScheduled": "True",
    }
    assert "initContainerStatuses" not in status


def test_conditions_keep_transition_time_and_explain() -> None:
    first = build_status(report((waiting("a"), running("b"))), {}, T0)
    ready = next(c for c in first["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [a]"
    again = build_status(report((waiting("a"), running("b"))), first, T1)
    assert again["conditions"] == first["conditions"]
    flipped = build_status(report((running("a"), running("b"))), first, T1)
    ready = next(c for c in flipped["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["lastTransitionTime"] == "2026-01-02T03:04:12Z"


def test_no_duplicate_conditions() -> None:
    previous = {
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "PodScheduled", "status": "True"},
            {"type": "DisruptionTarget", "status": "True"},
        ]
    }
    status = build_status(report((running(),)), previous, T1)
    kinds = [c["type"] for c in status["conditions"]]
    assert len(kinds) == len(set(kinds)) == 6


def test_succeeded_and_failed_pods() -> None:
    done = build_status(report((ended(0),)), {}, T1)
    assert done["phase"] == "Succeeded"
    ready = next(c for c in done["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "PodCompleted"
    failed = build_status(
        report((ended(137),), phase_override="Failed", reason="DeadlineExceeded", message="m"),
        {},
        T1,
    )
    assert failed["phase"] == "Failed"
    assert failed["reason"] == "DeadlineExceeded" and failed["message"] == "m"


def test_init_container_conditions() -> None:
    pod = PodReport("Always", (running("i"),), (waiting("c", "PodInitializing"),), T0, True)
    status = build_status(pod, {}, T1)
    init = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert init["status"] == "False"
    assert init["message"] == "containers with incomplete status: [i]"
    assert status["phase"] == "Pending"
    assert status["initContainerStatuses"][0]["name"] == "i"


def test_round_trip_from_api() -> None:
    data = {
        "exitCode": 2,
        "reason": "Error",
        "startedAt": "2026-01-02T03:04:05Z",
        "finishedAt": "2026-01-02T03:04:12Z",
        "containerID": "process://5",
    }
    state = terminated_from_api(data, "/x/0.log")
    assert state.exit_code == 2 and state.finished_at == T1 and state.started_at == T0
    assert state.log_path == "/x/0.log"
    assert parse_time(None) is None and parse_time("junk") is None

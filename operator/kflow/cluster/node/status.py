"""Pod status as a kubelet writes it, computed from the node's view of its containers.

Owns: the container-state values (`Waiting`, `Running`, `Terminated`), the exit-code
→ reason mapping, the pod phase (a port of kubelet's `getPhase`), the four kubelet
conditions (keeping `lastTransitionTime` while a condition's status is unchanged)
and the complete `status` dict sent to pods/status. Pure; no I/O, no clock (callers
pass `now`). Imports nothing from kflow outside `kflow.cluster.node`.
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

POD_IP = "127.0.0.1"
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str | None = None


@dataclass(frozen=True)
class Running:
    started_at: datetime
    container_id: str
    log_path: str = ""


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    finished_at: datetime
    started_at: datetime | None = None
    container_id: str | None = None
    signal: int | None = None
    message: str | None = None
    log_path: str = ""


State = Waiting | Running | Terminated


@dataclass(frozen=True)
class ContainerView:
    """What the status reports about one container."""

    name: str
    image: str
    state: State
    restart_count: int = 0
    last_state: Terminated | None = None
    ready: bool = False


def rfc3339(moment: datetime) -> str:
    """`2026-01-02T03:04:05Z` (API Time has second precision)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_details(returncode: int) -> tuple[int, int | None]:
    """Popen returncode → (exitCode as a runtime reports it, signal or None)."""
    if returncode < 0:
        return 128 - returncode, -returncode
    return returncode, None


def termination_reason(exit_code: int, oom_killed: bool) -> str:
    if oom_killed:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"


def signal_name(number: int) -> str:
    try:
        return _signal.Signals(number).name
    except ValueError:
        return str(number)


def state_dict(state: State) -> dict[str, Any]:
    if isinstance(state, Waiting):
        waiting: dict[str, Any] = {"reason": state.reason}
        if state.message:
            waiting["message"] = state.message
        return {"waiting": waiting}
    if isinstance(state, Running):
        return {"running": {"startedAt": rfc3339(state.started_at)}}
    terminated: dict[str, Any] = {
        "exitCode": state.exit_code,
        "reason": state.reason,
        "finishedAt": rfc3339(state.finished_at),
    }
    if state.started_at is not None:
        terminated["startedAt"] = rfc3339(state.started_at)
    if state.container_id:
        terminated["containerID"] = state.container_id
    if state.signal:
        terminated["signal"] = state.signal
    if state.message:
        terminated["message"] = state.message
    return {"terminated": terminated}


def container_status(view: ContainerView) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": view.name,
        "image": view.image,
        "imageID": f"process://{view.image}",
        "ready": view.ready and isinstance(view.state, Running),
        "started": isinstance(view.state, Running),
        "restartCount": view.restart_count,
        "state": state_dict(view.state),
        "lastState": state_dict(view.last_state) if view.last_state else {},
    }
    container_id = view.state.container_id if isinstance(view.state, Running | Terminated) else None
    if container_id:
        status["containerID"] = container_id
    return status


def _init_done(view: ContainerView) -> bool:
    return isinstance(view.state, Terminated) and view.state.exit_code == 0


def pod_phase(
    restart_policy: str,
    init: Sequence[ContainerView],
    containers: Sequence[ContainerView],
    terminal: bool = False,
) -> str:
    """kubelet's getPhase; `terminal` is set once the node has stopped the pod for good."""
    pending_init = failed_init = 0
    for view in init:
        state = view.state
        if isinstance(state, Running):
            pending_init += 1
        elif isinstance(state, Terminated):
            failed_init += state.exit_code != 0
        elif view.last_state is not None:
            failed_init += view.last_state.exit_code != 0
        else:
            pending_init += 1
    running = waiting = stopped = succeeded = 0
    for view in containers:
        state = view.state
        if isinstance(state, Running):
            running += 1
        elif isinstance(state, Terminated):
            stopped += 1
            succeeded += state.exit_code == 0
        elif view.last_state is not None:
            stopped += 1
            succeeded += view.last_state.exit_code == 0
        else:
            waiting += 1
    if failed_init and (restart_policy == "Never" or terminal):
        return "Failed"
    if (pending_init or failed_init) and not terminal:
        return "Pending"
    if waiting and not terminal:
        return "Pending"
    if running and not terminal:
        return "Running"
    if stopped or terminal:
        if terminal:
            return "Succeeded" if containers and succeeded == len(containers) else "Failed"
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _names(views: Sequence[ContainerView]) -> str:
    return "[" + " ".join(v.name for v in views) + "]"


def _condition(
    kind: str,
    ok: bool,
    previous: Mapping[str, Mapping[str, Any]],
    now: datetime,
    reason: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    status = "True" if ok else "False"
    old = previous.get(kind)
    changed = old is None or old.get("status") != status
    condition: dict[str, Any] = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": rfc3339(now)
        if changed or old is None
        else old.get("lastTransitionTime"),
    }
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def conditions(
    phase: str,
    sandbox_ready: bool,
    init: Sequence[ContainerView],
    containers: Sequence[ContainerView],
    previous: Sequence[Mapping[str, Any]],
    now: datetime,
) -> list[dict[str, Any]]:
    """PodReadyToStartContainers, Initialized, ContainersReady, Ready (+ kept others)."""
    old = {str(c.get("type")): c for c in previous}
    result: list[dict[str, Any]] = [
        _condition("PodReadyToStartContainers", sandbox_ready, old, now)
    ]
    incomplete = [v for v in init if not _init_done(v)]
    if phase == "Succeeded" or not incomplete:
        reason = "PodCompleted" if phase == "Succeeded" and init else None
        result.append(_condition("Initialized", True, old, now, reason))
    else:
        message = f"containers with incomplete status: {_names(incomplete)}"
        result.append(
            _condition("Initialized", False, old, now, "ContainersNotInitialized", message)
        )
    unready = [v for v in containers if not (v.ready and isinstance(v.state, Running))]
    for kind in ("ContainersReady", "Ready"):
        if phase == "Succeeded":
            result.append(_condition(kind, False, old, now, "PodCompleted"))
        elif unready:
            message = f"containers with unready status: {_names(unready)}"
            result.append(_condition(kind, False, old, now, "ContainersNotReady", message))
        else:
            result.append(_condition(kind, True, old, now))
    kinds = {c["type"] for c in result}
    for other in previous:
        if other.get("type") not in kinds:
            kinds.add(other.get("type"))
            result.append(dict(other))
    return result


@dataclass(frozen=True)
class PodReport:
    """Everything the node knows about one pod at one moment."""

    restart_policy: str
    init: tuple[ContainerView, ...]
    containers: tuple[ContainerView, ...]
    start_time: datetime | None
    sandbox_ready: bool
    terminal: bool = False
    reason: str | None = None
    message: str | None = None
    phase_override: str | None = None


def build_status(report: PodReport, previous: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The full `status` for a merge patch (lists are replaced whole by merge patches)."""
    phase = report.phase_override or pod_phase(
        report.restart_policy, report.init, report.containers, report.terminal
    )
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions(
            phase,
            report.sandbox_ready,
            report.init,
            report.containers,
            previous.get("conditions") or [],
            now,
        ),
        "hostIP": POD_IP,
        "hostIPs": [{"ip": POD_IP}],
        "podIP": POD_IP,
        "podIPs": [{"ip": POD_IP}],
        "containerStatuses": [container_status(v) for v in report.containers],
        "reason": report.reason,
        "message": report.message,
    }
    if report.start_time is not None:
        status["startTime"] = rfc3339(report.start_time)
    if report.init:
        status["initContainerStatuses"] = [container_status(v) for v in report.init]
    return status


def parse_time(text: str | None) -> datetime | None:
    """An API Time (`2026-01-02T03:04:05Z`) → aware datetime; None if absent or bad."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def terminated_from_api(data: Mapping[str, Any], log_path: str = "") -> Terminated:
    """A `state.terminated` dict read back from the API (used after a node restart)."""
    return Terminated(
        exit_code=int(data.get("exitCode", 0)),
        reason=str(data.get("reason") or ("Completed" if not data.get("exitCode") else "Error")),
        finished_at=parse_time(data.get("finishedAt")) or datetime.now(UTC),
        started_at=parse_time(data.get("startedAt")),
        container_id=data.get("containerID"),
        signal=data.get("signal"),
        message=data.get("message"),
        log_path=log_path,
    )

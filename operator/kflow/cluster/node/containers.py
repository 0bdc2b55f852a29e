"""One container of one pod on the node: its runtime slot, start and exit.

Owns `Slot` (the mutable per-container record a pod worker keeps: state, last state,
restart count, back-off entry, process), `launch` (image map → argv, env resolution,
mount paths → host directories, working dir, termination-message file, log file,
process start at the CPU request's weight, memory limit, Pulled/Created/Started
events) and `collect_exit` (returncode → Terminated with reason and termination
message). Only the owning pod worker touches a Slot (the memory watcher only sets
`oom`). Imports nothing from kflow outside
`kflow.cluster.node`.

Termination messages: there is no mount namespace, so each instance gets its own
empty file `<pod dir>/termination/<container>/<instance>`, passed to the process as
`KFLOW_TERMINATION_MESSAGE_PATH`. That file is read whatever terminationMessagePath
says; a non-default terminationMessagePath is additionally read as a host path
(when the per-instance file is empty), since processes share the host filesystem.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kflow.cluster.node.context import KubeLookups, NodeContext, base_env, service_env
from kflow.cluster.node.envvars import EnvError, expand_argv, resolve_env
from kflow.cluster.node.images import UnmappedImage, plan_launch
from kflow.cluster.node.logfiles import instance_log, tail_text
from kflow.cluster.node.policy import (
    DEFAULT_TERMINATION_PATH,
    FALLBACK_LOG_BYTES,
    FALLBACK_LOG_LINES,
    Backoff,
    cpu_nice,
    termination_message,
)
from kflow.cluster.node.process import ContainerProcess, StartError, start_process
from kflow.cluster.node.quantity import parse_quantity
from kflow.cluster.node.status import (
    ContainerView,
    Running,
    State,
    Terminated,
    Waiting,
    exit_details,
    parse_time,
    terminated_from_api,
    termination_reason,
)
from kflow.cluster.node.volumes import host_paths, mount_env, mount_table

CONFIG_ERROR = "CreateContainerConfigError"
LOST_MESSAGE = "The container could not be located when the node restarted"


@dataclass
class Slot:
    spec: dict[str, Any]
    is_init: bool
    state: State
    last_state: Terminated | None = None
    restart_count: int = 0
    started_once: bool = False
    process: ContainerProcess | None = None
    backoff: Backoff | None = None
    finished_mono: float = 0.0
    retry_mono: float = 0.0  # config errors: next attempt
    backoff_event_mono: float = -1.0
    termination_file: Path | None = None
    oom: threading.Event = field(default_factory=threading.Event)
    oom_bytes: int = 0
    last_error: str | None = None

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    @property
    def image(self) -> str:
        return str(self.spec.get("image", ""))

    def view(self) -> ContainerView:
        return ContainerView(
            name=self.name,
            image=self.image,
            state=self.state,
            restart_count=self.restart_count,
            last_state=self.last_state,
            ready=isinstance(self.state, Running),
        )


@dataclass(frozen=True)
class Sandbox:
    """What the pod worker set up once for all containers."""

    pod_dir: Path
    volumes: dict[str, Path]
    kubeconfig: Path | None


def _fail_config(ctx: NodeContext, pod: dict[str, Any], slot: Slot, message: str) -> None:
    slot.state = Waiting(CONFIG_ERROR, message)
    if slot.last_error != message:
        ctx.events.warning(pod, "Failed", f"Error: {message}", slot.name)
        slot.last_error = message


def launch(
    ctx: NodeContext, pod: dict[str, Any], slot: Slot, sandbox: Sandbox, now: datetime,
    on_exit: Callable[[], None] | None = None,
) -> bool:
    """Start the slot's next instance (`on_exit` called when it exits); False (slot
    left waiting or terminated) if it can't."""
    spec = slot.spec
    instance = slot.restart_count
    term_file = sandbox.pod_dir / "termination" / slot.name / str(instance)
    visible: dict[str, str] = {
        **service_env(ctx.access.server),
        **mount_env(spec, sandbox.volumes),
        "KFLOW_TERMINATION_MESSAGE_PATH": str(term_file),
        "KFLOW_POD_DIR": str(sandbox.pod_dir),
    }
    if sandbox.kubeconfig is not None:
        visible["KUBECONFIG"] = str(sandbox.kubeconfig)
    mounts = mount_table(spec, sandbox.volumes)      # mount paths → host directories
    try:
        declared = {
            key: host_paths(value, mounts)
            for key, value in resolve_env(pod, spec, KubeLookups(ctx.kube), ctx.facts,
                                          visible).items()
        }
        final_preview = {**visible, **declared}
        command = [host_paths(a, mounts) for a in expand_argv(spec.get("command") or [],
                                                             final_preview)]
        args = [host_paths(a, mounts) for a in expand_argv(spec.get("args") or [],
                                                          final_preview)]
        plan = plan_launch(ctx.image_map, slot.image, command, args)
    except (EnvError, UnmappedImage, ValueError) as exc:
        _fail_config(ctx, pod, slot, str(exc))
        return False
    except Exception as exc:  # API errors while reading ConfigMaps/Secrets: retry later
        _fail_config(ctx, pod, slot, f"reading the environment: {exc}")
        return False
    name = str((pod.get("metadata") or {}).get("name", ""))
    env = {**base_env(), "HOSTNAME": name, **dict(plan.env), **visible, **declared}
    working_dir = spec.get("workingDir")
    cwd = (host_paths(str(working_dir), mounts) if working_dir
           else str(plan.working_dir or sandbox.pod_dir / "work"))
    log_path = instance_log(sandbox.pod_dir, slot.name, instance)
    try:
        Path(cwd).mkdir(parents=True, exist_ok=True)
        term_file.parent.mkdir(parents=True, exist_ok=True)
        term_file.write_bytes(b"")
    except OSError as exc:
        _fail_config(ctx, pod, slot, f"working directory {cwd!r}: {exc}")
        return False
    slot.termination_file = term_file
    slot.last_error = None
    slot.oom.clear()
    if not slot.started_once:
        ctx.events.normal(
            pod, "Pulled", f'Container image "{slot.image}" already present on machine', slot.name
        )
    ctx.events.normal(pod, "Created", f"Created container: {slot.name}", slot.name)
    try:
        process = start_process(plan.argv, env, cwd, log_path, ctx.pgid_dir,
                                nice=cpu_nice(_cpu_request(spec)), on_exit=on_exit)
    except StartError as exc:
        slot.started_once = True
        slot.state = Terminated(
            exit_code=128,
            reason="StartError",
            finished_at=now,
            started_at=now,
            message=str(exc),
            log_path=str(log_path),
        )
        ctx.events.warning(pod, "Failed", f"Error: {exc}", slot.name)
        return False
    slot.started_once = True
    slot.process = process
    slot.state = Running(now, f"process://{process.pid}", str(log_path))
    limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
    if limit:

        def exceeded(used: int, slot: Slot = slot) -> None:
            slot.oom_bytes = used
            slot.oom.set()

        ctx.memory.add(process.pid, int(parse_quantity(limit)), exceeded)
    ctx.events.normal(pod, "Started", f"Started container {slot.name}", slot.name)
    return True


def _cpu_request(spec: dict[str, Any]) -> float | None:
    """The container's CPU request in cores (its limit when only that is set), or None."""
    resources = spec.get("resources") or {}
    for kind in ("requests", "limits"):
        value = (resources.get(kind) or {}).get("cpu")
        if value is not None:
            try:
                return float(parse_quantity(str(value)))
            except ValueError:
                return None
    return None


def collect_exit(
    ctx: NodeContext, pod: dict[str, Any], slot: Slot, returncode: int, now: datetime
) -> Terminated:
    """The Terminated state for an instance that just ended (process reaped)."""
    assert isinstance(slot.state, Running)
    running = slot.state
    if slot.process is not None:
        ctx.memory.remove(slot.process.pid)
    slot.process = None
    oom = slot.oom.is_set()
    exit_code, signal = exit_details(returncode)
    if oom:
        exit_code, signal = 137, 9
        ctx.events.warning(
            pod,
            "OOMKilling",
            f"Memory limit exceeded: killed container {slot.name} "
            f"(rss {slot.oom_bytes} bytes > limit)",
            slot.name,
        )
    content = b""
    if slot.termination_file is not None:
        try:
            content = slot.termination_file.read_bytes()
        except OSError:
            content = b""
    custom = str(slot.spec.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)
    if not content and custom != DEFAULT_TERMINATION_PATH:
        try:
            path = Path(custom)
            if path.is_file() and path.stat().st_mtime >= running.started_at.timestamp():
                content = path.read_bytes()[:4096]
        except OSError:
            content = b""
    failed = exit_code != 0
    log_tail = ""
    if failed and slot.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
        log_tail = tail_text(Path(running.log_path), FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES)
    message = termination_message(
        content, slot.spec.get("terminationMessagePolicy"), failed, log_tail
    )
    return Terminated(
        exit_code=exit_code,
        reason=termination_reason(exit_code, oom),
        finished_at=now,
        started_at=running.started_at,
        container_id=running.container_id,
        signal=signal,
        message=message,
        log_path=running.log_path,
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


def seed_slot(slot: Slot, seen: dict[str, Any], pod_dir: Path, lost: bool, now: datetime) -> None:
    """Take over a container status written before this node (re)started.

    A container the API says was running is gone now: it is reported terminated
    (ContainerStatusUnknown, 137) when `lost`, and restarted per policy by the worker.
    """
    last = (seen.get("lastState") or {}).get("terminated")
    if not (seen.get("containerID") or last):
        return  # never ran
    slot.restart_count = int(seen.get("restartCount") or 0)
    slot.started_once = True
    path = str(instance_log(pod_dir, slot.name, slot.restart_count))
    if last:
        previous = str(instance_log(pod_dir, slot.name, max(slot.restart_count - 1, 0)))
        slot.last_state = terminated_from_api(last, previous)
    state = seen.get("state") or {}
    if "terminated" in state:
        slot.state = terminated_from_api(state["terminated"], path)
    elif "running" in state and lost:
        slot.state = Terminated(
            137,
            "ContainerStatusUnknown",
            now,
            started_at=parse_time(state["running"].get("startedAt")),
            container_id=seen.get("containerID"),
            message=LOST_MESSAGE,
            log_path=path,
        )
    elif slot.last_state is not None:
        slot.state, slot.last_state = slot.last_state, None
    slot.finished_mono = time.monotonic()

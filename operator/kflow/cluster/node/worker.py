"""One pod's life on the node: a thread that is the only writer of that pod's status.

Owns the pod's sandbox (state dir, service-account credentials, volumes), running
init containers in order and then the containers, restarts with back-off per
restartPolicy, activeDeadlineSeconds, deletion (SIGTERM, grace period, SIGKILL,
terminal status, final delete with uid precondition), the status patches and the
log registry entry. After a node restart, containers that the API says were running
are reported as lost (ContainerStatusUnknown, 137) and restarted per policy, like a
kubelet whose containers vanished. Imports nothing from kflow outside
`kflow.cluster.node`.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kflow.cluster.node.containers import (
    CONFIG_ERROR,
    Sandbox,
    Slot,
    collect_exit,
    launch,
    seed_slot,
)
from kflow.cluster.node.context import KubeLookups, NodeContext
from kflow.cluster.node.kube import KubeError, pod_path
from kflow.cluster.node.logserver import ContainerLogs
from kflow.cluster.node.podkubeconfig import Credentials, CredentialsError, issue
from kflow.cluster.node.policy import (
    DEADLINE_MESSAGE,
    DEADLINE_REASON,
    backoff_message,
    deadline_exceeded,
    grace_seconds,
    restart_decision,
    should_restart,
)
from kflow.cluster.node.status import (
    TERMINAL_PHASES,
    PodReport,
    Running,
    Terminated,
    Waiting,
    build_status,
    parse_time,
    pod_phase,
)
from kflow.cluster.node.volumes import VolumeError, prepare_volumes

log = logging.getLogger(__name__)
SHUTDOWN_GRACE = 3.0
CONFIG_RETRY = 1.0
UNKNOWN_MESSAGE = "The container could not be located when the pod was terminated"
OUR_CONDITIONS = {"PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"}


class PodWorker:
    """Drive one pod (by uid). `update`/`gone`/`stop` may be called from any thread."""

    def __init__(self, ctx: NodeContext, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        self.ctx = ctx
        self.uid = str(meta["uid"])
        self.namespace = str(meta["namespace"])
        self.name = str(meta["name"])
        self.pod_dir = ctx.pod_dir(self.namespace, self.name, self.uid)
        self.restart_policy = str(spec.get("restartPolicy") or "Always")
        self._pod = pod
        self._gone = False
        self._stopping = False
        self._wake = threading.Event()
        self._lock = threading.Lock()
        first = "PodInitializing" if spec.get("initContainers") else "ContainerCreating"
        self.init = [
            Slot(c, True, Waiting("PodInitializing")) for c in spec.get("initContainers") or []
        ]
        self.main = [Slot(c, False, Waiting(first)) for c in spec.get("containers") or []]
        self.sandbox: Sandbox | None = None
        self.creds: Credentials | None = None
        self.start_time: datetime | None = None
        self.final_phase: str | None = None
        self.forced_terminal = False
        self.reason: str | None = None
        self.message: str | None = None
        self.frozen = False  # terminal before this node saw it: never write its status
        self._sandbox_retry = 0.0
        self._sandbox_error: str | None = None
        self._last_sent: dict[str, Any] | None = None
        self._patch_error: str | None = None
        self._delete_at: float | None = None
        self._seed(pod)
        self.thread = threading.Thread(
            target=self._run, name=f"pod-{self.namespace}/{self.name}", daemon=True
        )

    # -- called by the agent ------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def update(self, pod: dict[str, Any]) -> None:
        with self._lock:
            self._pod = pod
        self._wake.set()

    def gone(self) -> None:
        self._gone = True
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    # -- seeding after a node restart ---------------------------------------------------
    def _seed(self, pod: dict[str, Any]) -> None:
        status = pod.get("status") or {}
        self.start_time = parse_time(status.get("startTime"))
        if status.get("phase") in TERMINAL_PHASES:
            self.final_phase = str(status["phase"])
            self.frozen = True
        known = {
            str(s.get("name")): s
            for s in [
                *(status.get("initContainerStatuses") or []),
                *(status.get("containerStatuses") or []),
            ]
        }
        now = datetime.now(UTC)
        for slot in [*self.init, *self.main]:
            seen = known.get(slot.name)
            if seen:
                seed_slot(slot, seen, self.pod_dir, lost=not self.frozen, now=now)

    # -- the loop -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except Exception:
            log.exception("pod %s/%s: worker failed", self.namespace, self.name)
            self._kill_all(0.0, None)

    def _snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._pod

    def _loop(self) -> None:
        while True:
            pod = self._snapshot()
            if self._stopping:
                self._kill_all(SHUTDOWN_GRACE, None)
                return
            if self._gone:
                self._kill_all(min(grace_seconds(pod), 2), None)
                self._cleanup()
                return
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                self._deleting(pod)
            elif self.final_phase is None:
                self._step(pod)
            self._publish(pod)
            busy = any(s.process is not None for s in [*self.init, *self.main])
            self._wake.wait(0.1 if busy else (5.0 if self.final_phase else 0.5))
            self._wake.clear()

    # -- sandbox --------------------------------------------------------------------------
    def _setup_sandbox(self, pod: dict[str, Any], now: datetime) -> bool:
        if time.monotonic() < self._sandbox_retry:
            return False
        (self.pod_dir / "work").mkdir(parents=True, exist_ok=True)
        if self.start_time is None:
            self.start_time = now
        try:
            creds = issue(self.ctx.kube, self.ctx.access, pod, self.pod_dir)
            volumes = prepare_volumes(
                pod,
                self.pod_dir,
                KubeLookups(self.ctx.kube),
                self.ctx.facts,
                creds.token if creds else None,
            )
        except (CredentialsError, VolumeError, KubeError, OSError) as exc:
            message = str(exc)
            reason = "ContainerCreating" if isinstance(exc, VolumeError) else CONFIG_ERROR
            for slot in [*self.init, *self.main]:
                if not slot.started_once:
                    slot.state = Waiting(reason, message)
            if message != self._sandbox_error:
                event = "FailedMount" if isinstance(exc, VolumeError) else "Failed"
                self.ctx.events.warning(pod, event, message)
                self._sandbox_error = message
            self._sandbox_retry = time.monotonic() + (0.3 if "not found" in message else 2.0)
            return False
        self.creds = creds
        self.sandbox = Sandbox(self.pod_dir, volumes, creds.kubeconfig if creds else None)
        first = "PodInitializing" if self.init else "ContainerCreating"
        for slot in [*self.init, *self.main]:
            if not slot.started_once:
                slot.state = Waiting("PodInitializing" if slot.is_init or self.init else first)
        return True

    def _refresh_token(self, pod: dict[str, Any], now: datetime) -> None:
        if self.creds is not None and self.creds.due(now):
            try:
                self.creds = issue(self.ctx.kube, self.ctx.access, pod, self.pod_dir) or self.creds
            except (CredentialsError, KubeError, OSError) as exc:
                log.warning("pod %s/%s: token refresh failed: %s", self.namespace, self.name, exc)

    # -- one pass -------------------------------------------------------------------------
    def _step(self, pod: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        if self.sandbox is None and not self._setup_sandbox(pod, now):
            return
        self._refresh_token(pod, now)
        deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline_exceeded(self.start_time, deadline, now):
            self.ctx.events.warning(pod, DEADLINE_REASON, DEADLINE_MESSAGE)
            self._kill_all(float(grace_seconds({"spec": pod.get("spec")})), pod)
            self.reason, self.message = DEADLINE_REASON, DEADLINE_MESSAGE
            self._finish("Failed")
            return
        pending = [s for s in self.init if not _init_done(s)]
        if pending:
            self._drive(pod, pending[0], now)
            if not _init_done(pending[0]):
                self._maybe_finish()
                return
            if len(pending) > 1:
                return
        for slot in self.main:
            self._drive(pod, slot, now)
        self._maybe_finish()

    def _drive(self, pod: dict[str, Any], slot: Slot, now: datetime) -> None:
        assert self.sandbox is not None
        mono = time.monotonic()
        if slot.process is not None:
            code = slot.process.poll()
            if code is None:
                return
            slot.state = collect_exit(self.ctx, pod, slot, code, now)
            slot.finished_mono = mono
        state = slot.state
        if isinstance(state, Running):
            return
        if isinstance(state, Waiting) and (not slot.started_once or state.reason == CONFIG_ERROR):
            if mono >= slot.retry_mono and not launch(self.ctx, pod, slot, self.sandbox, now,
                                                      self._wake.set):
                slot.retry_mono = mono + CONFIG_RETRY
            return
        ended = state if isinstance(state, Terminated) else slot.last_state
        if ended is None:
            return
        restart = (
            ended.exit_code != 0 and self.restart_policy != "Never"
            if slot.is_init
            else should_restart(self.restart_policy, ended.exit_code)
        )
        if not restart:
            return
        decision = restart_decision(slot.backoff, slot.finished_mono, mono)
        if decision.restart_now:
            slot.backoff = decision.entry
            slot.last_state = ended
            slot.restart_count += 1
            launch(self.ctx, pod, slot, self.sandbox, now, self._wake.set)
            return
        if not (isinstance(state, Waiting) and state.reason == "CrashLoopBackOff"):
            delay = decision.entry.delay if decision.entry else 0.0
            slot.last_state = ended
            slot.state = Waiting(
                "CrashLoopBackOff",
                backoff_message(delay, slot.name, self.name, self.namespace, self.uid),
            )
            self.ctx.events.warning(
                pod,
                "BackOff",
                f"Back-off restarting failed container {slot.name} in pod "
                f"{self.name}_{self.namespace}({self.uid})",
                slot.name,
            )

    def _maybe_finish(self) -> None:
        phase = pod_phase(
            self.restart_policy, [s.view() for s in self.init], [s.view() for s in self.main]
        )
        if phase in TERMINAL_PHASES and not any(s.process for s in [*self.init, *self.main]):
            self._finish(phase)

    def _finish(self, phase: str) -> None:
        """Terminal phases are final: containers that never ran get a terminated state."""
        now = datetime.now(UTC)
        for slot in [*self.init, *self.main]:
            if isinstance(slot.state, Waiting):
                if slot.last_state is not None:
                    slot.state, slot.last_state = slot.last_state, None
                else:
                    slot.state = Terminated(
                        137, "ContainerStatusUnknown", now, message=UNKNOWN_MESSAGE
                    )
        self.final_phase = phase

    # -- stopping -------------------------------------------------------------------------
    def _kill_all(self, grace: float, pod: dict[str, Any] | None) -> None:
        """SIGTERM every running instance, SIGKILL after `grace`; record exits if `pod`."""
        alive = [s for s in [*self.init, *self.main] if s.process is not None]
        for slot in alive:
            assert slot.process is not None
            if pod is not None:
                self.ctx.events.normal(pod, "Killing", f"Stopping container {slot.name}", slot.name)
            slot.process.signal(15)
        deadline = time.monotonic() + max(grace, 0.0)
        while alive:
            for slot in list(alive):
                assert slot.process is not None
                code = slot.process.poll()
                if code is not None:
                    alive.remove(slot)
                    if pod is not None:
                        slot.state = collect_exit(self.ctx, pod, slot, code, datetime.now(UTC))
                    else:
                        self.ctx.memory.remove(slot.process.pid)
                        slot.process = None
            if not alive:
                break
            if time.monotonic() >= deadline:
                for slot in alive:
                    assert slot.process is not None
                    slot.process.signal(9)
                deadline = time.monotonic() + 5
            time.sleep(0.05)

    def _deleting(self, pod: dict[str, Any]) -> None:
        if self.final_phase is None:
            started = any(s.started_once for s in [*self.init, *self.main])
            self._kill_all(float(grace_seconds(pod)), pod)
            self.forced_terminal = True
            views = ([s.view() for s in self.init], [s.view() for s in self.main])
            phase = pod_phase(self.restart_policy, *views, terminal=True) if started else "Failed"
            self._finish(phase)
            self._publish(pod)
        if self._delete_at is not None and time.monotonic() < self._delete_at:
            return
        self._delete_at = time.monotonic() + 5.0
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        try:
            self.ctx.kube.request("DELETE", pod_path(self.namespace, self.name), body=body)
        except KubeError as exc:
            if exc.status not in (404, 409):
                log.warning("pod %s/%s: final delete failed: %s", self.namespace, self.name, exc)

    def _cleanup(self) -> None:
        self.ctx.registry.forget(self.namespace, self.name, self.uid)
        shutil.rmtree(self.pod_dir, ignore_errors=True)

    # -- reporting ------------------------------------------------------------------------
    def _publish(self, pod: dict[str, Any]) -> None:
        self._publish_logs()
        if self.frozen:
            return
        report = PodReport(
            restart_policy=self.restart_policy,
            init=tuple(s.view() for s in self.init),
            containers=tuple(s.view() for s in self.main),
            start_time=self.start_time,
            sandbox_ready=self.sandbox is not None and self.final_phase is None,
            reason=self.reason,
            message=self.message,
            phase_override=self.final_phase,
        )
        existing = (pod.get("status") or {}).get("conditions") or []
        sent = (self._last_sent or {}).get("conditions") or existing
        previous = [c for c in sent if c.get("type") in OUR_CONDITIONS] + [
            c for c in existing if c.get("type") not in OUR_CONDITIONS
        ]
        status = build_status(report, {"conditions": previous}, datetime.now(UTC))
        if status == self._last_sent:
            return
        try:
            self.ctx.kube.merge_patch(
                pod_path(self.namespace, self.name, "status"), {"status": status}
            )
        except KubeError as exc:
            if str(exc) != self._patch_error:
                log.warning("pod %s/%s: status patch failed: %s", self.namespace, self.name, exc)
                self._patch_error = str(exc)
            return
        self._patch_error = None
        self._last_sent = status

    def _publish_logs(self) -> None:
        logs: dict[str, ContainerLogs] = {}
        for slot in [*self.init, *self.main]:
            state, last = slot.state, slot.last_state
            current = state.log_path if isinstance(state, Running | Terminated) else None
            if current is None and last is not None:
                current = last.log_path
            logs[slot.name] = ContainerLogs(
                current=Path(current) if current else None,
                previous=Path(last.log_path) if last is not None and last.log_path else None,
                live=Path(state.log_path) if isinstance(state, Running) else None,
                waiting=state.reason if isinstance(state, Waiting) else None,
            )
        self.ctx.registry.update(self.namespace, self.name, self.uid, logs)


def _init_done(slot: Slot) -> bool:
    return isinstance(slot.state, Terminated) and slot.state.exit_code == 0

"""kubelet's small rules: restarts, crash-loop back-off, deadlines, termination messages,
CPU weight.

Owns the arithmetic and decisions only; pure (times are passed in, monotonic
seconds for back-off). Imports nothing from kflow outside `kflow.cluster.node`.

Back-off is kubelet's `flowcontrol.Backoff` as used by `doBackOff`: the first crash
restarts at once and creates an entry of 10 s; each later crash waits the entry's
delay counted from the container's finish time, then doubles it up to 300 s. An entry
not touched for 2 x 300 s starts over at 10 s.

CPU weight: a kubelet puts a container in a cgroup whose ``cpu.shares`` is its CPU
request in millicores * 1024 / 1000 (at least 2; 2 without a request), while the
control plane runs outside with the default 1024. Without cgroups here, the same
proportion comes from the nice value, set on the container's session group too (the
kernel's autogroup; see `process._lower_priority`; weight falls by ~1.25x per step):
a 100m step pod gets nice 10 (weight 110 against 1024), a 1-CPU pod nice 0, so step
pods cannot starve the control plane and the operator, as on a real node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
DEFAULT_GRACE_SECONDS = 30
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
MESSAGE_MAX_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
DEADLINE_REASON = "DeadlineExceeded"
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


def should_restart(restart_policy: str, exit_code: int) -> bool:
    if restart_policy == "Always":
        return True
    if restart_policy == "OnFailure":
        return exit_code != 0
    return False


@dataclass(frozen=True)
class Backoff:
    """One container's back-off entry: current delay and when it was last bumped."""

    delay: float
    last_update: float


@dataclass(frozen=True)
class RestartDecision:
    restart_now: bool
    entry: Backoff | None
    wait: float = 0.0


def _expired(entry: Backoff, now: float) -> bool:
    return now - entry.last_update > 2 * BACKOFF_MAX


def next_backoff(entry: Backoff | None, now: float) -> Backoff:
    if entry is None or _expired(entry, now):
        return Backoff(BACKOFF_INITIAL, now)
    return Backoff(min(entry.delay * 2, BACKOFF_MAX), now)


def restart_decision(entry: Backoff | None, finished: float, now: float) -> RestartDecision:
    """Whether a crashed container may start again now (and the updated entry)."""
    if entry is not None and not _expired(entry, now) and now - finished < entry.delay:
        return RestartDecision(False, entry, entry.delay - (now - finished))
    return RestartDecision(True, next_backoff(entry, now))


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String for whole seconds: 10s, 1m20s, 5m0s."""
    total = int(seconds)
    minutes, secs = divmod(total, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def backoff_message(delay: float, container: str, pod: str, namespace: str, uid: str) -> str:
    return (
        f"back-off {go_duration(delay)} restarting failed container={container} "
        f"pod={pod}_{namespace}({uid})"
    )


def deadline_exceeded(
    start_time: datetime | None, active_deadline_seconds: int | None, now: datetime
) -> bool:
    if start_time is None or active_deadline_seconds is None:
        return False
    return (now - start_time).total_seconds() >= active_deadline_seconds


def grace_seconds(pod: Mapping[str, Any]) -> int:
    """deletionGracePeriodSeconds, else spec.terminationGracePeriodSeconds, else 30."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    for value in (
        meta.get("deletionGracePeriodSeconds"),
        spec.get("terminationGracePeriodSeconds"),
    ):
        if isinstance(value, int):
            return max(value, 0)
    return DEFAULT_GRACE_SECONDS


def termination_message(
    file_content: bytes, policy: str | None, failed: bool, log_tail: str
) -> str | None:
    """state.terminated.message: the file's first 4096 bytes, or the log tail on error.

    `log_tail` is the container's output (already limited to the last 80 lines and
    2048 bytes); it is used when the policy is FallbackToLogsOnError, the file is
    empty and the container failed.
    """
    text = file_content[:MESSAGE_MAX_BYTES].decode("utf-8", errors="replace")
    if text:
        return text
    if policy == "FallbackToLogsOnError" and failed and log_tail:
        return log_tail
    return None


def cpu_nice(cpu_request_cores: float | None) -> int:
    """The nice value giving a container the CPU weight its request gives it on a real
    node (``cpu.shares`` = millicores * 1024 / 1000, at least 2; 2 without a request)
    against the default weight 1024 of the processes outside pods: 0 … 19."""
    shares = max(2.0, (cpu_request_cores or 0.0) * 1024.0)
    if shares >= 1024.0:
        return 0
    return min(19, round(math.log(1024.0 / shares) / math.log(1.25)))

"""One reconcile at a time per FlowRun, coalesced wake-ups, and requeue timers.

Owns: `RunQueue`. Many triggers wake the same run (its own changes, every event of
each of its pods, timers); they arrive on kopf's worker threads and on timer threads.
`RunQueue.reconcile(key)` runs the reconcile in the calling thread unless one is
already running for that run: then it only marks the run "dirty" and returns at once,
and the running reconcile goes around once more when it finishes. So at most one
reconcile per run runs at any time, a burst of pod events costs at most two
reconciles, and no worker thread waits on another's lock.

`RunQueue.wake(key)` is the same from a worker thread of the queue's own pool: it returns
at once, so the pod watch is never held up behind reconciles; a wake of a run already
queued or reconciling is folded in.

After each reconcile the planner's ``requeue_after`` arms one timer per run (the
previous timer is cancelled): the only periodic work is a timed decision the planner
asked for (a retry's back-off, a pending timeout). A timer's reconcile that fails
with a `TransientKubeError` is re-armed with the error's delay.

Imports no kopf and no kubernetes client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from kflow_operator.k8s import TransientKubeError

__all__ = ["RunKey", "RunQueue"]

log = logging.getLogger(__name__)

RunKey = tuple[str, str]          # (namespace, name)
WORKERS = 8
"""Threads that run the reconciles woken by `RunQueue.wake` (the pod watch's)."""


@dataclass
class _RunState:
    running: bool = False
    dirty: bool = False
    queued: bool = False         # a `wake` waits for a worker
    timer: threading.Timer | None = field(default=None, repr=False)


class RunQueue:
    """Serializes and coalesces the reconciles of each run (see the module docstring)."""

    def __init__(self, reconcile: Callable[[str, str], float | None],
                 workers: int = WORKERS) -> None:
        self._reconcile = reconcile
        self._lock = threading.Lock()
        self._runs: dict[RunKey, _RunState] = {}
        self._closed = False
        self._workers = ThreadPoolExecutor(workers, thread_name_prefix="kflow-reconcile")

    def wake(self, key: RunKey) -> None:
        """Reconcile `key` soon on one of the queue's worker threads, and return at once
        (the pod watch must not wait for reconciles: its events would queue up behind
        them). A wake while the run is queued or reconciling is folded into that."""
        with self._lock:
            state = self._idle_state(key)
            if state is None or state.queued:
                return
            state.queued = True
        self._workers.submit(self._woken, key)

    def _idle_state(self, key: RunKey) -> _RunState | None:
        """(Lock held.) The run's state; None when the queue is closed, or when a
        reconcile of the run is running (then marked to go once more)."""
        if self._closed:
            return None
        state = self._runs.setdefault(key, _RunState())
        if state.running:
            state.dirty = True
            return None
        return state

    def _woken(self, key: RunKey) -> None:
        with self._lock:
            state = self._runs.get(key)
            if state is not None:
                state.queued = False
        self.reconcile_or_retry(key, "the reconcile after a pod event")

    def reconcile(self, key: RunKey) -> None:
        """Reconcile `key` now in this thread, or make the running reconcile go again.

        Errors propagate to the caller (kopf retries its handlers; `later` for others).
        """
        with self._lock:
            idle = self._idle_state(key)
            if idle is None:
                return
            state = idle
            state.running = True
        try:
            while True:
                with self._lock:
                    state.dirty = False
                requeue = self._reconcile(*key)
                with self._lock:
                    if not state.dirty:
                        state.running = False
                        self._arm(key, state, requeue)
                        return
        except BaseException:
            with self._lock:
                state.running = False
            raise

    def later(self, key: RunKey, delay: float) -> None:
        """Reconcile `key` after `delay` seconds (replacing its pending timer)."""
        with self._lock:
            self._arm(key, self._runs.setdefault(key, _RunState()), delay)

    def close(self) -> None:
        """Cancel every timer; later wake-ups do nothing (operator shutdown)."""
        with self._lock:
            self._closed = True
            for state in self._runs.values():
                if state.timer is not None:
                    state.timer.cancel()
            self._runs.clear()
        self._workers.shutdown(wait=False, cancel_futures=True)

    def pending_timers(self) -> int:
        """How many runs have a timer armed (for probes and tests)."""
        with self._lock:
            return sum(s.timer is not None for s in self._runs.values())

    def _arm(self, key: RunKey, state: _RunState, delay: float | None) -> None:
        """Replace the run's timer (call with the lock held); None: forget the run."""
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if self._closed:
            return
        if delay is None:
            if not state.running:
                self._runs.pop(key, None)
            return
        timer = threading.Timer(max(delay, 0.0) + 0.05, self._fire, args=(key,))
        timer.daemon = True
        timer.name = f"kflow-requeue-{key[0]}/{key[1]}"
        state.timer = timer
        timer.start()

    def _fire(self, key: RunKey) -> None:
        with self._lock:
            state = self._runs.get(key)
            if state is not None and state.timer is threading.current_thread():
                state.timer = None
        self.reconcile_or_retry(key, "the timed reconcile")

    def reconcile_or_retry(self, key: RunKey, what: str) -> None:
        """Reconcile where no caller can retry (a timer, an event): a failure re-arms the
        timer instead (transient errors after their delay, others after 30 s)."""
        try:
            self.reconcile(key)
        except TransientKubeError as exc:
            log.warning("%s/%s: %s failed: %s; retrying in %.0fs", *key, what, exc, exc.delay)
            self.later(key, exc.delay)
        except Exception:
            log.exception("%s/%s: %s failed; retrying in 30s", *key, what)
            self.later(key, 30.0)

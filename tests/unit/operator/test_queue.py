"""RunQueue: one reconcile at a time per run, wake-ups coalesced, timers armed."""

from __future__ import annotations

import threading
import time

from kflow_operator.queue import RunKey, RunQueue


def test_a_wake_up_during_a_reconcile_makes_it_go_once_more_not_nest() -> None:
    calls: list[str] = []
    queue: RunQueue

    def reconcile(namespace: str, name: str) -> float | None:
        calls.append(name)
        if len(calls) == 1:
            queue.reconcile((namespace, name))     # returns at once: marks dirty
            queue.reconcile((namespace, name))     # coalesced with the one above
            assert calls == ["a"]
        return None

    queue = RunQueue(reconcile)
    queue.reconcile(("ns", "a"))
    assert calls == ["a", "a"]
    assert queue.pending_timers() == 0


def test_requeue_after_arms_a_timer_that_reconciles_again() -> None:
    fired = threading.Event()
    calls: list[str] = []

    def reconcile(namespace: str, name: str) -> float | None:
        calls.append(name)
        if len(calls) == 2:
            fired.set()
            return None
        return 0.01

    queue = RunQueue(reconcile)
    queue.reconcile(("ns", "a"))
    assert fired.wait(5)
    queue.close()
    assert calls == ["a", "a"]


def test_close_cancels_timers() -> None:
    queue = RunQueue(lambda namespace, name: 60.0)
    queue.reconcile(("ns", "a"))
    assert queue.pending_timers() == 1
    queue.close()
    assert queue.pending_timers() == 0


def test_wake_returns_at_once_and_folds_wakes_into_one_reconcile() -> None:
    release = threading.Event()
    calls: list[RunKey] = []

    def reconcile(namespace: str, name: str) -> float | None:
        calls.append((namespace, name))
        release.wait(5)
        return None

    queue = RunQueue(reconcile, workers=2)
    started = time.monotonic()
    for _ in range(20):
        queue.wake(("ml", "run-1"))           # queued, then running: folded in
    assert time.monotonic() - started < 1.0    # never waits for the reconcile
    queue.wake(("ml", "run-2"))
    time.sleep(0.2)
    release.set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(calls) < 3:
        time.sleep(0.01)
    time.sleep(0.2)
    # run-1: the first wake, then one more pass for the wakes during it; run-2 once
    assert sorted(calls) == [("ml", "run-1"), ("ml", "run-1"), ("ml", "run-2")] or \
        sorted(calls) == [("ml", "run-1"), ("ml", "run-2")]
    queue.close()

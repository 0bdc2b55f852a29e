"""`RoutingExecutor`: one run's attempts split between two executors by step (pure).

Owns the routing of a hybrid run: a step in `pod_steps` (decorated ``@batch`` or
``@kubernetes``) runs through the pod executor, every other step through the local
one; the loop (`kflow.local.loop.drive`) sees one `Executor`. The pod executor must
call the local executor's `wake` on every change of its own (`PodExecutor`'s
`on_change`), so that one `wait` — the local one's — returns for either side.
"""

from __future__ import annotations

from collections.abc import Collection

from kflow.local.executor import Executor
from kflow.planning.model import ObservedAttempt, StartTask, TaskId

__all__ = ["RoutingExecutor"]


class RoutingExecutor:
    """`pods` for the steps in `pod_steps`, `local` for the others."""

    def __init__(self, pod_steps: Collection[str], pods: Executor, local: Executor) -> None:
        self._pod_steps = frozenset(pod_steps)
        self._pods = pods
        self._local = local

    def _for(self, step: str) -> Executor:
        return self._pods if step in self._pod_steps else self._local

    def start(self, start: StartTask) -> None:
        self._for(start.task.step).start(start)

    def stop(self, task: TaskId, attempt: int, reason: str) -> None:
        self._for(task.step).stop(task, attempt, reason)

    def observe(self) -> list[ObservedAttempt]:
        return [*self._pods.observe(), *self._local.observe()]

    def wait(self, timeout: float | None) -> None:
        self._local.wait(timeout)

    def wake(self) -> None:
        self._local.wake()

    def active(self) -> int:
        return self._pods.active() + self._local.active()

    def close(self, grace: float) -> None:
        try:
            self._local.close(grace)
        finally:
            self._pods.close(grace)

"""The local loop (kflow.local.loop.drive) over an in-memory fake of the Executor."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from kflow.local.loop import drive
from kflow.planning import (
    FlowModel,
    ObservedAttempt,
    RunModel,
    StartTask,
    TaskId,
    TaskResult,
)
from tests.unit.planning.driver import T0, flow_spec, step

FOREACH = FlowModel.from_spec(flow_spec(
    step("start", "split-foreach", "body", foreach="xs"), step("body", "linear", "join"),
    step("join", "join", "end"), step("end", "end")))
RETRYING = FlowModel.from_spec(flow_spec(
    step("start", "start", "end", retry={"times": 2, "minutesBetweenRetries": 1}),
    step("end", "end")))

Outcome = Callable[[StartTask], ObservedAttempt]


def ok(start: StartTask) -> ObservedAttempt:
    splits = 7 if start.task.step == "start" else None
    return ObservedAttempt(start.task, start.attempt, "succeeded", exit_code=0,
                           result=TaskResult(ok=True, foreach_splits=splits))


@dataclass
class FakeExecutor:
    """Attempts run until the next `wait`, which ends `per_wait` of them (oldest first)
    with `outcome` and moves the clock on by a second."""

    outcome: Outcome = ok
    per_wait: int = 1000
    now: datetime = T0
    started: list[StartTask] = field(default_factory=list)
    stopped: list[tuple[TaskId, int, str]] = field(default_factory=list)
    attempts: dict[tuple[TaskId, int], ObservedAttempt] = field(default_factory=dict)
    most_at_once: int = 0
    waits: list[float | None] = field(default_factory=list)
    on_wait: Callable[[FakeExecutor], None] = lambda executor: None

    def start(self, start: StartTask) -> None:
        assert (start.task, start.attempt) not in self.attempts
        self.started.append(start)
        self.attempts[(start.task, start.attempt)] = ObservedAttempt(
            start.task, start.attempt, "running", created_at=self.now)
        self.most_at_once = max(self.most_at_once, self.active())

    def stop(self, task: TaskId, attempt: int, reason: str) -> None:
        self.stopped.append((task, attempt, reason))
        seen = self.attempts[(task, attempt)]
        if seen.state == "running":
            self.attempts[(task, attempt)] = replace(seen, state="failed", exit_code=143,
                                                     deleted=True, reason=reason,
                                                     finished_at=self.now)

    def observe(self) -> list[ObservedAttempt]:
        return list(self.attempts.values())

    def wait(self, timeout: float | None) -> None:
        self.waits.append(timeout)
        self.on_wait(self)
        self.now += timedelta(seconds=timeout if timeout and timeout > 1 else 1)
        running = [k for k, a in self.attempts.items() if a.state == "running"]
        for key in running[:self.per_wait]:
            start = next(s for s in self.started if (s.task, s.attempt) == key)
            self.attempts[key] = replace(self.outcome(start), created_at=self.attempts[
                key].created_at, finished_at=self.now)

    def wake(self) -> None:
        pass

    def active(self) -> int:
        return sum(a.state == "running" for a in self.attempts.values())

    def close(self, grace: float) -> None:
        pass


def run_it(flow: FlowModel, executor: FakeExecutor, **kw: Any) -> tuple[dict[str, Any],
                                                                       list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    final = drive(flow, RunModel(name="r", **kw), executor,
                  on_status=lambda status: seen.append(dict(status)),
                  clock=lambda: executor.now)
    return final, seen


def test_a_foreach_runs_to_success_within_max_workers() -> None:
    executor = FakeExecutor(per_wait=1)
    final, seen = run_it(FOREACH, executor, max_parallelism=3)
    assert final["phase"] == "Succeeded"
    assert executor.most_at_once == 3
    assert len(executor.started) == 1 + 7 + 1 + 1
    assert seen[-1] == final
    # progress is reported with the new tasks running, never "0 running" after a start
    for status in seen:
        for entry in status["steps"]:
            assert entry["tasks"]["pending"] == 0, entry


def test_a_failure_stops_the_others_and_fails_the_run() -> None:
    def fail_body_2(start: StartTask) -> ObservedAttempt:
        if start.task == TaskId("body", "2"):
            return ObservedAttempt(start.task, start.attempt, "failed", exit_code=1,
                                   reason="UserError", message="ValueError: no")
        return ok(start)

    executor = FakeExecutor(outcome=fail_body_2, per_wait=3)
    final, _ = run_it(FOREACH, executor, max_parallelism=4)
    assert final["phase"] == "Failed"
    assert final["failure"]["step"] == "body" and final["failure"]["task"] == "2"
    assert {reason for _, _, reason in executor.stopped} == {"RunFailed"}
    assert executor.active() == 0


def test_retries_wait_for_their_back_off() -> None:
    def fail_twice(start: StartTask) -> ObservedAttempt:
        if start.task.step == "start" and start.attempt < 2:
            return ObservedAttempt(start.task, start.attempt, "failed", exit_code=1,
                                   reason="UserError", message="flaky")
        return ok(start)

    executor = FakeExecutor(outcome=fail_twice)
    final, _ = run_it(RETRYING, executor)
    assert final["phase"] == "Succeeded"
    assert [s.attempt for s in executor.started if s.task.step == "start"] == [0, 1, 2]
    # each retry started once its back-off (1 minute) was over, not before
    first = TaskId("start")
    for attempt in (1, 2):
        before = executor.attempts[(first, attempt - 1)].finished_at
        after = executor.attempts[(first, attempt)].created_at
        assert before is not None and after is not None
        assert timedelta(minutes=1) <= after - before <= timedelta(minutes=1, seconds=6)


def test_an_interruption_stops_the_run() -> None:
    stop = threading.Event()

    def interrupt(executor: FakeExecutor) -> None:
        if len(executor.started) >= 3:
            stop.set()

    executor = FakeExecutor(per_wait=2, on_wait=interrupt)
    final = drive(FOREACH, RunModel(name="r"), executor, interrupted=stop,
                  clock=lambda: executor.now)
    assert final["phase"] == "Stopped"
    assert len(executor.started) < 1 + 7 + 2
    assert executor.stopped and all(r == "Stopped" for _, _, r in executor.stopped)
    assert executor.active() == 0

"""A tiny simulated cluster for planner tests: applies StartTask/StopTask, finishes pods."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from kflow.planning import (
    FlowModel,
    ObservedAttempt,
    Plan,
    PlannerConfig,
    RunModel,
    StartTask,
    TaskId,
    TaskResult,
    plan,
)

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)


def step(name: str, type_: str, *nexts: str, **extra: Any) -> dict[str, Any]:
    """One `Flow.spec.steps[]` entry."""
    body: dict[str, Any] = {"name": name, "type": type_, "next": list(nexts),
                            "join": type_ == "join"}
    body.update(extra)
    return body


def flow_spec(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"flowName": "TestFlow", "start": steps[0]["name"], "end": steps[-1]["name"],
            "codePackage": {"sha256": "a" * 64}, "steps": list(steps)}


def flowrun(name: str = "run-1", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ml", "generation": 1},
            "spec": {"flowRef": {"name": "test-flow"}, **spec}}


Outcome = Callable[[StartTask], ObservedAttempt]


def result(ok: bool = True, splits: int | None = None, switch: str | None = None) -> TaskResult:
    return TaskResult(ok=ok, foreach_splits=splits, switch=switch)


@dataclass
class Cluster:
    """Pods as ObservedAttempts; `outcome(start)` says how a started attempt ends."""

    flow: FlowModel
    cr: dict[str, Any]
    outcome: Outcome
    config: PlannerConfig = field(default_factory=PlannerConfig)
    now: datetime = T0
    pods: dict[tuple[TaskId, int], ObservedAttempt] = field(default_factory=dict)
    origin: list[ObservedAttempt] = field(default_factory=list)   # a resumeFrom origin's
    plans: list[Plan] = field(default_factory=list)

    @property
    def observed(self) -> list[ObservedAttempt]:
        return sorted(self.pods.values(), key=lambda a: (a.task, a.attempt))

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.cr.get("status") or {})

    def reconcile(self) -> Plan:
        result = plan(self.flow, RunModel.from_cr(self.cr), self.observed, self.now, self.config,
                      origin=self.origin)
        # never start an attempt that was already observed
        for start in result.starts:
            assert (start.task, start.attempt) not in self.pods, start
        json.dumps(result.status)      # serializable
        self.cr["status"] = result.status
        self.plans.append(result)
        for start in result.starts:
            self.pods[(start.task, start.attempt)] = ObservedAttempt(
                start.task, start.attempt, "pending", created_at=self.now)
        for stop in result.stops:
            pod = self.pods[(stop.task, stop.attempt)]
            self.pods[(stop.task, stop.attempt)] = replace(pod, deleted=True)
        return result

    def finish_all(self) -> None:
        """Every pending/running pod ends: deleted ones fail with 143, others by outcome."""
        self.now += timedelta(seconds=1)
        for key, pod in list(self.pods.items()):
            if pod.state not in ("pending", "running"):
                continue
            if pod.deleted:
                self.pods[key] = replace(pod, state="failed", exit_code=143,
                                         finished_at=self.now)
                continue
            start = StartTask(pod.task, pod.attempt, 0)
            end = self.outcome(start)
            self.pods[key] = replace(end, created_at=pod.created_at, started_at=pod.created_at,
                                     finished_at=self.now)

    def run(self, limit: int = 200) -> dict[str, Any]:
        """Reconcile and finish pods until the run is terminal and quiet."""
        for _ in range(limit):
            result = self.reconcile()
            terminal = result.status["phase"] in ("Succeeded", "Failed", "Stopped")
            if terminal and not result.starts and not any(
                    p.state in ("pending", "running") for p in self.pods.values()):
                return result.status
            if not result.starts and not any(
                    p.state in ("pending", "running") for p in self.pods.values()):
                self.now += timedelta(seconds=result.requeue_after or 1)
            self.finish_all()
        raise AssertionError(f"no terminal phase after {limit} reconciles: {self.status}")


def succeed(splits: Mapping[str, int] | None = None,
            switch: Mapping[str, str] | None = None) -> Outcome:
    """Every task succeeds; foreach splits and switch choices from the mappings."""
    def outcome(start: StartTask) -> ObservedAttempt:
        return ObservedAttempt(start.task, start.attempt, "succeeded", exit_code=0,
                               result=result(splits=(splits or {}).get(start.task.step),
                                             switch=(switch or {}).get(start.task.step)))
    return outcome


def events(cluster: Cluster) -> list[str]:
    return [e.reason for p in cluster.plans for e in p.events]

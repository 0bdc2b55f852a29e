"""Hybrid runs' pure parts: which steps go to pods, the local tasks' store settings, and
the routing of one run's attempts between two executors."""

from __future__ import annotations

from kflow import FlowSpec, batch, kubernetes, step
from kflow.config import S3Settings
from kflow.graph import build_graph
from kflow.hybrid import pod_steps
from kflow.hybrid.routing import RoutingExecutor
from kflow.hybrid.session import s3_env
from kflow.planning.model import ObservedAttempt, StartTask, TaskId


class Mixed(FlowSpec):
    @step
    def start(self):
        self.next(self.heavy)

    @batch(cpu=2, memory=4000)
    @step
    def heavy(self):
        self.next(self.gpu)

    @kubernetes(cpu=1)
    @step
    def gpu(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class Recorder:
    """An executor that records the calls it gets."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, str]] = []
        self.seen: list[ObservedAttempt] = []
        self.running = 0

    def start(self, start: StartTask) -> None:
        self.calls.append(("start", start.task.step))
        self.seen.append(ObservedAttempt(start.task, start.attempt, "running"))
        self.running += 1

    def stop(self, task: TaskId, attempt: int, reason: str) -> None:
        self.calls.append(("stop", task.step))

    def observe(self) -> list[ObservedAttempt]:
        return list(self.seen)

    def wait(self, timeout: float | None) -> None:
        self.calls.append(("wait", str(timeout)))

    def wake(self) -> None:
        self.calls.append(("wake", ""))

    def active(self) -> int:
        return self.running

    def close(self, grace: float) -> None:
        self.calls.append(("close", str(grace)))


def test_the_steps_of_a_local_run_that_go_to_pods() -> None:
    assert pod_steps(Mixed, build_graph(Mixed)) == ["heavy", "gpu"]


def test_local_tasks_use_the_clusters_store() -> None:
    env = s3_env(S3Settings(endpoint="http://127.0.0.1:9000", bucket="b", region="r",
                            access_key="AK", secret_key="SK"))
    assert env == {"KFLOW_S3_ENDPOINT": "http://127.0.0.1:9000", "KFLOW_S3_ACCESS_KEY": "AK",
                   "KFLOW_S3_SECRET_KEY": "SK", "KFLOW_S3_BUCKET": "b",
                   "KFLOW_S3_REGION": "r"}


def test_attempts_are_routed_by_step_and_seen_together() -> None:
    pods, local = Recorder("pods"), Recorder("local")
    router = RoutingExecutor(["heavy"], pods, local)
    router.start(StartTask(TaskId("start", "0"), 0, 0))
    router.start(StartTask(TaskId("heavy", "0"), 0, 0))
    router.stop(TaskId("heavy", "0"), 0, "Stopped")
    router.wait(1.5)
    router.wake()
    assert pods.calls == [("start", "heavy"), ("stop", "heavy")]
    assert local.calls == [("start", "start"), ("wait", "1.5"), ("wake", "")]
    assert sorted(a.task.step for a in router.observe()) == ["heavy", "start"]
    assert router.active() == 2
    router.close(3.0)
    assert pods.calls[-1] == ("close", "3.0") and local.calls[-1] == ("close", "3.0")

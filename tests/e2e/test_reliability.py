"""Runs survive their infrastructure failing under them: the operator SIGKILLed and
restarted again and again, the S3 server restarted mid-run.

Both tests run `tests/e2e/flows/interrupted_flow.py` (start → a 3-way branch → merge → fan →
a 20-way foreach → gather → end: 28 tasks, each napping under a second) with test_operator.py's
`operator` fixture (one `python -m kflow_operator` process per test, which
`Operator.kill` / `Operator.restart` crash and start again) and read back what the
runners recorded in the real S3 store with `kflow.store`. The kill moments come from a
seeded `random.Random`: the seed is printed (shown when the test fails) and
``KFLOW_TEST_SEED`` replays one.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kflow import api_types
from kflow.cluster import supervisor
from kflow.store import store_from_env
from kflow.store.layout import TaskKey
from kflow_operator import naming
from tests.e2e import test_operator as base
from tests.e2e import test_operator_lifecycle as lifecycle
from tests.e2e.conftest import TestCluster, wait_for

pytestmark = pytest.mark.e2e

operator = base.operator     # the fixture: one operator process per test
Operator = base.Operator

FLOW_CLASS = "InterruptedFlow"
WIDTH = 20
# step → its task ids, as the graph makes them.
TASKS = {"start": ["0"], "a": ["0"], "b": ["0"], "c": ["0"], "merge": ["0"], "fan": ["0"],
         "square": [str(i) for i in range(WIDTH)], "gather": ["0"], "end": ["0"]}
RUN_TIMEOUT = 240.0          # 28 step pods on a 2-core machine, plus the outages
KILLS = 5
OUTAGE = 15.0                # seconds the S3 server stays down once stopped (stopping: 1-5 s)


def apply_run(cluster: TestCluster, namespace: str, tmp_path: Path, name: str,
              parameters: dict[str, str], max_parallelism: int) -> None:
    """`kubectl apply` a FlowRun of interrupted-flow with `spec.maxParallelism`."""
    manifest = {"apiVersion": "kflow.dev/v1alpha1", "kind": "FlowRun",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"flowRef": {"name": "interrupted-flow"}, "parameters": parameters,
                         "maxParallelism": max_parallelism}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(manifest))
    done = cluster.kubectl("apply", "-f", str(path))
    assert done.returncode == 0, done.stderr


def wait_phase(cluster: TestCluster, op: Operator, namespace: str, name: str,
               timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    """The run once it is finished (fails with the operator's log on timeout)."""
    def finished() -> dict[str, Any] | None:
        if op.process.poll() is not None:
            pytest.fail(f"the operator died:\n{op.log_tail()}")
        run = base.get_run(cluster, namespace, name)
        done = (run.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Stopped")
        return run if done else None

    run = wait_for(f"FlowRun {name} to finish", finished, timeout=timeout, interval=0.5)
    assert run is not None
    return run


def is_running(cluster: TestCluster, namespace: str, name: str) -> bool:
    status = base.get_run(cluster, namespace, name).get("status") or {}
    return status.get("phase") not in ("Succeeded", "Failed", "Stopped")


def recorded_attempts(s3_credentials: Path, run: dict[str, Any]
                      ) -> dict[str, dict[str, dict[int, bool | None]]]:
    """step → task → {attempt: succeeded? (None: no DONE)}, from the store's listing."""
    store = store_from_env({"KFLOW_S3_CREDENTIALS": str(s3_credentials)})
    namespace, run_id = run["metadata"]["namespace"], api_types.run_id(run)
    found: dict[str, dict[str, dict[int, bool | None]]] = {}
    try:
        for step in store.list_steps(namespace, FLOW_CLASS, run_id):
            found[step] = {}
            for task_id in store.list_tasks(namespace, FLOW_CLASS, run_id, step):
                task = TaskKey(namespace, FLOW_CLASS, run_id, step, task_id)
                found[step][task_id] = {
                    n: store.read_meta(task.attempt(n)).succeeded if done else None
                    for n, done in store.list_attempts(task).items()}
    finally:
        store.close()
    return found


def pods_by_task(cluster: TestCluster, namespace: str, run: str) -> Counter[tuple[str, str, int]]:
    """(step, task, attempt) → how many pods the run has for it."""
    found: Counter[tuple[str, str, int]] = Counter()
    for pod in lifecycle.step_pods(cluster, namespace, run):
        labels, notes = pod.metadata.labels, pod.metadata.annotations or {}
        task = notes.get(naming.ANNOTATION_TASK) or labels[api_types.LABEL_TASK]
        found[labels[api_types.LABEL_STEP], task, int(labels[api_types.LABEL_ATTEMPT])] += 1
    return found


def assert_ran_once_and_right(cluster: TestCluster, namespace: str, s3_credentials: Path,
                              run: dict[str, Any]) -> None:
    """Succeeded, every task of the graph ran exactly once (attempt 0: one pod, one
    committed record in the store), and the end step saw every task's result."""
    status, name = run["status"], run["metadata"]["name"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert base.steps_summary(run) == {
        step: ("Succeeded", len(ids), len(ids)) for step, ids in TASKS.items()}
    assert recorded_attempts(s3_credentials, run) == {
        step: {task: {0: True} for task in ids} for step, ids in TASKS.items()}
    assert pods_by_task(cluster, namespace, name) == Counter(
        {(step, task, 0): 1 for step, ids in TASKS.items() for task in ids})
    artifacts = base.end_artifacts(s3_credentials, run, FLOW_CLASS)
    assert (artifacts["parts"], artifacts["total"]) == (
        [1, 2, 3], sum(i * i for i in range(WIDTH)))


def test_an_operator_killed_at_random_moments_runs_every_task_exactly_once(
        cluster: TestCluster, namespace: str, operator: Operator, s3_credentials: Path,
        tmp_path: Path) -> None:
    seed = int(os.environ.get("KFLOW_TEST_SEED") or random.SystemRandom().randrange(2**32))
    print(f"KFLOW_TEST_SEED={seed}")
    rng = random.Random(seed)
    lifecycle.deploy(operator, "interrupted_flow.py")
    # Tasks of 0.4-1 s, at most 2 at a time (the foreach in 10 waves): a run of ~30 s
    # (more with the operator down) to kill into, even on an idle machine.
    apply_run(cluster, namespace, tmp_path, "interrupted-1", {"nap": "0.7"},
              max_parallelism=2)
    started = time.monotonic()

    moments: list[str] = []
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.5, 4.0))
        if not is_running(cluster, namespace, "interrupted-1"):
            break
        operator.kill()
        killed = time.monotonic()
        time.sleep(pause := rng.choice((0.0, rng.uniform(0.2, 2.0))))
        operator.restart()
        moments.append(f"{killed - started:.1f}s (down {pause:.1f}s, alive again after "
                       f"{time.monotonic() - killed:.1f}s)")
    print(f"killed the operator at {', '.join(moments)}")
    # Most kills must have hit the running run, or this tests little.
    assert len(moments) >= 3, f"the run finished after {len(moments)} kills"

    run = wait_phase(cluster, operator, namespace, "interrupted-1")
    print(f"run finished {time.monotonic() - started:.1f}s after it was applied")
    assert_ran_once_and_right(cluster, namespace, s3_credentials, run)

    # The last operator still owns the pods' finalizer: deleting the run lets them go.
    done = cluster.kubectl("delete", "fr", "interrupted-1", "-n", namespace, "--wait=false")
    assert done.returncode == 0, done.stderr
    wait_for("the pods of the deleted run to be gone",
             lambda: not lifecycle.step_pods(cluster, namespace, "interrupted-1"), timeout=60)


def container_times(pod: Any) -> tuple[float, float] | None:
    """(started, finished) of a pod's terminated container as epoch seconds, or None."""
    for status in pod.status.container_statuses or []:
        if status.state.terminated is not None:
            ended = status.state.terminated
            return ended.started_at.timestamp(), ended.finished_at.timestamp()
    return None


def running_pods(cluster: TestCluster, namespace: str, run: str, step: str) -> list[Any]:
    return [p for p in lifecycle.step_pods(cluster, namespace, run, step)
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]


def test_an_s3_server_restarted_mid_run_does_not_fail_the_run(
        cluster: TestCluster, namespace: str, operator: Operator, s3_credentials: Path,
        tmp_path: Path) -> None:
    if cluster.embedded_dir is None:
        pytest.skip("restarts the embedded cluster's S3 server")
    lifecycle.deploy(operator, "interrupted_flow.py")
    base.apply_run(cluster, namespace, tmp_path, "interrupted-2", "interrupted-flow")
    # The foreach is in flight: its tasks run their steps, more are about to start.
    def foreach_running() -> list[Any]:
        if not is_running(cluster, namespace, "interrupted-2"):
            pytest.fail("the run finished before the foreach was caught running")
        return running_pods(cluster, namespace, "interrupted-2", "square")

    caught = wait_for("running pods of the foreach", foreach_running, timeout=RUN_TIMEOUT)
    stopping = time.time()
    try:
        supervisor.stop_component(cluster.embedded_dir, "s3")
        stopped = time.time()
        time.sleep(OUTAGE)  # the outage: what runs now finds no store
    finally:
        supervisor.start_component(cluster.embedded_dir, "s3")  # healthy for what follows
    back = time.time()
    print(f"S3 down for {back - stopped:.1f}s (stopping took {stopped - stopping:.1f}s); "
          f"{len(caught)} square pods were running when it was stopped")
    status = base.get_run(cluster, namespace, "interrupted-2")["status"]
    assert status["phase"] == "Running", json.dumps(status, indent=1)

    run = wait_phase(cluster, operator, namespace, "interrupted-2")
    # Attempt 0 of every task succeeded: the runners retried the store through the outage
    # (for up to KFLOW_STORE_RETRY_SECONDS, 60 s) instead of giving up (exit 75) and
    # spending attempts of the infrastructure budget.
    assert_ran_once_and_right(cluster, namespace, s3_credentials, run)
    # Some tasks ran through the outage: started before the store went away, finished
    # after it came back (pod times are whole seconds, rounded down).
    spanning = [p.metadata.name for p in lifecycle.step_pods(cluster, namespace, "interrupted-2")
                if (times := container_times(p)) and times[0] < stopped and times[1] >= back]
    assert spanning, "no task ran through the outage"
    print(f"{len(spanning)} tasks ran through the outage")

"""Resume in place, idempotency, determinism, status size, purity."""

from __future__ import annotations

import ast
import json
import random
from datetime import timedelta
from pathlib import Path

from kflow.planning import (
    FlowModel,
    ObservedAttempt,
    RunModel,
    StartTask,
    TaskId,
    TaskResult,
    plan,
)
from kflow.planning.status import format_duration, format_indexes
from tests.unit.planning.driver import T0, Cluster, events, flowrun, result, succeed
from tests.unit.planning.test_shapes import FOREACH, LINEAR, by_name


def foreach_failing(bad: set[str], *, until: int = 1) -> object:
    """Body tasks in `bad` fail (user error) on attempts < `until`."""
    def outcome(start: StartTask) -> ObservedAttempt:
        if start.task.step == "body" and start.task.task in bad and start.attempt < until:
            return ObservedAttempt(start.task, start.attempt, "failed", reason="UserError",
                                   exit_code=1)
        return succeed(splits={"start": 5})(start)
    return outcome


def failed_foreach_run() -> Cluster:
    cluster = Cluster(FlowModel.from_spec(FOREACH), flowrun(maxParallelism=50),
                      foreach_failing({"1", "3"}))  # type: ignore[arg-type]
    status = cluster.run()
    assert status["phase"] == "Failed"
    assert by_name(status)["body"]["failedIndexes"] == "1,3"
    return cluster


def test_resume_reruns_only_the_failed_tasks_with_new_attempt_numbers() -> None:
    cluster = failed_foreach_run()
    cluster.outcome = succeed(splits={"start": 5})
    cluster.cr["spec"]["resume"] = {"attempt": 1}
    resumed = cluster.reconcile()
    assert [(s.task.task, s.attempt) for s in resumed.starts] == [("1", 100), ("3", 100)]
    assert resumed.status["phase"] == "Running"
    assert resumed.status["resumeAttempt"] == 1
    assert "finishedAt" not in resumed.status and "failure" not in resumed.status
    cond = {c["type"]: c for c in resumed.status["conditions"]}["Progressing"]
    assert cond["reason"] == "Resuming"
    body = by_name(resumed.status)["body"]
    assert body["tasks"]["succeeded"] == 3 and body["tasks"]["pending"] == 2
    assert [e.reason for e in resumed.events] == ["Resumed"]
    status = cluster.run()
    assert status["phase"] == "Succeeded"
    # kept tasks were not run again, and start never again
    assert sorted(a for (t, a) in cluster.pods if t == TaskId("body", "0")) == [0]
    assert sorted(a for (t, a) in cluster.pods if t == TaskId("start")) == [0]
    # the join and end ran in the new generation
    assert sorted(a for (t, a) in cluster.pods if t.step == "join") == [100]
    # the same resume value again does nothing
    again = cluster.reconcile()
    assert again.actions == () and again.status["phase"] == "Succeeded"


def test_resume_survives_a_lagging_pod_cache() -> None:
    cluster = failed_foreach_run()
    cluster.cr["spec"]["resume"] = {"attempt": 1}
    before = dict(cluster.pods)
    resumed = cluster.reconcile()
    # the shell's cache has not seen the new pods yet: same decision, not Failed again
    lagging = plan(cluster.flow, RunModel.from_cr(cluster.cr), list(before.values()),
                   cluster.now)
    assert lagging.status["phase"] == "Running"
    assert lagging.starts == resumed.starts
    assert [e.reason for e in lagging.events] == []


def test_resume_gives_fresh_retry_budgets() -> None:
    spec = json.loads(json.dumps(FOREACH))
    spec["steps"][1]["retry"] = {"times": 1}
    cluster = Cluster(FlowModel.from_spec(spec), flowrun(),
                      foreach_failing({"2"}, until=2))  # type: ignore[arg-type]
    assert cluster.run()["phase"] == "Failed"           # attempts 0 and 1 failed
    cluster.cr["spec"]["resume"] = {"attempt": 1}
    cluster.outcome = foreach_failing({"2"}, until=101)  # type: ignore[assignment]
    assert cluster.run()["phase"] == "Succeeded"        # 100 fails, retry 101 succeeds
    assert sorted(a for (t, a) in cluster.pods if t == TaskId("body", "2")) == [0, 1, 100, 101]


def test_resume_from_a_step_reruns_it_and_everything_downstream() -> None:
    cluster = Cluster(FlowModel.from_spec(FOREACH), flowrun(maxParallelism=50),
                      foreach_failing(set()))  # type: ignore[arg-type]

    def end_fails(start: StartTask) -> ObservedAttempt:
        if start.task.step == "end" and start.attempt < 100:
            return ObservedAttempt(start.task, start.attempt, "failed", reason="UserError",
                                   exit_code=1)
        return succeed(splits={"start": 5})(start)
    cluster.outcome = end_fails
    assert cluster.run()["phase"] == "Failed"
    cluster.cr["spec"]["resume"] = {"attempt": 2, "step": "body"}
    resumed = cluster.reconcile()
    assert [(s.task.task, s.attempt) for s in resumed.starts] == [(str(i), 200)
                                                                   for i in range(5)]
    assert cluster.run()["phase"] == "Succeeded"
    assert sorted(a for (t, a) in cluster.pods if t.step == "join") == [0, 200]
    assert sorted(a for (t, a) in cluster.pods if t.step == "start") == [0]
    assert events(cluster).count("Resumed") == 1


def test_resume_bump_on_a_running_or_succeeded_run_is_recorded_and_does_nothing() -> None:
    cluster = Cluster(FlowModel.from_spec(LINEAR), flowrun(resume={"attempt": 3}), succeed())
    first = cluster.reconcile()
    assert first.status["resumeAttempt"] == 3
    status = cluster.run()
    assert status["phase"] == "Succeeded"
    cluster.cr["spec"]["resume"] = {"attempt": 4}
    after = cluster.reconcile()
    assert after.status["resumeAttempt"] == 4 and after.starts == ()


def test_replaying_the_same_observation_is_idempotent() -> None:
    cluster = Cluster(FlowModel.from_spec(FOREACH), flowrun(), succeed(splits={"start": 4}))
    for _ in range(3):
        cluster.reconcile()
        cluster.finish_all()
    observed = cluster.observed
    run = RunModel.from_cr(cluster.cr)
    replay = plan(cluster.flow, run, observed, cluster.now)
    assert replay == plan(cluster.flow, run, observed, cluster.now)
    seen = {(a.task, a.attempt) for a in observed}
    assert not any((s.task, s.attempt) in seen for s in replay.starts)
    # the new status fed back: no repeated transition events
    again = plan(cluster.flow, RunModel.from_cr({**cluster.cr, "status": replay.status}),
                 observed, cluster.now)
    assert again.events == ()
    assert again.status["conditions"] == replay.status["conditions"]


def test_a_restarted_operator_replays_to_the_same_decisions() -> None:
    cluster = Cluster(FlowModel.from_spec(FOREACH), flowrun(maxParallelism=2),
                      succeed(splits={"start": 6}))
    cluster.reconcile()
    cluster.finish_all()
    decided = cluster.reconcile()
    fresh_status = plan(cluster.flow, RunModel.from_cr(flowrun(maxParallelism=2)),
                        [a for a in cluster.observed if a.task.step == "start"], cluster.now)
    assert fresh_status.starts == decided.starts


def test_the_plan_does_not_depend_on_the_order_of_observations() -> None:
    flow = FlowModel.from_spec(FOREACH)
    observed = [ObservedAttempt(TaskId("start"), 0, "succeeded", result=result(splits=30))]
    observed += [ObservedAttempt(TaskId("body", str(i)), 0,
                                 "succeeded" if i % 3 else "running") for i in range(30)]
    run = RunModel.from_cr({**flowrun(maxParallelism=40), "status": {"phase": "Running"}})
    expected = plan(flow, run, observed, T0)
    for seed in range(5):
        shuffled = list(observed)
        random.Random(seed).shuffle(shuffled)
        assert plan(flow, run, shuffled, T0) == expected


def test_a_10000_way_foreach_keeps_the_status_small() -> None:
    flow = FlowModel.from_spec(FOREACH)
    rng = random.Random(7)
    bad = set(rng.sample(range(10_000), 300))
    observed = [ObservedAttempt(TaskId("start"), 0, "succeeded", result=result(splits=10_000),
                                created_at=T0, finished_at=T0)]
    for i in range(10_000):
        if i in bad:    # the infrastructure budget (3 retries) is spent
            observed += [ObservedAttempt(TaskId("body", str(i)), n, "failed", reason="Evicted",
                                         created_at=T0, finished_at=T0) for n in range(4)]
            continue
        state = "running" if i % 7 == 0 else "succeeded"
        observed.append(ObservedAttempt(TaskId("body", str(i)), 0, state,
                                        created_at=T0, finished_at=T0))
    run = RunModel.from_cr({**flowrun(maxParallelism=10_000), "status": {"phase": "Running"}})
    out = plan(flow, run, observed, T0 + timedelta(minutes=5))
    size = len(json.dumps(out.status))
    assert size < 64 * 1024, size
    body = by_name(out.status)["body"]
    assert body["tasks"]["total"] == 10_000 and body["tasks"]["failed"] == 300
    assert len(body["failedIndexes"]) <= 1024 and body["failedIndexes"].endswith("…")
    assert out.status["phase"] == "Failed"


def test_formatters() -> None:
    assert format_indexes([(3,), (17,), (18,), (19,)]) == "3,17-19"
    assert format_indexes([(1, 2), (1, 3), (2, 0)]) == "1.2-3,2.0"
    assert format_duration(45) == "45s"
    assert format_duration(90) == "1m30s"
    assert format_duration(7380) == "2h3m"


def test_task_result_parse_is_tolerant() -> None:
    text = json.dumps({"v": 1, "ok": True, "next": ["train"],
                       "foreach": {"var": "models", "splits": 3}, "switch": None,
                       "error": None})
    assert TaskResult.parse(text) == TaskResult(ok=True, next=("train",), foreach_splits=3)
    for garbage in (None, "", "not json", "[]", '{"ok": "yes"}', '{"ok": true, "next": 3}'):
        assert TaskResult.parse(garbage) is None
    failed = TaskResult.parse('{"ok": false, "error": {"type": "ValueError", "message": "x"}}')
    assert failed == TaskResult(ok=False, error_type="ValueError", error_message="x")


FORBIDDEN = ("kopf", "kubernetes", "minio", "kflow.store", "kflow.runner")


def test_the_planning_package_imports_no_io() -> None:
    package = Path(__file__).resolve().parents[3] / "operator" / "kflow" / "planning"
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 7
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not any(name == f or name.startswith(f + ".") for f in FORBIDDEN), \
                    f"{module.name} imports {name}"


def origin_of(cluster: Cluster) -> list[ObservedAttempt]:
    """What the operator pins of a finished run for a `resumeFrom` run: each task's
    newest attempt (the planner keeps the succeeded ones)."""
    newest: dict[TaskId, ObservedAttempt] = {}
    for (task, _), pod in sorted(cluster.pods.items(), key=lambda item: item[0][1]):
        newest[task] = pod
    return list(newest.values())


def test_resume_from_another_run_clones_what_succeeded_and_reruns_the_failed_tasks() -> None:
    origin = failed_foreach_run()
    cluster = Cluster(FlowModel.from_spec(FOREACH), flowrun(
        "run-2", maxParallelism=50, resumeFrom={"run": "run-1"}), succeed(splits={"start": 5}),
        origin=origin_of(origin))
    first = cluster.reconcile()
    assert [(s.task.task, s.attempt) for s in first.starts] == [("1", 0), ("3", 0)]
    assert first.status["originRun"] == "run-1" and first.status["phase"] == "Pending"
    body = by_name(first.status)["body"]
    assert body["tasks"]["cloned"] == 3 and body["tasks"]["succeeded"] == 3
    assert by_name(first.status)["start"]["tasks"]["cloned"] == 1
    assert "attempts" not in by_name(first.status)["start"]     # nothing ran here
    status = cluster.run()
    assert status["phase"] == "Succeeded"
    ran = sorted((t.step, t.task, a) for (t, a) in cluster.pods)
    assert ran == [("body", "1", 0), ("body", "3", 0), ("end", "0", 0), ("join", "0", 0)]
    assert by_name(status)["join"]["tasks"]["cloned"] == 0


def test_resume_from_a_step_of_another_run_reruns_it_and_everything_after() -> None:
    origin = Cluster(FlowModel.from_spec(LINEAR), flowrun(), succeed())
    assert origin.run()["phase"] == "Succeeded"
    cluster = Cluster(FlowModel.from_spec(LINEAR), flowrun(
        "run-2", resumeFrom={"run": "run-1", "step": "a"}), succeed(), origin=origin_of(origin))
    status = cluster.run()
    assert status["phase"] == "Succeeded"
    assert sorted((t.step, a) for (t, a) in cluster.pods) == [("a", 0), ("end", 0)]
    assert [s["tasks"]["cloned"] for s in status["steps"]] == [1, 0, 0]
    # from the start step: nothing is cloned
    fresh = Cluster(FlowModel.from_spec(LINEAR), flowrun(
        "run-3", resumeFrom={"run": "run-1", "step": "start"}), succeed(),
        origin=origin_of(origin))
    assert fresh.run()["phase"] == "Succeeded" and len(fresh.pods) == 3

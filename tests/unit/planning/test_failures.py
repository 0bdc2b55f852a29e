"""Retries (user and infrastructure budgets), back-off, catch fallback, unschedulable, stop."""

from __future__ import annotations

from datetime import timedelta

from kflow.planning import (
    FlowModel,
    ObservedAttempt,
    PlannerConfig,
    RunModel,
    StartTask,
    TaskId,
    plan,
)
from tests.unit.planning.driver import (
    T0,
    Cluster,
    events,
    flow_spec,
    flowrun,
    result,
    step,
    succeed,
)
from tests.unit.planning.test_shapes import FOREACH, by_name


def linear(**train: object) -> FlowModel:
    return FlowModel.from_spec(flow_spec(step("start", "start", "train"),
                                         step("train", "linear", "end", **train),
                                         step("end", "end")))


def failing(step_name: str, times: int, reason: str, exit_code: int | None) -> object:
    """`step_name` fails its first `times` attempts, then succeeds."""
    def outcome(start: StartTask) -> ObservedAttempt:
        if start.task.step == step_name and start.attempt < times:
            return ObservedAttempt(start.task, start.attempt, "failed", reason=reason,
                                   exit_code=exit_code, message="boom",
                                   result=result(ok=False) if exit_code == 1 else None)
        return succeed()(start)
    return outcome


def test_user_failures_are_retried_up_to_retry_times() -> None:
    cluster = Cluster(linear(retry={"times": 2}), flowrun(),
                      failing("train", 2, "UserError", 1))  # type: ignore[arg-type]
    assert cluster.run()["phase"] == "Succeeded"
    assert sorted(a for (t, a) in cluster.pods if t.step == "train") == [0, 1, 2]
    assert events(cluster).count("Retrying") == 2


def test_user_budget_exhausted_fails_the_run_with_a_log_hint() -> None:
    cluster = Cluster(linear(retry={"times": 1}), flowrun(),
                      failing("train", 9, "UserError", 1))  # type: ignore[arg-type]
    status = cluster.run()
    assert status["phase"] == "Failed"
    failure = status["failure"]
    assert (failure["step"], failure["task"], failure["attempt"], failure["reason"]) == \
        ("train", "0", 1, "UserError")
    assert ("kubectl logs -n ml -l kflow.dev/run=run-1,kflow.dev/step=train,kflow.dev/task=0"
            in failure["message"])
    steps = by_name(status)
    assert steps["train"]["phase"] == "Failed" and steps["end"]["phase"] == "Pending"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "False"
    assert conditions["Succeeded"]["reason"] == "UserError"
    assert events(cluster).count("Failed") == 1 and events(cluster).count("StepFailed") == 1


def test_infrastructure_failures_spend_their_own_budget_and_shift_the_last_user_attempt() -> None:
    cluster = Cluster(linear(retry={"times": 1}), flowrun(),
                      failing("train", 3, "Evicted", None),  # type: ignore[arg-type]
                      config=PlannerConfig(infrastructure_retries=3))
    assert cluster.run()["phase"] == "Succeeded"
    starts = [s for p in cluster.plans for s in p.starts if s.task.step == "train"]
    assert [(s.attempt, s.last_user_attempt) for s in starts] == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_infrastructure_budget_exhausted_fails_with_the_platform_reason() -> None:
    cluster = Cluster(linear(retry={"times": 4}), flowrun(),
                      failing("train", 99, "Preempted", None),  # type: ignore[arg-type]
                      config=PlannerConfig(infrastructure_retries=2))
    status = cluster.run()
    assert status["failure"]["reason"] == "Preempted"
    assert status["failure"]["attempt"] == 2          # 0 + 2 infrastructure retries


def test_infrastructure_exit_codes_and_deleted_pods_are_infrastructure() -> None:
    flow = linear()
    for code in (66, 70, 75, 143):
        cluster = Cluster(flow, flowrun(), failing("train", 1, "", code),  # type: ignore[arg-type]
                          config=PlannerConfig(infrastructure_retries=1))
        assert cluster.run()["phase"] == "Succeeded", code


def test_bad_code_package_is_not_retried() -> None:
    cluster = Cluster(linear(retry={"times": 3}), flowrun(),
                      failing("train", 9, "", 65))  # type: ignore[arg-type]
    status = cluster.run()
    assert status["failure"]["reason"] == "InvalidSpec"
    assert status["failure"]["attempt"] == 0


def test_catch_fallback_after_infrastructure_budget() -> None:
    flow = linear(retry={"times": 1}, catch={"var": "error"})

    def outcome(start: StartTask) -> ObservedAttempt:
        if start.task.step == "train" and start.attempt <= 1:
            return ObservedAttempt(start.task, start.attempt, "failed", reason="NodeLost")
        return succeed()(start)
    cluster = Cluster(flow, flowrun(), outcome, config=PlannerConfig(infrastructure_retries=1))
    assert cluster.run()["phase"] == "Succeeded"
    starts = [(s.attempt, s.last_user_attempt) for p in cluster.plans for s in p.starts
              if s.task.step == "train"]
    # attempt 0 (last user 1), infra retry 1 (last user 2), budget gone: fallback 4 > 3
    assert starts == [(0, 1), (1, 2), (4, 3)]


def test_back_off_returns_requeue_after_then_starts() -> None:
    flow = linear(retry={"times": 1, "minutesBetweenRetries": 2})
    failed = ObservedAttempt(TaskId("train"), 0, "failed", reason="UserError", exit_code=1,
                             finished_at=T0)
    done = ObservedAttempt(TaskId("start"), 0, "succeeded", finished_at=T0)
    run = RunModel.from_cr({**flowrun(), "status": {"phase": "Running"}})
    early = plan(flow, run, [done, failed], T0 + timedelta(seconds=30))
    assert early.starts == ()
    assert early.requeue_after == 90
    assert by_name(early.status)["train"]["reason"] == "UserError"
    cond = {c["type"]: c for c in early.status["conditions"]}["Progressing"]
    assert cond["reason"] == "Retrying"
    late = plan(flow, run, [done, failed], T0 + timedelta(seconds=120))
    assert [(s.task, s.attempt) for s in late.starts] == [(TaskId("train"), 1)]


def test_unschedulable_is_reported_at_once_then_fails_after_the_pending_timeout() -> None:
    flow = linear()
    done = ObservedAttempt(TaskId("start"), 0, "succeeded", finished_at=T0)
    stuck = ObservedAttempt(TaskId("train"), 0, "pending", reason="Unschedulable",
                            message="0/3 nodes are available: 3 Insufficient memory.",
                            created_at=T0)
    run = RunModel.from_cr({**flowrun(), "status": {"phase": "Running"}})
    config = PlannerConfig(pending_timeout_seconds=300)
    now = plan(flow, run, [done, stuck], T0 + timedelta(seconds=10), config)
    train = by_name(now.status)["train"]
    assert train["reason"] == "Unschedulable" and "Insufficient memory" in train["message"]
    cond = {c["type"]: c for c in now.status["conditions"]}["Progressing"]
    assert cond["reason"] == "Unschedulable" and "Insufficient memory" in cond["message"]
    assert now.requeue_after == 290
    assert [e.reason for e in now.events if e.reason != "Started"] == ["Unschedulable"]
    assert now.status["reason"] == "Unschedulable"      # the Reason printer column
    assert now.status["message"] == ("train/0: 0/3 nodes are available: 3 Insufficient "
                                     "memory. (fails at 2026-11-29T10:05:00Z if still "
                                     "pending)")
    # replaying with the new status: no repeated event
    again = plan(flow, RunModel.from_cr({**flowrun(), "status": now.status}), [done, stuck],
                 T0 + timedelta(seconds=20), config)
    assert again.events == ()
    late = plan(flow, RunModel.from_cr({**flowrun(), "status": now.status}), [done, stuck],
                T0 + timedelta(seconds=300), config)
    assert late.status["phase"] == "Failed"
    assert late.status["failure"]["reason"] == "Unschedulable"
    assert late.status["reason"] == "Unschedulable"
    assert late.status["message"] == late.status["failure"]["message"]
    assert [(s.task, s.attempt) for s in late.stops] == [(TaskId("train"), 0)]


def test_fail_fast_stops_the_running_siblings() -> None:
    flow = FlowModel.from_spec(FOREACH)
    observed = [ObservedAttempt(TaskId("start"), 0, "succeeded", result=result(splits=3)),
                ObservedAttempt(TaskId("body", "0"), 0, "running"),
                ObservedAttempt(TaskId("body", "1"), 0, "failed", reason="UserError",
                                exit_code=1),
                ObservedAttempt(TaskId("body", "2"), 0, "pending", deleted=True)]
    run = RunModel.from_cr({**flowrun(), "status": {"phase": "Running"}})
    result_ = plan(flow, run, observed, T0)
    assert result_.status["phase"] == "Failed"
    assert [(s.task.task, s.reason) for s in result_.stops] == [("0", "RunFailed")]
    assert result_.starts == ()
    body = by_name(result_.status)["body"]
    assert body["phase"] == "Failed" and body["failedIndexes"] == "1"
    assert body["tasks"] == {"total": 3, "pending": 1, "running": 1, "succeeded": 0,
                             "failed": 1, "cloned": 0}


def test_stop_deletes_active_pods_then_ends_stopped() -> None:
    cluster = Cluster(FlowModel.from_spec(FOREACH), flowrun(), succeed(splits={"start": 3}))
    cluster.reconcile()
    cluster.finish_all()
    cluster.reconcile()                       # 3 body tasks pending
    cluster.cr["spec"]["stop"] = True
    stopping = cluster.reconcile()
    assert len(stopping.stops) == 3 and stopping.starts == ()
    assert stopping.status["phase"] == "Running"
    assert cluster.reconcile().stops == ()    # already being deleted
    status = cluster.run()
    assert status["phase"] == "Stopped"
    assert by_name(status)["body"]["phase"] == "Stopped"
    assert {c["type"]: c for c in status["conditions"]}["Succeeded"]["reason"] == "Stopped"
    assert events(cluster).count("Stopped") == 1


def test_stopping_a_finished_run_changes_nothing() -> None:
    cluster = Cluster(linear(), flowrun(), succeed())
    status = cluster.run()
    cluster.cr["spec"]["stop"] = True
    after = cluster.reconcile()
    assert after.status["phase"] == "Succeeded" and after.actions == ()
    assert after.status == status


def test_a_pod_deleted_under_us_is_retried_as_infrastructure() -> None:
    flow = linear()
    observed = [ObservedAttempt(TaskId("start"), 0, "succeeded"),
                ObservedAttempt(TaskId("train"), 0, "failed", deleted=True, exit_code=143)]
    run = RunModel.from_cr({**flowrun(), "status": {"phase": "Running"}})
    out = plan(flow, run, observed, T0)
    assert [(s.task, s.attempt) for s in out.starts] == [(TaskId("train"), 1)]
    assert by_name(out.status)["train"]["reason"] == "NodeLost"


def test_runner_infrastructure_exits_reported_as_launch_error_are_retried() -> None:
    # kflow_operator.observe reports exits 66/70/75 as LaunchError
    cluster = Cluster(linear(), flowrun(), failing("train", 1, "LaunchError", 75),  # type: ignore[arg-type]
                      config=PlannerConfig(infrastructure_retries=1))
    assert cluster.run()["phase"] == "Succeeded"


def test_a_pod_stuck_on_its_image_fails_after_the_pending_timeout() -> None:
    flow = linear()
    done = ObservedAttempt(TaskId("start"), 0, "succeeded", finished_at=T0)
    stuck = ObservedAttempt(TaskId("train"), 0, "pending", reason="ImageError",
                            message="ErrImagePull: not found", created_at=T0)
    run = RunModel.from_cr({**flowrun(), "status": {"phase": "Running"}})
    early = plan(flow, run, [done, stuck], T0 + timedelta(seconds=5))
    assert by_name(early.status)["train"]["reason"] == "ImageError"
    late = plan(flow, run, [done, stuck], T0 + timedelta(seconds=301))
    assert late.status["failure"]["reason"] == "ImageError"


def test_a_finished_run_is_deleted_after_its_ttl() -> None:
    cluster = Cluster(linear(), flowrun(ttlSecondsAfterFinished=60), succeed())
    status = cluster.run()
    assert status["phase"] == "Succeeded"
    finished = cluster.plans[-1]
    assert not finished.delete_run and finished.requeue_after is not None
    assert 0 < finished.requeue_after <= 60
    cluster.now += timedelta(seconds=59)
    waiting = cluster.reconcile()
    assert not waiting.delete_run and waiting.requeue_after is not None
    assert waiting.requeue_after <= 1.0 + 1e-6
    cluster.now += timedelta(seconds=2)
    assert cluster.reconcile().delete_run


def test_a_run_without_ttl_or_not_finished_is_never_deleted() -> None:
    kept = Cluster(linear(), flowrun(), succeed())
    kept.run()
    kept.now += timedelta(days=400)
    assert not kept.reconcile().delete_run and kept.reconcile().requeue_after is None
    running = Cluster(linear(), flowrun(ttlSecondsAfterFinished=0), succeed())
    first = running.reconcile()
    assert first.status["phase"] in ("Pending", "Running") and not first.delete_run

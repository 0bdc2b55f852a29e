"""A Flow's schedule (`FlowReconciler`) and ``@trigger_on_finish`` (`Reconciler` +
`TriggerLauncher`) against the in-memory `KubeApi` of test_reconcile."""

from __future__ import annotations

import copy
from datetime import timedelta

from kflow.api_types import run_id
from kflow_operator.flows import FlowReconciler
from kflow_operator.reconcile import Reconciler
from kflow_operator.settings import OperatorConfig
from kflow_operator.triggers import ANNOTATION_TRIGGERED, TriggerLauncher
from tests.component.operator.test_reconcile import NOW, NS, FakeKube, add_run, kube

__all__ = ["kube"]          # the fixture

STEPS = ("start", "counts", "sums", "merge", "end")


def scheduled(kube: FakeKube) -> list[str]:
    return sorted(name for name, r in kube.flowruns.items()
                  if r["metadata"].get("labels", {}).get("kflow.dev/started-by") == "schedule")


def test_a_schedule_starts_one_run_per_time_and_a_redeploy_without_it_stops_it(
        kube: FakeKube) -> None:
    flow = kube.flows["branch-flow"]
    flow["spec"]["schedule"] = {"cron": "*/5 * * * *"}
    clock = [NOW]                                              # 10:00:00
    shell = FlowReconciler(kube, clock=lambda: clock[0])
    assert shell.reconcile(NS, "branch-flow") == 300.0
    status = flow["status"]
    assert (status["schedule"], status["nextScheduleTime"]) == ("*/5 * * * *",
                                                                "2026-11-29T10:05:00Z")
    assert scheduled(kube) == []

    clock[0] = NOW + timedelta(minutes=5, seconds=1)
    assert shell.reconcile(NS, "branch-flow") == 299.0
    [name] = scheduled(kube)
    assert name == f"branch-flow-{int((NOW + timedelta(minutes=5)).timestamp()) // 60}"
    assert kube.flowruns[name]["spec"] == {"flowRef": {"name": "branch-flow"}}
    status = flow["status"]
    assert status["lastScheduleTime"] == "2026-11-29T10:05:00Z"
    assert status["lastScheduledRun"] == name and status["lastRun"]["name"] == name
    assert status["nextScheduleTime"] == "2026-11-29T10:10:00Z"
    assert [e.reason for e in kube.events] == ["Scheduled"]

    shell.reconcile(NS, "branch-flow")                         # again: nothing new
    assert scheduled(kube) == [name] and len(kube.events) == 1

    del flow["spec"]["schedule"]                               # a redeploy without it
    flow["metadata"]["generation"] = 2
    assert shell.reconcile(NS, "branch-flow") is None
    assert "nextScheduleTime" not in flow["status"] and "schedule" not in flow["status"]
    clock[0] += timedelta(hours=1)
    assert shell.reconcile(NS, "branch-flow") is None
    assert scheduled(kube) == [name]


def test_an_invalid_cron_line_is_not_accepted_and_starts_nothing(kube: FakeKube) -> None:
    flow = kube.flows["branch-flow"]
    flow["spec"]["schedule"] = {"cron": "0 0 L * *"}
    FlowReconciler(kube, clock=lambda: NOW).reconcile(NS, "branch-flow")
    accepted = flow["status"]["conditions"][0]
    assert (accepted["status"], accepted["reason"]) == ("False", "InvalidSchedule")
    assert "spec.schedule.cron: day-of-month field: 'L'" in accepted["message"]
    assert "nextScheduleTime" not in flow["status"]


def test_old_finished_scheduled_runs_are_deleted_beyond_the_history_limits(
        kube: FakeKube) -> None:
    flow = kube.flows["branch-flow"]
    flow["spec"]["schedule"] = {"cron": "0 * * * *", "successfulRunsHistoryLimit": 1,
                                "failedRunsHistoryLimit": 1}
    for hour, phase in ((5, "Succeeded"), (6, "Succeeded"), (7, "Failed"), (8, "Failed"),
                        (9, "Running")):
        name = f"branch-flow-h{hour}"
        kube.flowruns[name] = {
            "metadata": {"name": name, "uid": f"uid-{name}",
                         "creationTimestamp": f"2026-11-29T0{hour}:00:00Z",
                         "labels": {"kflow.dev/flow": "branch-flow",
                                    "kflow.dev/started-by": "schedule"},
                         "annotations": {"kflow.dev/scheduled-at":
                                         f"2026-11-29T0{hour}:00:00Z"}},
            "spec": {"flowRef": {"name": "branch-flow"}}, "status": {"phase": phase}}
    add_run(kube, "by-hand")                                   # not the schedule's
    kube.flowruns["by-hand"]["status"] = {"phase": "Failed"}
    FlowReconciler(kube, clock=lambda: NOW).reconcile(NS, "branch-flow")
    assert sorted(kube.flowruns) == ["branch-flow-h6", "branch-flow-h8", "branch-flow-h9",
                                     "by-hand"]


def _downstream(kube: FakeKube, name: str = "after-flow", created: str = "2026-01-01T00:00:00Z"
                ) -> None:
    flow = copy.deepcopy(kube.flows["branch-flow"])
    flow["metadata"].update(name=name, uid=f"uid-{name}", creationTimestamp=created)
    flow["spec"].update(flowName="AfterFlow", triggerOnFinish=[{"flow": "BranchFlow"}])
    kube.flows[name] = flow


def _succeed(kube: FakeKube, shell: Reconciler, run: str) -> None:
    shell.reconcile(NS, run)
    for step in STEPS:
        kube.succeed(step)
        shell.reconcile(NS, run)
    assert kube.flowruns[run]["status"]["phase"] == "Succeeded"


def test_a_success_starts_each_listening_flow_once(kube: FakeKube) -> None:
    _downstream(kube)
    _downstream(kube, "late-flow", created="2099-01-01T00:00:00Z")   # deployed afterwards
    add_run(kube)
    shell = Reconciler(kube, OperatorConfig(), clock=lambda: NOW,
                       run_succeeded=TriggerLauncher(kube).run_succeeded)
    _succeed(kube, shell, "run-1")
    upstream = kube.flowruns["run-1"]
    triggered = [r for r in kube.flowruns.values()
                 if r["spec"]["flowRef"]["name"] != "branch-flow"]
    assert len(triggered) == 1
    [down] = triggered
    upstream_id = run_id(upstream)
    assert down["metadata"]["name"] == f"after-flow-{upstream_id}"
    assert down["spec"]["trigger"] == {"flow": "BranchFlow", "run": "run-1",
                                       "runId": upstream_id}
    assert down["metadata"]["labels"]["kflow.dev/started-by"] == "trigger"
    assert upstream["metadata"]["annotations"][ANNOTATION_TRIGGERED] == down["metadata"]["name"]

    # Reconciled again (an operator restart): the mark says it was done.
    del kube.flowruns[down["metadata"]["name"]]               # e.g. deleted by its TTL
    shell.reconcile(NS, "run-1")
    assert [r for r in kube.flowruns if r != "run-1"] == []


def test_a_crash_before_the_mark_repeats_only_the_create(kube: FakeKube) -> None:
    _downstream(kube)
    add_run(kube)
    shell = Reconciler(kube, OperatorConfig(), clock=lambda: NOW,
                       run_succeeded=TriggerLauncher(kube).run_succeeded)
    _succeed(kube, shell, "run-1")
    del kube.flowruns["run-1"]["metadata"]["annotations"][ANNOTATION_TRIGGERED]
    shell.reconcile(NS, "run-1")
    assert len(kube.flowruns) == 2
    assert ANNOTATION_TRIGGERED in kube.flowruns["run-1"]["metadata"]["annotations"]


def test_the_triggered_runs_pods_get_the_upstream_run(kube: FakeKube) -> None:
    _downstream(kube)
    add_run(kube)
    launcher = TriggerLauncher(kube)
    shell = Reconciler(kube, OperatorConfig(), clock=lambda: NOW,
                       run_succeeded=launcher.run_succeeded)
    _succeed(kube, shell, "run-1")
    name = f"after-flow-{run_id(kube.flowruns['run-1'])}"
    kube.pods.clear()
    shell.reconcile(NS, name)
    [pod] = kube.pods.values()
    args = pod["spec"]["containers"][0]["args"]
    at = args.index("--trigger-run")
    assert args[at + 1] == f"BranchFlow/{run_id(kube.flowruns['run-1'])}"


def test_a_failed_run_triggers_nothing(kube: FakeKube) -> None:
    _downstream(kube)
    add_run(kube, flow="nope")                                 # fails: InvalidSpec
    shell = Reconciler(kube, OperatorConfig(), clock=lambda: NOW,
                       run_succeeded=TriggerLauncher(kube).run_succeeded)
    shell.reconcile(NS, "run-1")
    assert list(kube.flowruns) == ["run-1"]

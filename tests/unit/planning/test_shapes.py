"""The planner over graph shapes: linear, branch/join, foreach, nested foreach, switch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kflow.planning import FlowModel, RunModel, TaskId, plan
from tests.unit.planning.driver import (
    T0,
    Cluster,
    events,
    flow_spec,
    flowrun,
    step,
    succeed,
)

LINEAR = flow_spec(step("start", "start", "a"), step("a", "linear", "end"), step("end", "end"))
BRANCH = flow_spec(step("start", "split-static", "a", "b"), step("a", "linear", "join"),
                   step("b", "linear", "join"), step("join", "join", "end"),
                   step("end", "end"))
FOREACH = flow_spec(step("start", "split-foreach", "body", foreach="items"),
                    step("body", "linear", "join"), step("join", "join", "end"),
                    step("end", "end"))
NESTED = flow_spec(step("start", "split-foreach", "outer", foreach="xs"),
                   step("outer", "split-foreach", "inner", foreach="ys"),
                   step("inner", "linear", "inner_join"),
                   step("inner_join", "join", "outer_join"),
                   step("outer_join", "join", "end"), step("end", "end"))
SWITCH = flow_spec(
    step("start", "split-switch", "fast", "full",
         switch={"condition": "mode", "cases": [{"value": "f", "step": "fast"},
                                                {"value": "F", "step": "full"}]}),
    step("fast", "linear", "end"), step("full", "linear", "end"), step("end", "end"))


def by_name(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in status["steps"]}


def test_linear_runs_to_success() -> None:
    cluster = Cluster(FlowModel.from_spec(LINEAR, 3), flowrun(), succeed())
    first = cluster.reconcile()
    assert [(s.task, s.attempt) for s in first.starts] == [(TaskId("start"), 0)]
    assert first.status["phase"] == "Pending"
    status = cluster.run()
    assert status["phase"] == "Succeeded"
    assert status["progress"] == "3/3"
    assert status["flow"] == {"generation": 3, "codeSha256": "a" * 64}
    assert [s["phase"] for s in status["steps"]] == ["Succeeded"] * 3
    assert events(cluster) == ["Started", "Succeeded"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "True"
    assert conditions["Progressing"]["status"] == "False"
    assert status["finishedAt"] and status["duration"].endswith("s")


def test_static_split_starts_all_branches_and_the_join_waits_for_both() -> None:
    cluster = Cluster(FlowModel.from_spec(BRANCH), flowrun(), succeed())
    cluster.reconcile()
    cluster.finish_all()
    second = cluster.reconcile()
    assert sorted(s.task.step for s in second.starts) == ["a", "b"]
    # only a finishes: the join must not start
    cluster.pods[(TaskId("a"), 0)] = cluster.pods[(TaskId("a"), 0)].__class__(
        TaskId("a"), 0, "succeeded", exit_code=0)
    third = cluster.reconcile()
    assert third.starts == ()
    assert by_name(third.status)["join"]["phase"] == "Pending"
    assert cluster.run()["phase"] == "Succeeded"


def test_foreach_fans_out_from_the_termination_message_and_the_join_waits() -> None:
    cluster = Cluster(FlowModel.from_spec(FOREACH), flowrun(maxParallelism=100),
                      succeed(splits={"start": 4}))
    cluster.reconcile()
    cluster.finish_all()
    fan = cluster.reconcile()
    assert [s.task for s in fan.starts] == [TaskId("body", str(i)) for i in range(4)]
    assert by_name(fan.status)["body"]["tasks"]["total"] == 4
    status = cluster.run()
    assert status["phase"] == "Succeeded"
    assert by_name(status)["body"]["tasks"]["succeeded"] == 4
    assert by_name(status)["join"]["tasks"]["total"] == 1


def test_nested_foreach_task_paths() -> None:
    cluster = Cluster(FlowModel.from_spec(NESTED), flowrun(maxParallelism=100),
                      succeed(splits={"start": 2, "outer": 3}))
    status = cluster.run()
    assert status["phase"] == "Succeeded"
    inner = sorted(t.task for (t, _) in cluster.pods if t.step == "inner")
    assert inner == ["0.0", "0.1", "0.2", "1.0", "1.1", "1.2"]
    assert sorted(t.task for (t, _) in cluster.pods if t.step == "inner_join") == ["0", "1"]
    assert [t.task for (t, _) in cluster.pods if t.step == "outer_join"] == ["0"]


def test_an_empty_foreach_goes_straight_to_the_join() -> None:
    cluster = Cluster(FlowModel.from_spec(FOREACH), flowrun(), succeed(splits={"start": 0}))
    status = cluster.run()
    assert status["phase"] == "Succeeded"
    assert by_name(status)["body"]["phase"] == "Skipped"


def test_switch_follows_the_choice_and_skips_the_other_branch() -> None:
    cluster = Cluster(FlowModel.from_spec(SWITCH), flowrun(), succeed(switch={"start": "full"}))
    status = cluster.run()
    assert status["phase"] == "Succeeded"
    steps = by_name(status)
    assert steps["full"]["phase"] == "Succeeded"
    assert steps["fast"]["phase"] == "Skipped"
    assert status["progress"] == "4/4"
    assert not any(t.step == "fast" for (t, _) in cluster.pods)


def test_switch_case_value_is_accepted_as_well_as_the_step_name() -> None:
    cluster = Cluster(FlowModel.from_spec(SWITCH), flowrun(), succeed(switch={"start": "f"}))
    assert cluster.run()["phase"] == "Succeeded"
    assert any(t.step == "fast" for (t, _) in cluster.pods)


def test_skipped_is_known_while_the_run_goes_on() -> None:
    cluster = Cluster(FlowModel.from_spec(SWITCH), flowrun(), succeed(switch={"start": "full"}))
    cluster.reconcile()
    cluster.finish_all()
    status = cluster.reconcile().status
    assert by_name(status)["fast"]["phase"] == "Skipped"
    assert by_name(status)["full"]["phase"] == "Running"


def test_bad_switch_choice_fails_the_run_with_internal() -> None:
    cluster = Cluster(FlowModel.from_spec(SWITCH), flowrun(), succeed(switch={"start": "nope"}))
    status = cluster.run()
    assert status["phase"] == "Failed"
    assert status["failure"]["reason"] == "Internal"
    assert "nope" in status["failure"]["message"]


def test_max_parallelism_caps_pending_and_running_attempts() -> None:
    cluster = Cluster(FlowModel.from_spec(FOREACH), flowrun(maxParallelism=3),
                      succeed(splits={"start": 10}))
    cluster.reconcile()
    cluster.finish_all()
    fan = cluster.reconcile()
    assert [s.task.task for s in fan.starts] == ["0", "1", "2"]
    again = cluster.reconcile()            # the 3 are pending: nothing more
    assert again.starts == ()
    cluster.finish_all()
    assert [s.task.task for s in cluster.reconcile().starts] == ["3", "4", "5"]
    status = cluster.run()
    assert status["phase"] == "Succeeded"
    assert max(len(p.starts) for p in cluster.plans) <= 3


# --- the fixture flows (tests/fixtures/flows), through the SDK's manifest -------------

FIXTURES = ("linear", "branch", "nested_branches", "foreach", "nested_foreach", "switch",
            "switch_in_branch", "foreach_in_switch", "inheritance", "parameters_decorators")


def _manifest(name: str) -> dict[str, Any]:
    from kflow import graph, manifest, packaging
    from tests.fixtures.flows import load_flow_file, path_of

    path: Path = path_of(name)
    flow_cls = load_flow_file(path)
    package = packaging.build_package(path)
    return manifest.flow_manifest(
        flow_cls, graph.build_graph(flow_cls), package,
        package_url=f"s3://kflow/{packaging.package_key(package.sha256)}",
        image="ghcr.io/kflow/kflow-runner:test", namespace="ml", username="alice")


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_flows_run_to_success(name: str) -> None:
    spec = _manifest(name)["spec"]
    flow = FlowModel.from_spec(spec)
    splits = {s["name"]: 2 for s in spec["steps"] if s["type"] == "split-foreach"}
    switch = {s["name"]: s["switch"]["cases"][0]["step"]
              for s in spec["steps"] if s["type"] == "split-switch"}
    cluster = Cluster(flow, flowrun(maxParallelism=50), succeed(splits, switch))
    status = cluster.run()
    assert status["phase"] == "Succeeded", status
    assert status["progress"] == f"{len(spec['steps'])}/{len(spec['steps'])}"
    assert all(s["phase"] in ("Succeeded", "Skipped") for s in status["steps"])


def test_foreach_in_switch_skips_the_foreach() -> None:
    spec = _manifest("foreach_in_switch")["spec"]
    cluster = Cluster(FlowModel.from_spec(spec), flowrun(),
                      succeed(switch={"start": "skip_processing"}))
    status = cluster.run()
    assert status["phase"] == "Succeeded"
    steps = by_name(status)
    assert {steps[s]["phase"] for s in ("process_items", "do_work", "join_work")} == {"Skipped"}


def test_first_plan_is_the_same_for_the_same_inputs() -> None:
    flow = FlowModel.from_spec(BRANCH)
    run = RunModel.from_cr(flowrun())
    assert plan(flow, run, [], T0) == plan(flow, run, [], T0)

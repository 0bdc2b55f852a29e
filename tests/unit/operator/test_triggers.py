"""`triggered_runs` / `needs_triggering` (pure) and the names of runs the operator starts."""

from __future__ import annotations

from typing import Any

from kflow_operator.naming import derived_name, is_dns_label
from kflow_operator.triggers import ANNOTATION_TRIGGERED, needs_triggering, triggered_runs

NS = "ml"


def upstream(name: str = "a-run", phase: str = "Succeeded",
             annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "uid": "1a2b3c4d-9999",
                         "annotations": annotations or {}},
            "status": {"phase": phase, "finishedAt": "2026-05-01T12:00:00Z"}}


def flow(name: str, listens: list[str], created: str = "2026-01-01T00:00:00Z",
         deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if deleting:
        metadata["deletionTimestamp"] = "2026-05-01T00:00:00Z"
    return {"metadata": metadata, "spec": {"flowName": "X",
                                           "triggerOnFinish": [{"flow": f} for f in listens]}}


def test_only_listening_flows_that_existed_when_the_run_finished_start() -> None:
    flows = [flow("b-flow", ["AFlow"]), flow("c-flow", ["Other"]),
             flow("d-flow", ["Other", "AFlow"]),
             flow("later-flow", ["AFlow"], created="2026-05-01T12:00:01Z"),
             flow("gone-flow", ["AFlow"], deleting=True)]
    bodies = triggered_runs(upstream(), "AFlow", flows)
    assert [b["metadata"]["name"] for b in bodies] == ["b-flow-a-run-1a2b3c4d",
                                                       "d-flow-a-run-1a2b3c4d"]
    body = bodies[0]
    assert body["spec"] == {"flowRef": {"name": "b-flow"}, "trigger": {
        "flow": "AFlow", "run": "a-run", "runId": "a-run-1a2b3c4d"}}
    assert body["metadata"]["labels"]["kflow.dev/started-by"] == "trigger"
    assert body["metadata"]["labels"]["kflow.dev/flow"] == "b-flow"
    assert triggered_runs(upstream(), "AFlow", flows) == bodies      # deterministic


def test_the_triggering_users_annotation_is_carried() -> None:
    run = upstream(annotations={"kflow.dev/user": "alice"})
    [body] = triggered_runs(run, "AFlow", [flow("b-flow", ["AFlow"])])
    assert body["metadata"]["annotations"] == {"kflow.dev/user": "alice"}


def test_needs_triggering_once_and_only_on_success() -> None:
    assert needs_triggering(upstream())
    assert not needs_triggering(upstream(phase="Failed"))
    assert not needs_triggering(upstream(phase="Running"))
    assert not needs_triggering(upstream(annotations={ANNOTATION_TRIGGERED: "none"}))


def test_derived_names_fit_and_stay_distinct() -> None:
    assert derived_name("b-flow", "a-run-1a2b3c4d", "trigger") == "b-flow-a-run-1a2b3c4d"
    long_owner, long_suffix = "f" * 60, "r" * 50 + "-1a2b3c4d"
    names = {derived_name(long_owner, long_suffix, "trigger"),
             derived_name(long_owner, long_suffix[:-1] + "e", "trigger"),
             derived_name(long_owner + "g", long_suffix, "trigger"),
             derived_name(long_owner, long_suffix, "schedule")}
    assert len(names) == 4
    assert all(is_dns_label(name) for name in names)
    assert derived_name(long_owner, "29932528", "schedule").endswith("-29932528")

"""`Trigger` (``current.trigger``, ``Run.trigger``), the runner's ``--trigger-run``, the
start record's ``trigger``, and the client reading it back from the archive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import kflow.client as client
from kflow import current
from kflow.client import Run, Source
from kflow.runner.cli import parse_args
from kflow.runner.exitcodes import UsageError
from kflow.store import Datastore, LocalObjectStore, TaskKey, TaskMetadata
from kflow.trigger import Trigger, TriggeringRun, parse_pathspec
from kflow_operator.triggers import triggered_runs

NS = "ml"
SHA = "a" * 64


def _record(store: Datastore, flow: str, run_id: str, extra: dict[str, str]) -> None:
    for step in ("start", "end"):
        writer = store.attempt(TaskKey(NS, flow, run_id, step, "0").attempt(0))
        meta = TaskMetadata(attempt=0, started_at=100, user="alice", host="node",
                            code_sha256=None, python_version="3.11",
                            cloudpickle_version="3", kflow_version="0.1.0",
                            extra=extra if step == "start" else {})
        writer.begin(meta)
        writer.save_artifacts({"value": run_id})
        writer.finish(meta.finished(101, 0, None))


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Datastore]:
    store = Datastore(LocalObjectStore(tmp_path))
    _record(store, "AFlow", "a-run-1a2b3c4d", {})
    _record(store, "BFlow", "b-run-5e6f7a8b", {"trigger": "AFlow/a-run-1a2b3c4d"})
    client.set_source(Source(store, NS, None))
    yield store
    client.set_source(None)


def test_the_three_spellings_agree() -> None:
    from_spec = Trigger.from_spec({"flow": "AFlow", "run": "a-run", "runId": "a-run-1a2b3c4d"})
    from_text = Trigger.from_text("AFlow/a-run-1a2b3c4d")
    assert from_spec is not None and from_text is not None
    assert from_spec.to_text() == from_text.to_text() == "AFlow/a-run-1a2b3c4d"
    assert from_spec.triggering_runs == (TriggeringRun("AFlow", "a-run-1a2b3c4d", "a-run"),)
    assert from_spec.event.name == "kflow.AFlow.end" and from_spec.event.id == "a-run-1a2b3c4d"
    assert Trigger.from_spec(None) is None and Trigger.from_text("") is None
    assert Trigger.from_spec({"flow": "AFlow"}) is None


def test_the_operator_writes_what_the_client_reads() -> None:
    run = {"metadata": {"name": "a-run", "namespace": NS, "uid": "1a2b3c4d-0000"},
           "status": {"phase": "Succeeded", "finishedAt": "2026-01-01T00:00:00Z"}}
    flows = [{"metadata": {"name": "b-flow", "creationTimestamp": "2025-01-01T00:00:00Z"},
              "spec": {"flowName": "BFlow", "triggerOnFinish": [{"flow": "AFlow"}]}}]
    [body] = triggered_runs(run, "AFlow", flows)
    trigger = Trigger.from_spec(body["spec"]["trigger"])
    assert trigger is not None and trigger.to_text() == "AFlow/a-run-1a2b3c4d"


def test_runner_argument() -> None:
    base = ["--flow-file", "f.py", "--code-sha256", SHA, "--namespace", NS, "--flow", "BFlow",
            "--run-id", "b-run-5e6f7a8b", "--step", "start", "--task", "0", "--attempt", "0"]
    assert parse_args(base).trigger_run is None
    assert parse_args([*base, "--trigger-run", "AFlow/a-run-1"]).trigger_run == "AFlow/a-run-1"
    with pytest.raises(UsageError, match="--trigger-run: 'a-run' is not FLOW/RUN_ID"):
        parse_args([*base, "--trigger-run", "a-run"])
    with pytest.raises(ValueError, match="not FLOW/RUN_ID"):
        parse_pathspec("AFlow/Bad_Id")


def test_current_trigger_opens_the_upstream_run(archive: Datastore) -> None:
    assert current.trigger is None
    try:
        current._set(flow_name="BFlow", run_id="b-run-5e6f7a8b", step_name="start",
                     task_id="0", trigger=Trigger.from_text("AFlow/a-run-1a2b3c4d"))
        trigger = current.trigger
        assert trigger is not None
        assert trigger.run.id == "a-run-1a2b3c4d" and trigger.run.successful
        assert [r.pathspec for r in trigger.runs] == ["AFlow/a-run-1a2b3c4d"]
        assert "trigger" in current
    finally:
        current._reset()
    assert current.trigger is None and "trigger" not in current


def test_run_trigger_from_the_archive(archive: Datastore) -> None:
    trigger = Run("BFlow/b-run-5e6f7a8b").trigger
    assert trigger is not None
    data = trigger.run.data
    assert data is not None and data.value == "a-run-1a2b3c4d"
    assert Run("AFlow/a-run-1a2b3c4d").trigger is None

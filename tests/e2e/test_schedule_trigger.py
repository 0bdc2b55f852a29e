"""@schedule and @trigger_on_finish on the embedded cluster, with the operator of the
working tree (`test_operator`'s fixture, one process per test in the test's namespace).

- A per-minute schedule creates a FlowRun that succeeds; `kubectl get flows` shows the
  schedule and the run; the next minute's run replaces it within the history limit of 1
  (the older FlowRun is deleted, its run stays in the store); a redeploy without
  @schedule stops it at once.
- A trigger chain: TriggerSourceFlow succeeds → TriggeredFlow starts once, its steps read
  ``current.trigger.run`` (the upstream run id and an artifact), and the client's
  ``Run(...).trigger.run`` is the upstream run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config as kube_config

import kflow.client
from kflow import api_types
from kflow.client import Run, Source
from kflow.store import store_from_env
from tests.e2e import test_operator as base
from tests.e2e.conftest import TestCluster, wait_for

pytestmark = pytest.mark.e2e

FLOWS = Path(__file__).resolve().parent / "flows"
operator = base.operator     # the fixture: one operator process per test
SCHEDULE_TIMEOUT = 150.0     # the next minute, then a two-step run


def flow_cli(env: dict[str, str], path: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, str(path), *args], env={**env, "KFLOW_USER": "alice"},
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done.stdout


def get_json(cluster: TestCluster, *args: str) -> dict[str, Any]:
    done = cluster.kubectl("get", *args, "-o", "json")
    assert done.returncode == 0, done.stderr
    body: dict[str, Any] = json.loads(done.stdout)
    return body


def runs(cluster: TestCluster, namespace: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in get_json(cluster, "fr", "-n", namespace)["items"]}


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def client_source(cluster: TestCluster, s3_credentials: Path, namespace: str
                  ) -> Iterator[None]:
    store = store_from_env({"KFLOW_S3_CREDENTIALS": str(s3_credentials)})
    api = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig))
    kflow.client.set_source(Source(store, namespace, api))
    try:
        yield
    finally:
        kflow.client.set_source(None)


def test_a_per_minute_schedule_runs_and_a_redeploy_without_it_stops_it(
        cluster: TestCluster, namespace: str, operator: base.Operator,
        client_source: None, tmp_path: Path) -> None:
    flow_cli(operator.env, FLOWS / "scheduled_flow.py", "deploy")
    flow = get_json(cluster, "flow", "scheduled-flow", "-n", namespace)
    assert flow["spec"]["schedule"] == {
        "cron": "* * * * *", "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 50,
        "successfulRunsHistoryLimit": 1}

    def scheduled_run() -> dict[str, Any] | None:
        if operator.process.poll() is not None:
            pytest.fail(f"the operator died:\n{operator.log_tail()}")
        found = [r for r in runs(cluster, namespace).values()
                 if r["metadata"]["labels"].get("kflow.dev/started-by") == "schedule"]
        done = [r for r in found if (r.get("status") or {}).get("phase") in (
            "Succeeded", "Failed", "Stopped")]
        return done[0] if done else None

    run = wait_for("a scheduled FlowRun to finish", scheduled_run, timeout=SCHEDULE_TIMEOUT,
                   interval=1.0)
    name = run["metadata"]["name"]
    assert run["status"]["phase"] == "Succeeded", run["status"]
    scheduled_at = run["metadata"]["annotations"]["kflow.dev/scheduled-at"]
    assert name == f"scheduled-flow-{int(parse(scheduled_at).timestamp()) // 60}"
    assert parse(scheduled_at).second == 0

    def status_names_it() -> dict[str, Any] | None:
        status = get_json(cluster, "flow", "scheduled-flow", "-n", namespace)["status"]
        return status if status.get("lastScheduleTime") and status.get("lastRun") else None

    status = wait_for("the Flow's status to name a scheduled run", status_names_it)
    assert status["schedule"] == "* * * * *"
    assert parse(status["nextScheduleTime"]) > parse(status["lastScheduleTime"])
    table = cluster.kubectl("get", "flows", "-n", namespace)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()[:2]
    assert "SCHEDULE" in header and "LAST SCHEDULE" in header and "LAST RUN" in header
    assert "* * * * *" in row and status["lastRun"]["name"] in row

    # The next minute's run; then the history limit (1 Succeeded) deletes the first.
    def second_run() -> dict[str, Any] | None:
        found = scheduled_run()
        return found if found is not None and found["metadata"]["name"] != name else None

    second = wait_for("the next scheduled FlowRun to finish", second_run,
                      timeout=SCHEDULE_TIMEOUT, interval=1.0)
    assert second["status"]["phase"] == "Succeeded", second["status"]
    wait_for(f"FlowRun {name} deleted by the history limit",
             lambda: name not in runs(cluster, namespace), timeout=60, interval=1.0)
    kept = Run(f"ScheduledFlow/{api_types.run_id(run)}")
    assert kept.successful                              # the run stays in the store

    # Redeploy without @schedule (a copy of the file minus the decorator).
    copy = tmp_path / "scheduled_flow.py"
    source = (FLOWS / "scheduled_flow.py").read_text()
    copy.write_text(re.sub(r"@schedule\([^)]*\)\n", "", source))
    flow_cli(operator.env, copy, "deploy")

    def unscheduled() -> dict[str, Any] | None:
        flow = get_json(cluster, "flow", "scheduled-flow", "-n", namespace)
        status = flow.get("status") or {}
        done = (status.get("observedGeneration") == flow["metadata"]["generation"]
                and "nextScheduleTime" not in status and "schedule" not in status)
        return flow if done else None

    flow = wait_for("the Flow's status to drop the schedule", unscheduled)
    assert "schedule" not in flow["spec"]
    before = {n for n, r in runs(cluster, namespace).items()
              if r["metadata"]["labels"].get("kflow.dev/started-by") == "schedule"}
    # Wait past the next minute the old schedule would have used, then look again.
    boundary = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1,
                                                                              seconds=20)
    wait_for("the next minute to pass", lambda: datetime.now(UTC) > boundary, timeout=90,
             interval=1.0)
    after = {n for n, r in runs(cluster, namespace).items()
             if r["metadata"]["labels"].get("kflow.dev/started-by") == "schedule"}
    assert after <= before, f"new scheduled runs after the schedule was removed: {after}"


def test_a_succeeded_run_triggers_the_downstream_flow_once(
        cluster: TestCluster, namespace: str, operator: base.Operator,
        client_source: None, s3_credentials: Path) -> None:
    flow_cli(operator.env, FLOWS / "triggered_flow.py", "deploy")
    out = flow_cli(operator.env, FLOWS / "trigger_source_flow.py", "run", "--value", "hello")
    assert " Succeeded in " in out
    [upstream] = [r for r in runs(cluster, namespace).values()
                  if r["spec"]["flowRef"]["name"] == "trigger-source-flow"]
    upstream_id = api_types.run_id(upstream)
    downstream_name = f"triggered-flow-{upstream_id}"

    def downstream_done() -> dict[str, Any] | None:
        if operator.process.poll() is not None:
            pytest.fail(f"the operator died:\n{operator.log_tail()}")
        found = runs(cluster, namespace).get(downstream_name)
        phase = ((found or {}).get("status") or {}).get("phase")
        return found if phase in ("Succeeded", "Failed", "Stopped") else None

    downstream = wait_for(f"FlowRun {downstream_name} to finish", downstream_done,
                          timeout=base.RUN_TIMEOUT, interval=0.5)
    assert downstream["status"]["phase"] == "Succeeded", downstream["status"]
    assert downstream["spec"]["trigger"] == {"flow": "TriggerSourceFlow",
                                             "run": upstream["metadata"]["name"],
                                             "runId": upstream_id}
    marked = get_json(cluster, "fr", upstream["metadata"]["name"], "-n", namespace)
    assert marked["metadata"]["annotations"]["kflow.dev/triggered"] == downstream_name
    triggered = [r for r in runs(cluster, namespace).values()
                 if r["spec"]["flowRef"]["name"] == "triggered-flow"]
    assert [r["metadata"]["name"] for r in triggered] == [downstream_name]

    # What the steps read through current.trigger, and the client's Run.trigger.
    data = base.end_artifacts(s3_credentials, downstream, "TriggeredFlow")
    assert data["trigger_run_id"] == upstream_id
    assert data["end_trigger_run_id"] == upstream_id
    assert data["trigger_message"] == "hello!"
    assert data["trigger_event"] == "kflow.TriggerSourceFlow.end"
    run = Run(f"TriggeredFlow/{api_types.run_id(downstream)}")
    assert run.trigger is not None
    assert run.trigger.run.id == upstream_id
    assert run.trigger.run.data is not None and run.trigger.run.data.message == "hello!"
    assert Run(f"TriggerSourceFlow/{upstream_id}").trigger is None

    # A restarted operator reconciles the upstream run again: nothing new starts.
    operator.kill()
    operator.restart()
    wait_for("the restarted operator to reconcile both runs", lambda: operator.scrape().get(
        'kflow_flowruns{phase="Succeeded"}', 0) >= 2, timeout=60, interval=0.5)
    again = [r for r in runs(cluster, namespace).values()
             if r["spec"]["flowRef"]["name"] == "triggered-flow"]
    assert [r["metadata"]["name"] for r in again] == [downstream_name]

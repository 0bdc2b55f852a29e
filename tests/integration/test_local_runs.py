"""`python flow.py run --local` / `resume --local`: real local runs, read back.

Each test runs a flow file as a user does (a subprocess, the real runner processes,
a real store directory in tmp_path via KFLOW_STORE_DIR) and reads the result with
the client API (`Source.local`) and the store. No cluster, no S3 server, no mocks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from kflow.client import Flow, Run, Source, set_source
from kflow.store import Datastore, LocalObjectStore, TaskKey

ROOT = Path(__file__).resolve().parents[2]
FLOWS = Path(__file__).resolve().parent / "local_flows"
LINEAR = ROOT / "tests" / "fixtures" / "flows" / "linear.py"


def run_flow(store: Path, flow: Path, *args: str, env: dict[str, str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KFLOW_")}
    environ.update(KFLOW_STORE_DIR=str(store), **(env or {}))
    return subprocess.run([sys.executable, str(flow), *args], cwd=store.parent, env=environ,
                          capture_output=True, text=True, timeout=timeout)


def run_id_of(output: str) -> str:
    head = next(line for line in output.splitlines() if line.startswith("Local run "))
    return head.split()[2].split("/", 1)[1]


def record(store: Path, flow: str, run_id: str) -> dict[str, object]:
    doc = json.loads((store / "local" / "local" / flow / f"{run_id}.json").read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "store"
    yield folder
    set_source(None)


def read(store: Path) -> None:
    set_source(Source.local(store))


def test_linear_flow_runs_and_reads_back(store: Path) -> None:
    done = run_flow(store, LINEAR, "run", "--local")
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = run_id_of(done.stdout)
    out = done.stdout
    for line in ("start  Succeeded  1/1", "a      Succeeded  1/1", "end    Succeeded  1/1",
                 "[end/0] [2, 4, 6]", f"Run LinearFlow/{run_id} Succeeded"):
        assert line in out, out
    assert record(store, "LinearFlow", run_id)["status"]["phase"] == "Succeeded"  # type: ignore[index]
    read(store)
    run = Flow("LinearFlow").latest_successful_run
    assert run is not None and run.id == run_id
    assert run.successful and run.data is not None and run.data.data == [2, 4, 6]
    assert sorted(s.id for s in run.steps()) == ["a", "end", "start"]
    assert run.code is not None and "linear.py" in run.code.files


def test_foreach_runs_in_parallel_up_to_max_workers(store: Path) -> None:
    done = run_flow(store, FLOWS / "fanout_flow.py", "run", "--local", "--max-workers", "2",
                    "--width", "6", "--nap", "0.4")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "at most 2 tasks at once" in done.stdout
    read(store)
    run = Run(f"FanoutFlow/{run_id_of(done.stdout)}")
    spans: list[tuple[float, float]] = run["join"].task.data.spans  # type: ignore[assignment]
    assert len(spans) == 6
    events = sorted([(begin, 1) for begin, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    assert most == 2, spans       # parallel, and never more than --max-workers
    assert len(list(run["body"].tasks())) == 6


def test_parameters_and_tags(store: Path) -> None:
    done = run_flow(store, FLOWS / "params_flow.py", "run", "--local", "--alpha", "0.5",
                    "--label", "x", "--tag", "exp1")
    assert done.returncode == 0, done.stdout + done.stderr
    read(store)
    run = Run(f"ParamsFlow/{run_id_of(done.stdout)}")
    assert run.data is not None and run.data.summary == "x:1.0"
    assert run["start"].task.data.seen_alpha == 0.5
    assert run.parameters == {"alpha": 0.5, "label": "x"}
    assert "exp1" in run.tags
    assert [r.id for r in Flow("ParamsFlow").runs("exp1")] == [run.id]


def test_bad_parameter_value_says_what_and_runs_nothing(store: Path) -> None:
    done = run_flow(store, FLOWS / "params_flow.py", "run", "--local", "--alpha", "lots")
    assert done.returncode == 1
    assert "alpha" in done.stderr and "lots" in done.stderr
    assert not (store / "runs").exists()


def test_failed_step_then_resume_keeps_what_succeeded(store: Path) -> None:
    failed = run_flow(store, FLOWS / "flaky_flow.py", "run", "--local", "--size", "4",
                      "--tag", "t", env={"LOCAL_TEST_FAIL": "1"})
    assert failed.returncode == 1, failed.stdout + failed.stderr
    origin = run_id_of(failed.stdout)
    assert "middle  Failed" in failed.stdout
    assert "RuntimeError: middle failed on purpose" in failed.stdout
    assert f"resume --local {origin}" in failed.stdout

    resumed = run_flow(store, FLOWS / "flaky_flow.py", "resume", "--local")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    new = run_id_of(resumed.stdout)
    assert new != origin and f"resuming FlakyFlow/{origin}: 1 task(s)" in resumed.stdout

    # the store shows start cloned, not run again; middle and end ran in the new run
    objects = Datastore(LocalObjectStore(store))
    start = objects.read_meta(TaskKey("local", "FlakyFlow", new, "start").attempt(0))
    assert start.extra.get("cloned_from") == f"FlakyFlow/{origin}/start/0/0"
    middle = objects.read_meta(TaskKey("local", "FlakyFlow", new, "middle").attempt(0))
    assert "cloned_from" not in middle.extra and middle.exit_status == 0
    read(store)
    run = Run(f"FlakyFlow/{new}")
    assert run.successful and run.data is not None and run.data.total == 6
    assert run["start"].task.data.start_pid == Run(
        f"FlakyFlow/{origin}")["start"].task.data.start_pid
    assert run.origin_run_id == origin and "t" in run.tags
    assert run.parameters == {"size": 4}
    assert record(store, "FlakyFlow", origin)["status"]["phase"] == "Failed"  # type: ignore[index]
    assert Run(f"FlakyFlow/{origin}").status == "Failed"       # from its run record
    assert run.status == "Succeeded"

    again = run_flow(store, FLOWS / "flaky_flow.py", "resume", "--local", new)
    assert again.returncode == 1
    assert "succeeded, so nothing failed to re-run; pass --step" in again.stderr
    from_middle = run_flow(store, FLOWS / "flaky_flow.py", "resume", "--local", new,
                           "--step", "middle")
    assert from_middle.returncode == 0, from_middle.stdout + from_middle.stderr


def test_retry_catch_and_timeout_behave_as_on_the_cluster(store: Path) -> None:
    done = run_flow(store, FLOWS / "decorated_flow.py", "run", "--local")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Retrying" in done.stdout
    read(store)
    run = Run(f"DecoratedFlow/{run_id_of(done.stdout)}")
    flaky = run["flaky"].task
    assert flaky.data.attempts == 3
    assert "KeyError" in repr(run["caught"].task.data.problem)
    assert "timed out" in str(run["slow"].task.data.timed_out)
    objects = Datastore(LocalObjectStore(store))
    key = TaskKey("local", "DecoratedFlow", run.id, "flaky")
    first, second = (objects.read_meta(key.attempt(n)) for n in (0, 1))
    assert first.finished_at is not None
    assert second.started_at - first.finished_at >= 0.55     # minutes_between_retries=0.01


def test_ctrl_c_stops_the_tasks_and_leaves_no_process(store: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KFLOW_")}
    environ["KFLOW_STORE_DIR"] = str(store)
    proc = subprocess.Popen([sys.executable, str(FLOWS / "fanout_flow.py"), "run", "--local",
                             "--width", "4", "--nap", "60"], cwd=store.parent, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "(4 running" in line:
            break
    run_id = run_id_of("".join(lines))
    time.sleep(0.5)
    runners = [p for p in psutil.process_iter(["cmdline"])
               if run_id in " ".join(p.info["cmdline"] or [])]
    assert len(runners) == 4
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, rest + err
    assert "Interrupted: stopping the run's tasks" in rest
    assert f"Run FanoutFlow/{run_id} Stopped" in rest
    assert not [p for p in runners if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert record(store, "FanoutFlow", run_id)["status"]["phase"] == "Stopped"  # type: ignore[index]
    read(store)
    assert Run(f"FanoutFlow/{run_id}").status == "Stopped"

"""A tiny test driver: runs a flow task by task through ``python -m kflow.runner``.

It plays the operator's part without Kubernetes: builds and uploads the
code package, starts each task as a subprocess with the store's
environment, reads the termination message to learn where the flow goes
(next steps, foreach split counts), and starts joins once all their inputs
have finished. Ready tasks run in parallel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kflow.graph import build_graph
from kflow.packaging import build_package
from kflow.runner.inputs import foreach_depth, format_task_path, parse_task_path
from kflow.store import AttemptKey, Datastore, TaskKey, store_from_env
from tests.fixtures.flows import load_flow_file

TASK_TIMEOUT_S = 60


@dataclass(frozen=True)
class TaskRun:
    """One runner process: its exit code, termination message and console output."""

    step: str
    task: str
    attempt: int
    code: int
    result: dict[str, Any] | None
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (f"{self.step}/{self.task} attempt {self.attempt}: exit {self.code}\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}")


class Driver:
    """Runs the flow of `flow_file` in run `run_id` against the store `env` configures."""

    def __init__(self, flow_file: Path, env: Mapping[str, str], work: Path, run_id: str,
                 *, namespace: str = "default", code_dir: bool = False) -> None:
        self.flow_file = flow_file
        self.flow_cls = load_flow_file(flow_file)
        self.graph = build_graph(self.flow_cls)
        self.env = {**os.environ, **env, "KFLOW_CODE_CACHE": str(work / "code-cache")}
        self.env.pop("KFLOW_TERMINATION_MESSAGE_PATH", None)
        self.work = work
        self.run_id = run_id
        self.namespace = namespace
        self.store: Datastore = store_from_env(env)
        self.package = build_package(flow_file)
        self.code_dir = code_dir
        if not code_dir:
            self.store.put_code_package(self.package.sha256, self.package.data)
        self._lock = threading.Lock()

    @property
    def flow(self) -> str:
        return self.graph.name

    def argv(self, step: str, task: str = "0", attempt: int = 0,
             extra: Sequence[str] = ()) -> list[str]:
        code = (["--code-dir", str(self.flow_file.parent)] if self.code_dir else [])
        return [sys.executable, "-m", "kflow.runner", "--flow-file", self.package.flow_file,
                "--code-sha256", self.package.sha256, *code, "--namespace", self.namespace,
                "--flow", self.flow, "--run-id", self.run_id, "--step", step, "--task", task,
                "--attempt", str(attempt), *extra]

    def run(self, step: str, task: str = "0", attempt: int = 0, extra: Sequence[str] = (),
            env: Mapping[str, str] | None = None, argv: Sequence[str] | None = None) -> TaskRun:
        """Run one task; its exit code, result and console output."""
        term = self.work / "term" / f"{self.run_id}-{step}-{task}-{attempt}.json"
        term.parent.mkdir(parents=True, exist_ok=True)
        term.unlink(missing_ok=True)
        proc = subprocess.run(
            list(argv) if argv is not None else self.argv(step, task, attempt, extra),
            env={**self.env, **(env or {}), "KFLOW_TERMINATION_MESSAGE_PATH": str(term)},
            capture_output=True, text=True, timeout=TASK_TIMEOUT_S, cwd=self.work,
        )
        result = json.loads(term.read_text()) if term.exists() else None
        return TaskRun(step, task, attempt, proc.returncode, result, proc.stdout, proc.stderr)

    def run_flow(self, start_args: Sequence[str] = (), workers: int = 8
                 ) -> dict[tuple[str, str], TaskRun]:
        """Walk the graph from start to end; every task's run, by (step, task)."""
        runs: dict[tuple[str, str], TaskRun] = {}
        arrivals: dict[tuple[str, tuple[int, ...]], int] = {}
        splits: dict[tuple[str, tuple[int, ...]], int] = {}
        with ThreadPoolExecutor(workers) as pool:
            pending: set[Future[TaskRun]] = {pool.submit(self.run, "start", "0", 0, start_args)}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    run = future.result()
                    runs[(run.step, run.task)] = run
                    if run.code != 0 or run.result is None or not run.result["ok"]:
                        raise AssertionError(f"task failed: {run}")
                    for step, path in self._next_tasks(run, arrivals, splits):
                        pending.add(pool.submit(self.run, step, format_task_path(path)))
        return runs

    def _next_tasks(self, run: TaskRun, arrivals: dict[tuple[str, tuple[int, ...]], int],
                    splits: dict[tuple[str, tuple[int, ...]], int]
                    ) -> list[tuple[str, tuple[int, ...]]]:
        assert run.result is not None
        path = parse_task_path(run.task, foreach_depth(self.graph, run.step))
        foreach = run.result["foreach"]
        ready: list[tuple[str, tuple[int, ...]]] = []
        for step in run.result["next"]:
            node = self.graph[step]
            if foreach is not None:
                splits[(run.step, path)] = foreach["splits"]
                ready.extend((step, (*path, i)) for i in range(foreach["splits"]))
            elif node.type == "join":
                split = self.graph[node.split_parents[-1]]
                if split.type == "split-foreach":
                    key, expected = (step, path[:-1]), splits[(split.name, path[:-1])]
                else:
                    key, expected = (step, path), len(split.out)
                arrivals[key] = arrivals.get(key, 0) + 1
                if arrivals[key] == expected:
                    ready.append(key)
            else:
                ready.append((step, path))
        return ready

    # -- reading what a task stored ------------------------------------------------------

    def key(self, step: str, task: str = "0", attempt: int = 0) -> AttemptKey:
        return TaskKey(self.namespace, self.flow, self.run_id, step, task).attempt(attempt)

    def artifacts(self, step: str, task: str = "0", attempt: int = 0) -> dict[str, Any]:
        """Every artifact value of a task attempt."""
        index = self.store.read_index(self.key(step, task, attempt))
        return self.store.load_many(index)

    def log(self, step: str, task: str = "0", attempt: int = 0, stream: str = "stdout") -> str:
        return self.store.read_log(self.key(step, task, attempt), stream).decode()

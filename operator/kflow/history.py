"""Runs' history as text: `kflow runs`, `kflow describe`, `kflow logs` and `python flow.py
logs`, read through the client API (so they work once the FlowRun and its pods are gone).

Owns: the runs table, the describe text and the logs output. Building the text is pure
(`runs_table`, `describe_text` take `RunRow` / `RunDetails`); `runs_rows`, `details` and
`task_logs` gather them from the client API.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice

from kflow.client import Flow, KflowNotFound, Run, Step, Task, get_source
from kflow.planning.run import parse_time
from kflow.planning.status import format_duration

__all__ = ["RunDetails", "RunRow", "StepRow", "describe_text", "details", "find_run",
           "runs_rows", "runs_table", "task_logs"]


@dataclass(frozen=True)
class RunRow:
    """One line of `kflow runs`."""

    name: str                    # the FlowRun's name, else the run id
    flow: str
    status: str
    started: datetime
    duration_s: float | None
    user: str | None
    tags: tuple[str, ...]


@dataclass(frozen=True)
class StepRow:
    name: str
    tasks: int
    succeeded: int
    failed: int
    running: int
    started: datetime | None
    finished: datetime | None


@dataclass(frozen=True)
class RunDetails:
    """What `kflow describe` prints."""

    row: RunRow
    run_id: str
    flowrun: str | None
    finished: datetime | None
    code_sha256: str | None
    parameters: dict[str, object]
    origin_run_id: str | None
    message: str | None
    steps: list[StepRow] = field(default_factory=list)
    failures: list[tuple[str, int, str]] = field(default_factory=list)  # pathspec, attempt, text


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _duration(seconds: float | None) -> str:
    return format_duration(seconds) if seconds is not None else "-"


def runs_table(rows: Sequence[RunRow]) -> str:
    """The `kflow runs` table (a header and one line per run, newest first)."""
    header = ("RUN", "FLOW", "STATUS", "STARTED", "DURATION", "USER", "TAGS")
    lines = [header] + [(r.name, r.flow, r.status, _when(r.started), _duration(r.duration_s),
                         r.user or "-", ",".join(r.tags) or "-") for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(line, widths, strict=False)),
                                line[-1]]).rstrip() for line in lines)


def describe_text(d: RunDetails) -> str:
    """The `kflow describe` text: the run, its steps, its failures, where to look next."""
    r = d.row
    flowrun = f"  (FlowRun {d.flowrun})" if d.flowrun else "  (FlowRun deleted: from the store)"
    out = [
        f"Run:         {r.flow}/{d.run_id}{flowrun}",
        f"Status:      {r.status}" + (f": {d.message}" if d.message else ""),
        f"User:        {r.user or '-'}",
        f"Started:     {_when(r.started)}",
        f"Finished:    {_when(d.finished)}   duration {_duration(r.duration_s)}",
        f"Code:        {d.code_sha256 or '-'}",
        "Parameters:  " + (", ".join(f"{k}={v!r}" for k, v in sorted(d.parameters.items()))
                           or "-"),
        f"Tags:        {', '.join(r.tags) or '-'}",
    ]
    if d.origin_run_id:
        out.append(f"Resumed from: {d.origin_run_id}")
    if d.steps:
        out.append("Steps:")
        table = [("STEP", "TASKS", "OK", "FAILED", "RUNNING", "STARTED", "FINISHED")] + [
            (s.name, str(s.tasks), str(s.succeeded), str(s.failed), str(s.running),
             _when(s.started), _when(s.finished)) for s in d.steps]
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
        out += ["  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                for line in table]
    for pathspec, attempt, text in d.failures:
        out.append(f"Failed: {pathspec} (attempt {attempt}): {text}")
        out.append(f"  logs: kflow logs {pathspec}")
    if d.flowrun:
        out.append(f"Cluster view: kubectl describe fr {d.flowrun}")
    return "\n".join(out)


def _row(run: Run) -> RunRow:
    status = run.flowrun_status
    duration: float | None = None
    started = parse_time(status.get("startedAt")) if status else None
    if started is not None:
        ended = parse_time(status.get("finishedAt")) or datetime.now(UTC)
        duration = (ended - started).total_seconds()
    elif run.finished_at is not None:
        duration = (run.finished_at - run.created_at).total_seconds()
    return RunRow(name=run.flowrun or run.id, flow=run.flow_name, status=run.status,
                  started=run.created_at, duration_s=duration, user=run.user,
                  tags=tuple(sorted(run.user_tags)))


def runs_rows(flow: str | None = None, limit: int = 20) -> list[RunRow]:
    """The newest `limit` runs of `flow` (every flow in the namespace when None)."""
    flows = [flow] if flow else get_source().flows()
    runs: list[Run] = []
    for name in flows:
        try:
            runs += list(islice(Flow(name), limit))
        except KflowNotFound:
            if flow:
                raise
    runs.sort(key=lambda r: r.created_at, reverse=True)
    return [_row(r) for r in runs[:limit]]


def find_run(ident: str) -> Run:
    """The run a user named: ``Flow/run_id``, a run id or a FlowRun name."""
    info = get_source().find(ident)
    if info is None:
        raise KflowNotFound(f"no run {ident!r} in namespace {get_source().namespace}: give a "
                            f"FlowRun name, a run id or Flow/run_id (kflow runs lists them)")
    return Run._from_info(info)


def _step_row(step: Step, live: dict[str, object] | None) -> tuple[StepRow, list[Task]]:
    """A step's row, and its tasks whose latest attempt failed."""
    tasks = list(step.tasks())
    done = [t for t in tasks if t.finished]
    failed = [t for t in done if not t.successful]
    counts = (live or {}).get("tasks")
    running = int(counts.get("running", 0)) if isinstance(counts, dict) else 0
    ends = [t.finished_at for t in done]
    finished = max(e for e in ends if e) if ends and len(done) == len(tasks) else None
    row = StepRow(name=step.id, tasks=len(tasks), succeeded=len(done) - len(failed),
                  failed=len(failed), running=running,
                  started=tasks[0].created_at if tasks else None, finished=finished)
    return row, failed


def _failure_text(task: Task) -> str:
    exc = task.exception
    return (f"{exc.type}: {exc.exception}" if exc is not None
            else f"exit status {task.metadata.exit_status}")


def details(run: Run) -> RunDetails:
    """Everything `describe_text` shows, read through the client API."""
    status = run.flowrun_status
    live_steps = {str(s.get("name")): s for s in status.get("steps") or []}
    steps = list(reversed(list(run.steps())))               # oldest first
    read = get_source()._parallel(lambda step: _step_row(step, live_steps.get(step.id)), steps)
    rows = [row for row, _ in read]
    failures = [(task.pathspec, task.current_attempt, _failure_text(task))
                for _, failed in read for task in failed]
    message = status.get("message") if status.get("phase") != "Succeeded" else None
    return RunDetails(row=_row(run), run_id=run.id, flowrun=run.flowrun,
                      finished=run.finished_at, code_sha256=run.code.sha256 if run.code else None,
                      parameters=run.parameters, origin_run_id=run.origin_run_id,
                      message=str(message) if message else None, steps=rows,
                      failures=failures)


def task_logs(ident: str, stream: str = "stdout", attempt: int | None = None) -> str:
    """The log of ``RUN/STEP[/TASK]`` (RUN as `find_run` takes it; every task of the
    step, each under a header, when TASK is left out)."""
    head, _, rest = ident.rpartition("/")
    parts = ident.split("/")
    if len(parts) >= 3 and parts[-1].replace(".", "").isdigit():
        run_part, step, task_ids = "/".join(parts[:-2]), parts[-2], [parts[-1]]
    elif head:
        run_part, step, task_ids = head, rest, []
    else:
        raise KflowNotFound(f"{ident!r}: name a step, RUN/STEP or RUN/STEP/TASK "
                            f"(RUN: a FlowRun name, a run id or Flow/run_id)")
    run = find_run(run_part)
    if step not in run:
        raise KflowNotFound(f"run {run.pathspec} has no step {step!r} (yet); its steps: "
                            f"{', '.join(s.id for s in run.steps()) or 'none'}")
    tasks: Iterable[Task] = ([Task(f"{run.pathspec}/{step}/{t}", attempt) for t in task_ids]
                             or run[step].tasks())
    chunks = []
    tasks = list(tasks)
    for task in tasks:
        text = task.stdout if stream == "stdout" else task.stderr
        if len(tasks) > 1:
            chunks.append(f"==> {task.pathspec} (attempt {task.current_attempt}) <==\n")
        chunks.append(text if not text or text.endswith("\n") else text + "\n")
    return "".join(chunks)

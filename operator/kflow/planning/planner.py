"""`plan()`: from (flow, run, observed attempts, now) to actions and the new status (pure).

Owns: which tasks exist (activation from finished parents and their results:
foreach split counts, switch choices), when a join is ready, the run's phase
(fail-fast, stop, in-place resume), the order and cap of new starts, the
status and the events derived from old status vs new status.

Decisions (see also `kflow.planning.tasks` for attempts and budgets):

* Event-driven: every task whose parents are done starts in the same plan
  (up to `spec.maxParallelism` pending+running attempts, in topological step
  order, then foreach index order).
* Fail-fast (Metaflow's behaviour): when a task fails for good the run is
  Failed at once, nothing new starts and every pending/running attempt gets a
  StopTask (repeated on each reconcile until its pod is being deleted).
* Stop: StopTask for every active attempt; Stopped when none is left.
* Terminal phases are sticky: a Succeeded/Failed/Stopped run keeps its phase,
  failure and finishedAt; only an in-place resume reopens a Failed run.
* Resume in place: acted on when the run is Failed and `spec.resume.attempt`
  > `status.resumeAttempt`; the new generation's attempts start at
  ``attempt * 100``. `Progressing` has reason `Resuming` until an attempt of
  the new generation is observed; a bump seen while a resume is in that state
  is recorded only afterwards. A bump on a Pending/Running/Succeeded run is
  recorded and does nothing.
* Resume as a new run (``spec.resumeFrom``): the origin's succeeded tasks (`plan`'s
  `origin`) are kept like an earlier generation's (counted as ``cloned``); the
  origin's failed steps, or ``resumeFrom.step``, and everything downstream of what
  runs again, run in this run from attempt 0.
* TTL: a run finished for `spec.ttlSecondsAfterFinished` seconds gets
  `Plan.delete_run`; until then the plan asks to be woken when it expires.
* Every StartTask says since when its task could run (`StartTask.ready_at`): the
  latest finish of its parents of this generation (the runner's ms clock when the
  termination message has it), for a retry its previous attempt's finish or back-off
  end; the status summarises the measured delays (`kflow.planning.overhead`).

Must not import: kopf, kubernetes, minio, kflow.store, kflow.runner.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from kflow.api_types import (
    TERMINAL_PHASES,
    ConditionStatus,
    ConditionType,
    FailureReason,
    RunPhase,
    StepPhase,
    StepType,
)
from kflow.planning.flow import FlowModel, StepModel
from kflow.planning.model import (
    ORIGIN_ATTEMPT,
    Action,
    Event,
    ObservedAttempt,
    Plan,
    StartTask,
    StopTask,
    TaskId,
)
from kflow.planning.overhead import run_overhead, step_overhead
from kflow.planning.run import (
    ATTEMPTS_PER_RESUME,
    PlannerConfig,
    RunModel,
    format_time,
    parse_time,
)
from kflow.planning.status import (
    MAX_RUN_MESSAGE,
    MAX_STEP_MESSAGE,
    MAX_STEP_REASON,
    clip,
    condition,
    format_duration,
    format_indexes,
)
from kflow.planning.tasks import TaskView, evaluate_task

__all__ = ["plan"]

Path = tuple[int, ...]


def _path_text(path: Path) -> str:
    return ".".join(str(i) for i in path) if path else "0"


def _path_of(task: TaskId, depth: int) -> Path:
    return () if depth == 0 else task.indexes


@dataclass
class _Graph:
    """The tasks of the current generation, found by walking the graph."""

    views: dict[TaskId, TaskView] = field(default_factory=dict)
    by_step: dict[str, list[TaskView]] = field(default_factory=lambda: defaultdict(list))
    errors: list[tuple[TaskId, str]] = field(default_factory=list)


def _walk(flow: FlowModel, attempts: Mapping[TaskId, list[ObservedAttempt]], *, base: int,
          history: bool, rerun_step: str | None, config: PlannerConfig,
          now: datetime) -> _Graph:
    """Evaluate every activated task, in topological order. `history`: there are results
    of an earlier generation (an in-place resume, or a ``resumeFrom`` origin) to keep."""
    out = _Graph()
    # step → path → "must run again" (a parent ran in this generation)
    candidates: dict[str, dict[Path, bool]] = defaultdict(dict)
    candidates[flow.start][()] = False
    # (step, path) → when its latest parent of this generation finished (its ready_at)
    parents_done: dict[tuple[str, Path], datetime] = {}
    done: dict[tuple[str, Path], TaskView] = {}
    for name in flow.order:
        step = flow[name]
        for path in sorted(candidates.get(name, {})):
            rerun = candidates[name][path]
            if step.closes is not None:
                inputs = _join_inputs(flow, step, path, done)
                if inputs is None:
                    continue
                rerun = any(v.fresh for v in inputs)
            task = TaskId(name, _path_text(path))
            view = evaluate_task(step, task, attempts.get(task, ()), base=base,
                                 rerun=history and (rerun or name == rerun_step),
                                 config=config, now=now,
                                 parents_done_at=parents_done.get((name, path)))
            out.views[task] = view
            out.by_step[name].append(view)
            if view.state != "succeeded":
                continue
            done[(name, path)] = view
            try:
                children = _successors(flow, step, path, view)
            except ValueError as error:
                out.errors.append((task, str(error)))
                continue
            # A kept parent (an earlier generation) finished before the resume made its
            # child runnable: it says nothing about when the child became ready.
            finished = view.latest.done_at if view.latest is not None and view.fresh else None
            for child, child_path in children:
                previous = candidates[child].get(child_path, False)
                candidates[child][child_path] = previous or (history and view.fresh)
                if finished is not None:
                    known = parents_done.get((child, child_path))
                    parents_done[(child, child_path)] = max(known or finished, finished)
    return out


def _successors(flow: FlowModel, step: StepModel, path: Path,
                view: TaskView) -> list[tuple[str, Path]]:
    result = view.result
    if step.type is StepType.SPLIT_FOREACH:
        if result is None or result.foreach_splits is None:
            raise ValueError(f"the foreach split {step.name} finished without a split count "
                             "in its termination message")
        if result.foreach_splits == 0 and step.matching_join:   # nothing to do: join at once
            return [(step.matching_join, path)]
        return [(step.next[0], (*path, i)) for i in range(result.foreach_splits)]
    if step.type is StepType.SPLIT_SWITCH:
        choice = result.switch if result is not None else None
        cases = dict(step.switch_cases)
        target = choice if choice in step.next else cases.get(choice or "")
        if target is None:
            raise ValueError(f"the switch {step.name} chose {choice!r}, which is not one of "
                             f"its cases ({', '.join(step.next)})")
        if target == step.name:
            raise ValueError(f"the switch {step.name} chose itself: recursive switches are "
                             "not supported by the planner yet")
        nexts: tuple[str, ...] = (target,)
    else:
        nexts = step.next
    children = []
    for child in nexts:
        closes = flow[child].closes
        closes_foreach = closes is not None and flow[closes].type is StepType.SPLIT_FOREACH
        children.append((child, path[:-1] if closes_foreach and path else path))
    return children


def _join_inputs(flow: FlowModel, join: StepModel, path: Path,
                 done: Mapping[tuple[str, Path], TaskView]) -> list[TaskView] | None:
    """The done input tasks of a join at `path`, or None while it is not ready."""
    assert join.closes is not None
    split = flow[join.closes]
    split_view = done.get((split.name, path))
    if split_view is None:
        return None
    inputs = [split_view]
    if split.type is StepType.SPLIT_FOREACH:
        count = split_view.result.foreach_splits if split_view.result else None
        for i in range(count or 0):
            found = [done[(s, (*path, i))] for s in join.in_steps if (s, (*path, i)) in done]
            if not found:
                return None
            inputs.extend(found)
        return inputs
    owner = flow.branch_heads.get(split.name, {})
    for head in split.next:
        found = [done[(s, path)] for s in join.in_steps
                 if owner.get(s) == head and (s, path) in done]
        if not found:
            return None
        inputs.extend(found)
    return inputs


def _base(run: RunModel, observed: Sequence[ObservedAttempt]) -> int:
    """First attempt number of the current generation (before acting on a new resume)."""
    newest = max((a.attempt // ATTEMPTS_PER_RESUME for a in observed), default=0)
    progressing = run.condition(ConditionType.PROGRESSING) or {}
    if run.phase is RunPhase.RUNNING and progressing.get("reason") == "Resuming":
        newest = max(newest, run.status_resume_attempt)
    return newest * ATTEMPTS_PER_RESUME


def plan(flow: FlowModel, run: RunModel, observed: Sequence[ObservedAttempt], now: datetime,
         config: PlannerConfig = PlannerConfig(),  # noqa: B008 (frozen, immutable)
         origin: Sequence[ObservedAttempt] = ()) -> Plan:
    """Decide what to do next for `run`; pure and deterministic (see the module docstring).

    `origin`: with ``spec.resumeFrom``, the origin run's succeeded tasks (one attempt
    each, as pinned when the run started); they are kept (cloned) like the results of an
    earlier generation, under the attempt number `ORIGIN_ATTEMPT`.
    """
    old_phase = run.phase
    attempts: dict[TaskId, list[ObservedAttempt]] = defaultdict(list)
    for attempt in origin:
        if attempt.state == "succeeded":
            attempts[attempt.task].append(replace(attempt, attempt=ORIGIN_ATTEMPT))
    for attempt in observed:
        attempts[attempt.task].append(attempt)
    base = _base(run, observed)
    resuming_marker = base > 0 and run.phase is RunPhase.RUNNING and not any(
        a.attempt >= base for a in observed)
    resume_now = (old_phase is RunPhase.FAILED and not run.stop
                  and run.resume_attempt > run.status_resume_attempt)
    resume_attempt = run.status_resume_attempt
    if resume_now:
        base = run.resume_attempt * ATTEMPTS_PER_RESUME
        resume_attempt = run.resume_attempt
        resuming_marker = True
    elif old_phase is None or (old_phase is not RunPhase.FAILED and not resuming_marker):
        resume_attempt = max(resume_attempt, run.resume_attempt)   # recorded, does nothing
    rerun_step = run.resume_step if (
        base > 0 and run.resume_step in flow and base // ATTEMPTS_PER_RESUME in (
            run.resume_attempt, run.status_resume_attempt)) else None
    if base == 0 and origin and run.resume_from_step in flow:
        rerun_step = run.resume_from_step
    graph = _walk(flow, attempts, base=base, history=base > 0 or bool(origin),
                  rerun_step=rerun_step, config=config, now=now)

    active = sorted((a for a in observed if a.state in ("pending", "running")),
                    key=lambda a: (flow[a.task.step].position if a.task.step in flow else -1,
                                   a.task.indexes, a.attempt))
    terminal_failures = sorted(
        (v for v in graph.views.values() if v.state == "failed"),
        key=lambda v: (_finished(v, now), flow[v.task.step].position, v.task.indexes))
    end_done = any(v.state == "succeeded" for v in graph.by_step.get(flow.end, ()))
    starts: list[StartTask] = []
    stops: list[StopTask] = []
    failure: dict[str, Any] | None = None
    requeue: float | None = None

    def stop_all(reason: str) -> None:
        stops.extend(StopTask(a.task, a.attempt, reason) for a in active if not a.deleted)

    if old_phase in TERMINAL_PHASES and not resume_now:
        assert old_phase is not None
        phase = old_phase
        failure = dict(run.status["failure"]) if run.status.get("failure") else None
        if phase is not RunPhase.SUCCEEDED:
            stop_all(phase.value)
    elif run.stop:
        stop_all("Stopped")
        phase = RunPhase.RUNNING if active else RunPhase.STOPPED
    elif graph.errors or terminal_failures:
        phase = RunPhase.FAILED
        failure = (_graph_failure(run, *graph.errors[0]) if graph.errors
                   else _failure(run, terminal_failures[0]))
        stop_all("RunFailed")
    elif end_done:
        phase = RunPhase.SUCCEEDED
    else:
        cap = run.max_parallelism or config.default_max_parallelism
        free = max(cap - len(active), 0)
        waiting = sorted((v for v in graph.views.values() if v.state == "waiting"),
                         key=lambda v: (flow[v.task.step].position, v.task.indexes))
        for view in waiting:
            assert view.next_attempt is not None
            if view.due is not None:
                wait = (view.due - now).total_seconds()
                requeue = wait if requeue is None else min(requeue, wait)
            elif len(starts) < free:
                starts.append(StartTask(view.task, view.next_attempt, view.last_user_attempt,
                                        ready_at=view.ready_at))
        for view in graph.views.values():
            if view.pending_deadline is not None:
                wait = (view.pending_deadline - now).total_seconds()
                requeue = wait if requeue is None else min(requeue, wait)
        started = bool(starts) or any(a.state != "pending" for a in observed)
        phase = RunPhase.RUNNING if started and observed else RunPhase.PENDING
        if resume_now or resuming_marker:
            phase = RunPhase.RUNNING

    status = _status(flow, run, observed, graph, now, phase=phase, failure=failure,
                     starts=starts, resume_attempt=resume_attempt,
                     resuming=resuming_marker and phase is RunPhase.RUNNING, base=base,
                     reopened=resume_now)
    events = _events(flow, run, graph, status, starts, resume_now)
    actions: list[Action] = [*stops, *starts, *events]
    expires = run.expires_at(status)
    if expires is not None and expires > now:
        wait = (expires - now).total_seconds()
        requeue = wait if requeue is None else min(requeue, wait)
    return Plan(actions=tuple(actions), status=status, requeue_after=requeue,
                delete_run=expires is not None and expires <= now)


def _finished(view: TaskView, now: datetime) -> datetime:
    latest = view.latest
    if latest is None:
        return now
    return latest.finished_at or latest.started_at or latest.created_at or now


def _logs_hint(run: RunModel, step: str, task: str) -> str:
    return (f"Logs: kubectl logs -n {run.namespace} -l kflow.dev/run={run.name},"
            f"kflow.dev/step={step},kflow.dev/task={task}")


def _failure(run: RunModel, view: TaskView) -> dict[str, Any]:
    attempt = view.latest.attempt if view.latest is not None else 0
    reason = view.reason or FailureReason.INTERNAL
    what = view.message or f"the task failed ({reason.value})"
    message = (f"step {view.task.step} task {view.task.task} attempt {attempt} failed: "
               f"{reason.value}: {what}")
    message = f"{clip(message, 3000)}. {_logs_hint(run, view.task.step, view.task.task)}"
    return {"step": view.task.step, "task": view.task.task, "attempt": attempt,
            "reason": reason.value, "message": clip(message, 4096)}


def _graph_failure(run: RunModel, task: TaskId, text: str) -> dict[str, Any]:
    message = f"step {task.step} task {task.task}: {text}. {_logs_hint(run, task.step, task.task)}"
    return {"step": task.step, "task": task.task, "attempt": 0,
            "reason": FailureReason.INTERNAL.value, "message": clip(message, 4096)}


def _step_phase(step: StepModel, views: Sequence[TaskView], phases: Mapping[str, StepPhase],
                run_phase: RunPhase, reachable: bool) -> StepPhase:
    if any(v.state == "failed" for v in views) and run_phase is RunPhase.FAILED:
        return StepPhase.FAILED
    if any(v.state in ("waiting", "pending", "running", "failed") for v in views):
        if run_phase in (RunPhase.FAILED, RunPhase.STOPPED):
            return StepPhase.STOPPED
        return StepPhase.RUNNING
    if views:
        parents_done = all(phases.get(s) in (StepPhase.SUCCEEDED, StepPhase.SKIPPED)
                           for s in step.in_steps)
        if parents_done or run_phase is RunPhase.SUCCEEDED:
            return StepPhase.SUCCEEDED
        if run_phase in (RunPhase.FAILED, RunPhase.STOPPED):
            return StepPhase.STOPPED
        return StepPhase.RUNNING
    if not reachable or run_phase is RunPhase.SUCCEEDED:
        return StepPhase.SKIPPED
    return StepPhase.PENDING


def _times(attempts: Iterable[ObservedAttempt]) -> tuple[datetime | None, datetime | None]:
    created = [t for a in attempts if (t := a.created_at or a.started_at) is not None]
    finished = [a.finished_at for a in attempts if a.finished_at is not None]
    return (min(created) if created else None, max(finished) if finished else None)


def _step_entries(flow: FlowModel, run: RunModel, observed: Sequence[ObservedAttempt],
                  graph: _Graph, run_phase: RunPhase,
                  starts: Sequence[StartTask]) -> list[dict[str, Any]]:
    by_step: dict[str, list[ObservedAttempt]] = defaultdict(list)
    for attempt in observed:
        by_step[attempt.task.step].append(attempt)
    started: dict[str, int] = {}
    for start in starts:
        started[start.task.step] = max(started.get(start.task.step, 0), start.attempt)
    phases: dict[str, StepPhase] = {}
    reachable = {flow.start}
    entries = []
    for name in flow.order:
        step = flow[name]
        views = graph.by_step.get(name, [])
        phase = _step_phase(step, views, phases, run_phase, name in reachable)
        phases[name] = phase
        if name in reachable and phase is not StepPhase.SKIPPED:
            nexts: Iterable[str] = step.next
            if step.type is StepType.SPLIT_SWITCH and phase is StepPhase.SUCCEEDED:
                cases = dict(step.switch_cases)
                chosen = {v.result.switch for v in views if v.result and v.result.switch}
                nexts = [s for s in step.next if s in chosen or
                         any(cases.get(c) == s for c in chosen)]
            reachable.update(nexts)
        counts = {"total": len(views),
                  "pending": sum(v.state in ("waiting", "pending") for v in views),
                  "running": sum(v.state == "running" for v in views),
                  "succeeded": sum(v.state == "succeeded" for v in views),
                  "failed": sum(v.state == "failed" for v in views),
                  "cloned": sum(v.kept and v.latest is not None
                                and v.latest.attempt == ORIGIN_ATTEMPT for v in views)}
        entry: dict[str, Any] = {"name": name, "phase": phase.value, "tasks": counts}
        failed = [v for v in views if v.state == "failed"]
        if failed and step.depth > 0:
            entry["failedIndexes"] = format_indexes(v.task.indexes for v in failed)
        previous = run.step_status(name)
        mine = by_step.get(name, [])
        highest = max([a.attempt for a in mine] + [started.get(name, -1)])
        old_attempts = previous.get("attempts")
        if isinstance(old_attempts, int):
            highest = max(highest, old_attempts)
        if highest >= 0:
            entry["attempts"] = highest
        first, last = _times(mine)
        started_at = previous.get("startedAt") or (format_time(first) if first else None)
        if started_at:
            entry["startedAt"] = started_at
        if phase in (StepPhase.SUCCEEDED, StepPhase.FAILED) and last is not None:
            entry["finishedAt"] = format_time(last)
        reason, message = _step_reason(views, phase)
        if reason:
            entry["reason"] = clip(reason, MAX_STEP_REASON)
            entry["message"] = clip(message, MAX_STEP_MESSAGE)
        overhead = step_overhead(mine)
        if overhead is not None:
            entry["overhead"] = overhead
        entries.append(entry)
    return entries


def _step_reason(views: Sequence[TaskView], phase: StepPhase) -> tuple[str, str]:
    for view in views:
        if view.state == "failed" and view.reason is not None and phase is StepPhase.FAILED:
            return view.reason.value, f"task {view.task.task}: {view.message}"
    for view in views:
        if view.unschedulable and view.reason is not None:
            return view.reason.value, f"task {view.task.task}: {view.message}"
    for view in views:
        if view.state == "waiting" and view.reason is not None and view.latest is not None:
            return view.reason.value, (f"task {view.task.task} attempt {view.latest.attempt} "
                                       f"failed ({view.message}); retrying")
    return "", ""


def _status(flow: FlowModel, run: RunModel, observed: Sequence[ObservedAttempt], graph: _Graph,
            now: datetime, *, phase: RunPhase, failure: dict[str, Any] | None,
            starts: Sequence[StartTask], resume_attempt: int, resuming: bool, base: int,
            reopened: bool) -> dict[str, Any]:
    old = run.status
    steps = _step_entries(flow, run, observed, graph, phase, starts)
    first, _ = _times(observed)
    started_at = parse_time(old.get("startedAt")) or first or (now if starts else None)
    finished_at = None if reopened else parse_time(old.get("finishedAt"))
    if phase in TERMINAL_PHASES and finished_at is None:
        finished_at = now
    if phase not in TERMINAL_PHASES:
        finished_at = None
    pinned = old.get("flow") or {}
    if not pinned:
        pinned = {"generation": flow.generation}
        if flow.code_sha256:
            pinned["codeSha256"] = flow.code_sha256
    done = sum(s["phase"] in (StepPhase.SUCCEEDED, StepPhase.SKIPPED) for s in steps)
    status: dict[str, Any] = {
        "phase": phase.value,
        "observedGeneration": run.generation,
        "conditions": _conditions(run, graph, phase, failure, resuming, now),
        "flow": dict(pinned),
        "progress": f"{done}/{len(steps)}",
        "steps": steps,
        "resumeAttempt": resume_attempt,
    }
    if started_at is not None:
        status["startedAt"] = format_time(started_at)
        status["duration"] = format_duration(((finished_at or now) - started_at).total_seconds())
    if finished_at is not None:
        status["finishedAt"] = format_time(finished_at)
    if failure is not None and phase is RunPhase.FAILED:
        status["failure"] = failure
    reason, message = _headline(graph, phase, failure)
    if reason:
        status["reason"] = clip(reason, MAX_STEP_REASON)
        status["message"] = clip(message, MAX_RUN_MESSAGE)
    if run.resume_from_run or old.get("originRun"):
        status["originRun"] = run.resume_from_run or old["originRun"]
    overhead = run_overhead(observed)
    if overhead is not None:
        status["overhead"] = overhead
    return status


def _headline(graph: _Graph, phase: RunPhase,
              failure: Mapping[str, Any] | None) -> tuple[str, str]:
    """`status.reason` and `status.message` (the Reason printer column): why the run
    failed or stopped, or why it cannot make progress now; ("", "") while all is well."""
    if phase is RunPhase.FAILED:
        return (str((failure or {}).get("reason") or FailureReason.INTERNAL.value),
                str((failure or {}).get("message") or ""))
    if phase is RunPhase.STOPPED:
        return "Stopped", "stopped by spec.stop"
    if phase is RunPhase.SUCCEEDED:
        return "", ""
    views = sorted(graph.views.values(), key=lambda v: v.task)
    for view in views:
        if view.unschedulable and view.reason is not None:
            deadline = (f" (fails at {format_time(view.pending_deadline)} if still pending)"
                        if view.pending_deadline is not None else "")
            return view.reason.value, f"{view.task}: {view.message}{deadline}"
    for view in views:
        if view.state == "waiting" and view.reason is not None and view.latest is not None:
            return "Retrying", (f"{view.task} attempt {view.latest.attempt} failed "
                                f"({view.reason.value}: {view.message}); retrying")
    return "", ""


def _conditions(run: RunModel, graph: _Graph, phase: RunPhase, failure: dict[str, Any] | None,
                resuming: bool, now: datetime) -> list[dict[str, Any]]:
    gen = run.generation
    accepted = condition(run.condition(ConditionType.ACCEPTED), ConditionType.ACCEPTED,
                         ConditionStatus.TRUE, "Accepted", "the Flow exists and is accepted",
                         now, gen)
    views = list(graph.views.values())
    unschedulable = next((v for v in views if v.unschedulable), None)
    retrying = next((v for v in views if v.state == "waiting" and v.reason is not None), None)
    unschedulable = unschedulable if unschedulable is not None and unschedulable.reason else None
    if phase in TERMINAL_PHASES:
        progressing = (ConditionStatus.FALSE, phase.value, f"the run is {phase.value.lower()}")
    elif resuming:
        progressing = (ConditionStatus.TRUE, "Resuming",
                       f"resume {run.resume_attempt}: re-running what failed")
    elif unschedulable is not None:
        why = "Unschedulable" if unschedulable.reason is FailureReason.UNSCHEDULABLE else "Pending"
        progressing = (ConditionStatus.TRUE, why, f"{unschedulable.task}: "
                       f"{unschedulable.reason}: {unschedulable.message}")
    elif retrying is not None:
        progressing = (ConditionStatus.TRUE, "Retrying",
                       f"{retrying.task}: {retrying.reason}: {retrying.message}")
    elif phase is RunPhase.RUNNING:
        running = sum(v.state in ("pending", "running") for v in views)
        progressing = (ConditionStatus.TRUE, "Running", f"{running} task(s) pending or running")
    else:
        progressing = (ConditionStatus.TRUE, "Pending", "waiting for the first task to start")
    if phase is RunPhase.SUCCEEDED:
        succeeded = (ConditionStatus.TRUE, "Succeeded", "the end step succeeded")
    elif phase is RunPhase.FAILED:
        reason = failure.get("reason", "Internal") if failure else "Internal"
        message = failure.get("message", "") if failure else ""
        succeeded = (ConditionStatus.FALSE, str(reason), str(message))
    elif phase is RunPhase.STOPPED:
        succeeded = (ConditionStatus.FALSE, "Stopped", "stopped by spec.stop")
    else:
        succeeded = (ConditionStatus.UNKNOWN, phase.value, "the run has not finished")
    return [
        accepted,
        condition(run.condition(ConditionType.PROGRESSING), ConditionType.PROGRESSING,
                  progressing[0], progressing[1], progressing[2], now, gen),
        condition(run.condition(ConditionType.SUCCEEDED), ConditionType.SUCCEEDED,
                  succeeded[0], succeeded[1], succeeded[2], now, gen),
    ]


def _events(flow: FlowModel, run: RunModel, graph: _Graph, status: Mapping[str, Any],
            starts: Sequence[StartTask], resume_now: bool) -> list[Event]:
    """Events for transitions only: derived from the old status vs the new one."""
    old = run.status
    events: list[Event] = []
    if resume_now:
        step = f" from step {run.resume_step}" if run.resume_step else ""
        events.append(Event("Normal", "Resumed",
                            f"resume {run.resume_attempt}{step}: re-running what failed"))
    if not old.get("startedAt") and status.get("startedAt"):
        events.append(Event("Normal", "Started", f"run {run.name} started"))
    old_steps = {s.get("name"): s for s in old.get("steps") or () if isinstance(s, Mapping)}
    for entry in status["steps"]:
        before = old_steps.get(entry["name"], {})
        if entry["phase"] == StepPhase.FAILED and before.get("phase") != StepPhase.FAILED:
            events.append(Event("Warning", "StepFailed",
                                f"step {entry['name']} failed: {entry.get('reason', '')}: "
                                f"{entry.get('message', '')}"))
        stuck = (FailureReason.UNSCHEDULABLE, FailureReason.IMAGE_ERROR,
                 FailureReason.LAUNCH_ERROR)
        if (entry.get("reason") in stuck and before.get("reason") != entry.get("reason")
                and entry["phase"] == StepPhase.RUNNING):
            events.append(Event("Warning", entry["reason"],
                                f"step {entry['name']}: {entry.get('message', '')}"))
    for start in starts:
        view = graph.views.get(start.task)
        before = old_steps.get(start.task.step, {})
        old_highest = before.get("attempts", -1)
        if (view is not None and view.reason is not None and view.latest is not None
                and start.attempt > (old_highest if isinstance(old_highest, int) else -1)):
            events.append(Event("Warning", "Retrying",
                                f"{start.task} attempt {view.latest.attempt} failed "
                                f"({view.reason.value}: {view.message}); starting attempt "
                                f"{start.attempt}"))
    old_phase, new_phase = old.get("phase"), status["phase"]
    if new_phase != old_phase and new_phase in TERMINAL_PHASES:
        if new_phase == RunPhase.SUCCEEDED:
            events.append(Event("Normal", "Succeeded", f"run {run.name} succeeded"
                                f" in {status.get('duration', '0s')}"))
        elif new_phase == RunPhase.FAILED:
            message = (status.get("failure") or {}).get("message", "")
            events.append(Event("Warning", "Failed", f"run {run.name} failed: {message}"))
        else:
            events.append(Event("Normal", "Stopped", f"run {run.name} stopped"))
    return events

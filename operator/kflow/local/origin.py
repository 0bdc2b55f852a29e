"""The run a local resume starts from: checked, its results read, its kept tasks cloned.

Owns: `check_origin` (pure: can this record be resumed, from this step), `kept_steps`
(pure: which steps' results the new run keeps), `read_origin` (the origin's succeeded
tasks from the store, as the planner's `ObservedAttempt`s: the newest attempt of each
task, when it committed with exit status 0, its result from its ``meta.json``) and
`clone_kept` (copy the kept tasks' records into the new run, as Metaflow's resume
does, so the new run is complete on its own: the client API, and a later resume of
it, find every task there).

The planner does the deciding (`plan(..., origin=...)`, see `kflow.planning.planner`):
it keeps the origin's succeeded tasks and runs the failed ones, or ``step`` and what
follows it. A succeeded task's ancestors all succeeded, so what the planner keeps is
exactly the origin's successes outside `kept_steps`' complement; the runner would clone
a parent it reads anyway (`kflow.runner.loading.RunReader`), this only does it up front.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from kflow.api_types import RunPhase
from kflow.local.record import RunRecord
from kflow.planning.flow import FlowModel
from kflow.planning.model import ObservedAttempt, TaskId, TaskResult
from kflow.store import Datastore, TaskKey

__all__ = ["OriginError", "check_origin", "clone_kept", "kept_steps", "read_origin"]

RESULT_KEY = "result"          # kflow.runner.loading.RESULT_KEY (not imported: the runner)
CLONED_ATTEMPT = 0             # kflow.runner.loading.CLONED_ATTEMPT
_READERS = 16


class OriginError(ValueError):
    """The origin cannot be resumed; the message says why and what to do."""


def check_origin(origin: RunRecord | None, run_id: str, flow: FlowModel, step: str | None,
                 phase: str | None, prog: str = "flow.py") -> RunRecord:
    """`origin` if a new run can resume it (from `step`), else `OriginError`. `phase` is
    the origin's effective phase (`RunRecord.effective_phase`)."""
    if origin is None:
        raise OriginError(f"there is no local run {run_id} of this flow in the local store; "
                          f"list the runs with Flow(...) in the client API, or start one "
                          f"with `python {prog} run --local`")
    if step is not None and step not in flow:
        raise OriginError(f"--step {step}: not a step of the flow (its steps: "
                          f"{', '.join(flow.order)})")
    if phase not in (RunPhase.SUCCEEDED.value, RunPhase.FAILED.value,
                     RunPhase.STOPPED.value):
        raise OriginError(f"run {run_id} is {phase or 'not started'} (driven by process "
                          f"{origin.pid} on {origin.host}); wait for it to end, or stop it "
                          "with Ctrl-C, then resume it")
    if phase == RunPhase.SUCCEEDED.value and step is None:
        raise OriginError(f"run {run_id} succeeded, so nothing failed to re-run; pass "
                          "--step STEP to re-run from that step")
    return origin


def kept_steps(flow: FlowModel, step: str | None) -> frozenset[str]:
    """The steps whose origin results a resume from `step` keeps: all of them without a
    step, else all but `step` and the steps after it."""
    if step is None:
        return frozenset(flow.order)
    again = {step}
    todo = [step]
    while todo:
        for child in flow[todo.pop()].next:
            if child not in again:
                again.add(child)
                todo.append(child)
    return frozenset(flow.order) - again


def _succeeded(store: Datastore, key: TaskKey) -> ObservedAttempt | None:
    attempts = store.list_attempts(key)
    if not attempts:
        return None
    newest = max(attempts)
    if not attempts[newest]:
        return None                         # it did not commit: not a success
    meta = store.read_meta(key.attempt(newest))
    if meta.exit_status != 0:
        return None
    result = TaskResult.parse(meta.extra.get(RESULT_KEY)) or TaskResult(ok=True)
    return ObservedAttempt(TaskId(key.step, key.task), newest, "succeeded", exit_code=0,
                           result=result)


def read_origin(store: Datastore, namespace: str, flow: str, run_id: str
                ) -> list[ObservedAttempt]:
    """The succeeded tasks of run `run_id` (its newest attempt of each, committed with
    exit status 0), from the store."""
    keys = [TaskKey(namespace, flow, run_id, step, task)
            for step in store.list_steps(namespace, flow, run_id)
            for task in store.list_tasks(namespace, flow, run_id, step)]
    with ThreadPoolExecutor(_READERS, thread_name_prefix="kflow-origin") as pool:
        found = list(pool.map(lambda key: _succeeded(store, key), keys))
    return [attempt for attempt in found if attempt is not None]


def clone_kept(store: Datastore, namespace: str, flow: str, origin_run_id: str, run_id: str,
               origin: Iterable[ObservedAttempt], kept: Sequence[str] | frozenset[str],
               extra: Mapping[str, str] | None = None) -> int:
    """Copy the records of the origin's tasks of the `kept` steps into run `run_id`
    (attempt `CLONED_ATTEMPT`, as the runner clones); how many. `extra` replaces entries
    of the copies' ``meta.json`` ``extra`` (the new run's ``origin_run_id`` and ``tags``:
    the client reads a run's from its start task)."""
    tasks = [a for a in origin if a.task.step in kept]

    def clone(attempt: ObservedAttempt) -> None:
        source = TaskKey(namespace, flow, origin_run_id, attempt.task.step, attempt.task.task)
        target = TaskKey(namespace, flow, run_id, attempt.task.step, attempt.task.task)
        meta = store.read_meta(source.attempt(attempt.attempt))
        meta = replace(meta, extra={**meta.extra, **(extra or {})})
        store.clone_attempt(source.attempt(attempt.attempt), target.attempt(CLONED_ATTEMPT),
                            meta)

    with ThreadPoolExecutor(_READERS, thread_name_prefix="kflow-clone") as pool:
        list(pool.map(clone, tasks))
    return len(tasks)

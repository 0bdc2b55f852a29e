"""One task from start to end: the runner's I/O shell.

Owns: `run_task`. In order: open the store (from the environment), record
the attempt's start, tee stdout/stderr to its log sinks, fetch and import
the code package, build the graph, resolve and read the parents, run the
step, persist its artifacts (new values uploaded, inherited ones passed on
as refs), close the logs, commit the record (meta.json, artifacts.json,
DONE), write the termination message and return the exit code. Along the
way it reads its wall clock (`_Progress.clock`: process start, the step
function's start and end, the commit) for the record's ``timing`` and the
result's ``at``, with the operator's readings from the pod
(``KFLOW_TASK_READY_AT``, ``KFLOW_TASK_CREATED_AT``). Every
failure is converted here, at the edge, into a `RunnerError` with its exit
code; the pure parts (`inputs`, `artifacts`, `step`, `result`) do the
thinking.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kflow.runner.cli import TaskArgs
from kflow.runner.exitcodes import (
    CodePackageError,
    ExitCode,
    ParentNotDoneError,
    RunnerError,
    StoreUnavailableError,
    TaskTerminated,
    UsageError,
    exit_code_for,
)
from kflow.runner.result import TaskResult, write_termination_message

if TYPE_CHECKING:
    from kflow.client import Run
    from kflow.flowspec import FlowSpec
    from kflow.graph import FlowGraph
    from kflow.runner.step import StepOutcome
    from kflow.store import AttemptWriter, Datastore, LogSink, TaskMetadata
    from kflow.trigger import Trigger

__all__ = ["run_task"]


@dataclass
class _Progress:
    """What is known so far about the running task (for the record and the result)."""

    started: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=dict)
    # wall-clock readings (epoch seconds): startedAt, userStartedAt, userFinishedAt,
    # finishedAt (see kflow.runner.result and TaskMetadata.timing)
    clock: dict[str, float] = field(default_factory=lambda: {"startedAt": _process_start()})
    outcome: StepOutcome | None = None
    # more for meta.json's ``extra`` (the start task: ``parameters``, for the client API)
    extra: dict[str, str] = field(default_factory=dict)
    artifacts: int = 0
    bytes: int = 0

    def lap(self, name: str, since: float) -> float:
        now = time.monotonic()
        self.timings[name] = now - since
        return now


def run_task(args: TaskArgs, environ: Mapping[str, str] | None = None) -> ExitCode:
    """Run the task `args` names; its exit code (the result is also written out)."""
    from kflow.runner.guards import raise_on_sigterm

    env = os.environ if environ is None else environ
    progress = _Progress()
    raise_on_sigterm()
    writer: AttemptWriter | None = None
    meta: TaskMetadata | None = None
    try:
        store, writer, meta = _open(args, env)
    except BaseException as exc:
        error: BaseException | None = _report(_convert(exc))
    else:
        error = _run_logged(args, env, store, writer, progress)
    outcome = progress.outcome
    if error is None and outcome is not None:
        code = ExitCode.OK if outcome.ok else ExitCode.USER_FAILURE
        error = outcome.error
    else:
        code = exit_code_for(error)
    progress.timings["total"] = time.monotonic() - progress.started
    progress.clock["finishedAt"] = time.time()
    result = _result(args, progress, code, error)
    timing = {**_pod_times(env), **progress.clock}
    if (writer is not None and meta is not None and code is not ExitCode.STORE_UNAVAILABLE
            and not _commit(writer, replace(meta, extra={**meta.extra, **progress.extra}),
                            code, error, result, timing)):
        code = ExitCode.STORE_UNAVAILABLE
        result = _result(args, progress, code, StoreUnavailableError(
            "the task's record could not be written to the store"))
    write_termination_message(result, env)
    return code


def _report(error: BaseException) -> BaseException:
    """Print an error that ends the task to stderr (so to its logs, while they tee)."""
    if isinstance(error, RunnerError):
        print(f"kflow.runner: {error.kind}: {error}", file=sys.stderr)
    elif isinstance(error, TaskTerminated):
        print(f"kflow.runner: {error}", file=sys.stderr)
    else:
        print("kflow.runner: internal error:", file=sys.stderr)
        traceback.print_exception(error)
    return error


def _convert(exc: BaseException) -> BaseException:
    """Store errors become runner errors with their exit code; others pass."""
    from kflow.store import ObjectNotFound, StoreNotConfigured, StoreUnavailable

    if isinstance(exc, StoreUnavailable):
        return StoreUnavailableError(str(exc))
    if isinstance(exc, StoreNotConfigured):
        return UsageError(str(exc))
    if isinstance(exc, ObjectNotFound):
        return ParentNotDoneError(str(exc))
    return exc


def _open(args: TaskArgs, env: Mapping[str, str]
          ) -> tuple[Datastore, AttemptWriter, TaskMetadata]:
    from kflow.store import TaskKey, TaskMetadata, store_from_env

    try:
        key = TaskKey(args.namespace, args.flow, args.run_id, args.step, args.task)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    store = store_from_env(env, retry=_retry_policy(env))
    writer = store.attempt(key.attempt(args.attempt))
    extra = {"step": args.step, "task": args.task, "pathspec": key.pathspec,
             "flow_file": args.flow_file}
    if args.tags:
        extra["tags"] = ",".join(args.tags)
    if args.origin_run_id:
        extra["origin_run_id"] = args.origin_run_id
    if args.trigger_run:
        extra["trigger"] = args.trigger_run          # Run.trigger once the FlowRun is gone
    meta = TaskMetadata.collect(args.attempt, args.code_sha256, time.time(), extra=extra,
                                user=env.get("KFLOW_USER"))
    writer.begin(meta)
    return store, writer, meta


RETRY_ENV = "KFLOW_STORE_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 60.0


def _retry_policy(env: Mapping[str, str]) -> Any:
    """The store's retry policy: keep retrying a failing request for
    ``$KFLOW_STORE_RETRY_SECONDS`` (default 60), so a task rides out a store
    restart instead of spending an attempt of the infrastructure budget on it."""
    from kflow.store import RetryPolicy

    text = env.get(RETRY_ENV)
    if not text:
        return RetryPolicy.until(DEFAULT_RETRY_SECONDS)
    try:
        seconds = float(text)
    except ValueError:
        raise UsageError(f"{RETRY_ENV}={text!r} is not a number of seconds") from None
    return RetryPolicy.until(seconds)


def _run_logged(args: TaskArgs, env: Mapping[str, str], store: Datastore,
                writer: AttemptWriter, progress: _Progress) -> BaseException | None:
    """Run the task with stdout/stderr teed to the store; the error that ended it
    (already reported in the logs), None when the step ran (even if it failed)."""
    from kflow.runner.logtee import FdTee
    from kflow.store import LOG_STREAMS

    sinks: dict[str, LogSink] = {name: writer.log_sink(name) for name in LOG_STREAMS}
    tee = FdTee({name: sink.write for name, sink in sinks.items()}).start()
    error: BaseException | None = None
    try:
        _run(args, env, store, writer, progress)
    except BaseException as exc:
        error = _report(_convert(exc))
    finally:
        tee.stop()
        for sink in sinks.values():
            try:
                sink.close()
            except Exception as exc:  # the logs are lost, the task's outcome is not
                print(f"kflow.runner: could not upload the last {sink.stream} log "
                      f"segment: {exc}", file=sys.stderr)
    return error


def _fetcher(args: TaskArgs, store: Datastore) -> Callable[[], bytes]:
    def fetch() -> bytes:
        from kflow.store import ObjectNotFound

        url = args.code_url
        if url is None:
            key = store.layout.code_package(args.code_sha256)
        elif url.startswith("s3://"):
            key = url[len("s3://"):].partition("/")[2]
        else:
            path = Path(url[len("file://"):] if url.startswith("file://") else url)
            try:
                return path.read_bytes()
            except OSError as exc:
                raise CodePackageError(f"cannot read the code package {path}: {exc}") from None
        try:
            return store.objects.get(key)
        except ObjectNotFound:
            raise CodePackageError(f"the code package {key} is not in the store; deploy "
                                   "the flow (or pass --code-url) first") from None
    return fetch


def _load_code(args: TaskArgs, env: Mapping[str, str], store: Datastore
               ) -> tuple[type[FlowSpec], FlowGraph]:
    from kflow.graph import build_graph
    from kflow.runner.codecache import cache_root, cached_package, import_flow

    if args.code_dir is not None:
        code_dir = Path(args.code_dir)
        if not code_dir.is_dir():
            raise UsageError(f"--code-dir {code_dir} is not a directory")
    else:
        code_dir, _ = cached_package(args.code_sha256, cache_root(env), _fetcher(args, store))
    flow_cls = import_flow(code_dir, args.flow_file, args.flow)
    try:
        graph = build_graph(flow_cls)
    except (OSError, SyntaxError) as exc:
        raise CodePackageError(f"the graph of {args.flow} cannot be read from its "
                               f"source: {exc}") from None
    if args.step not in graph:
        raise UsageError(f"flow {args.flow} has no step '{args.step}' (steps: "
                         f"{', '.join(graph.order)})")
    return flow_cls, graph


def _step_spec(flow_cls: type[FlowSpec], graph: FlowGraph, args: TaskArgs) -> Any:
    from kflow.flowspec import flow_steps
    from kflow.resources import catch_var, retry_policy, timeout_seconds
    from kflow.runner.step import StepSpec

    decorators = getattr(flow_steps(flow_cls)[args.step], "decorators", [])
    has_catch, var = catch_var(decorators)
    retries = args.max_user_code_retries
    if retries is None:
        retries = retry_policy(decorators).times
    return StepSpec(node=graph[args.step], timeout_seconds=timeout_seconds(decorators),
                    has_catch=has_catch, catch_var=var, max_user_code_retries=retries)


def _set_current(flow_cls: type[FlowSpec], args: TaskArgs, env: Mapping[str, str],
                 parameter_names: tuple[str, ...], store: Datastore) -> None:
    from kflow.current import current

    username = env.get("KFLOW_USER") or env.get("USER") or "unknown"
    project: dict[str, str] = {}
    deco = flow_cls._flow_decorators.get("project")
    if deco is not None:
        name = deco.project_name  # type: ignore[attr-defined]
        branch = deco.resolve_branch(username)  # type: ignore[attr-defined]
        project = {"project_name": name, "branch_name": branch,
                   "project_flow_name": f"{name}.{branch}.{flow_cls.__name__}"}
    current._set(flow_name=args.flow, run_id=args.run_id, step_name=args.step,
                 task_id=args.task, retry_count=args.attempt,
                 origin_run_id=args.origin_run_id, namespace=args.namespace,
                 username=username, tags=args.tags, parameter_names=parameter_names,
                 is_running_flow=True, trigger=_trigger(args, store), **project)


def _trigger(args: TaskArgs, store: Datastore) -> Trigger | None:
    """``current.trigger``: its runs are read on first use from this task's store and
    namespace, through a store-only client source (a step pod has no Kubernetes rights)."""
    if not args.trigger_run:
        return None
    from kflow.trigger import Trigger

    opened: list[bool] = []

    def open_run(pathspec: str) -> Run:
        from kflow.client import Run, Source, set_source

        if not opened:
            set_source(Source(store, args.namespace))
            opened.append(True)
        return Run(pathspec)

    return Trigger.from_text(args.trigger_run, open_run)


def _run(args: TaskArgs, env: Mapping[str, str], store: Datastore, writer: AttemptWriter,
         progress: _Progress) -> None:
    from kflow.flowspec import flow_constants
    from kflow.parameters import flow_parameters
    from kflow.runner.inputs import parse_task_path, resolve_inputs
    from kflow.runner.loading import RunReader, load_inputs
    from kflow.runner.step import make_flow, parameter_values, run_step

    mark = time.monotonic()
    flow_cls, graph = _load_code(args, env, store)
    spec = _step_spec(flow_cls, graph, args)
    mark = progress.lap("code", mark)

    from kflow.runner.inputs import foreach_depth

    try:
        path = parse_task_path(args.task, foreach_depth(graph, args.step))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if path:
        progress.extra["foreach_index"] = str(path[-1])
    params = flow_parameters(flow_cls)
    param_attrs = {param.name: attr for attr, param in params}
    constants = flow_constants(flow_cls)
    start_values: dict[str, Any] = {}
    if args.step == graph.start:
        from kflow.exceptions import ParameterValueException

        try:
            values = parameter_values(flow_cls, dict(args.params), env)
        except KeyError as exc:
            raise UsageError(f"unknown parameter(s) {exc.args[0]} for flow {args.flow} "
                             f"(it has: {', '.join(param_attrs) or 'none'})") from None
        except ParameterValueException as exc:
            raise UsageError(str(exc)) from None
        start_values = {attr: value for attr, value in values.values()}
        start_values.update(constants)
        progress.extra["parameters"] = json.dumps(param_attrs, sort_keys=True)
    elif args.params:
        raise UsageError("--param is for the start step only; later steps read the "
                         "parameters from the start task")
    reader = RunReader(store, args.namespace, args.flow, args.run_id, args.origin_run_id)
    plan = resolve_inputs(graph, args.step, path, reader.num_splits)
    loaded = load_inputs(store, reader, graph, plan, args.step, path)
    flow, inputs = make_flow(flow_cls, args.step, loaded, store,
                             {} if args.step == graph.start else param_attrs,
                             [*param_attrs.values(), *constants])
    if start_values:
        flow.__dict__["_parameter_values"] = {
            name: value for name, (_, value) in values.items()}
    _set_current(flow_cls, args, env, tuple(param_attrs), store)
    mark = progress.lap("inputs", mark)

    progress.clock["userStartedAt"] = time.time()
    outcome = run_step(flow, spec, inputs, args.attempt)
    progress.clock["userFinishedAt"] = time.time()
    progress.outcome = outcome
    mark = progress.lap("user", mark)

    _persist(flow, store, writer, progress, start_values)
    progress.lap("persist", mark)


_DROP_IF_NONE = frozenset({"_foreach_var", "_foreach_num_splits", "_transition"})


def _persist(flow: FlowSpec, store: Datastore, writer: AttemptWriter, progress: _Progress,
             extra_values: Mapping[str, Any]) -> None:
    """Upload the step's new or changed artifacts; carry inherited ones as refs."""
    from kflow.runner.artifacts import plan_persist
    from kflow.store import UnpicklableArtifact, encode

    plan = plan_persist(flow, lambda value, name: encode(value, name).sha256())
    values = {name: value for name, value in {**plan.values, **extra_values}.items()
              if not (value is None and name in _DROP_IF_NONE)}
    writer.add_refs(plan.carried)
    try:
        saved = writer.save_artifacts(values)
    except UnpicklableArtifact as exc:
        outcome = progress.outcome
        print(f"kflow.runner: {exc}", file=sys.stderr)
        if outcome is not None:
            outcome.ok, outcome.error = False, exc
        # Keep what can be kept: everything but the values that failed.
        safe = {name: value for name, value in values.items() if name != exc.name}
        try:
            saved = writer.save_artifacts(safe)
        except UnpicklableArtifact:
            saved = writer.save_artifacts({})
    progress.artifacts = len(writer.index)
    progress.bytes = sum(ref.size for ref in saved.values())


def _result(args: TaskArgs, progress: _Progress, code: ExitCode,
            error: BaseException | None) -> TaskResult:
    outcome = progress.outcome if code is ExitCode.OK else None
    kind = None
    if error is not None:
        kind = error.kind if isinstance(error, RunnerError) else type(error).__name__
    return TaskResult(
        ok=code is ExitCode.OK, step=args.step, task=args.task, attempt=args.attempt,
        next_steps=outcome.next_steps if outcome is not None else (),
        foreach_var=outcome.foreach_var if outcome is not None else None,
        foreach_splits=outcome.foreach_splits if outcome is not None else None,
        switch=outcome.switch if outcome is not None else None,
        artifacts=progress.artifacts, bytes=progress.bytes,
        timings=dict(progress.timings), at=dict(progress.clock), error_type=kind,
        error_message=str(error) if error is not None else None,
    )


def _commit(writer: AttemptWriter, meta: TaskMetadata, code: ExitCode,
            error: BaseException | None, result: TaskResult,
            timing: Mapping[str, float]) -> bool:
    """Write meta.json, artifacts.json and DONE; False if the store refused.

    A failure @catch handled is kept out of ``meta.exception`` (the task
    succeeded); it is in the result and the ``_exception`` artifact.
    """
    from kflow.runner.loading import RESULT_KEY
    from kflow.store import StoreError

    finished = timing.get("finishedAt") or time.time()
    final = meta.finished(finished, int(code), error if code is not ExitCode.OK else None)
    final = replace(final, extra={**final.extra, RESULT_KEY: result.to_json()},
                    timing=dict(timing))
    try:
        writer.finish(final)
    except StoreError as exc:
        print(f"kflow.runner: the task's record could not be written: {exc}",
              file=sys.stderr)
        return False
    return True


def _pod_times(env: Mapping[str, str]) -> dict[str, float]:
    """The operator's readings passed through the pod (RFC 3339, ms): ``readyAt`` and
    ``createdAt`` as epoch seconds; absent, empty or unparsable ones are left out."""
    from kflow.api_types import ENV_TASK_CREATED_AT, ENV_TASK_READY_AT
    from kflow.planning.run import parse_time

    times: dict[str, float] = {}
    for key, name in (("readyAt", ENV_TASK_READY_AT), ("createdAt", ENV_TASK_CREATED_AT)):
        parsed = parse_time(env.get(name))
        if parsed is not None:
            times[key] = parsed.timestamp()
    return times


def _process_start() -> float:
    """When this process started (epoch seconds), so the interpreter's start-up and the
    imports count as the runner's time: on Linux from ``/proc/self/stat`` (start time in
    clock ticks since boot, against ``CLOCK_BOOTTIME``), else now."""
    now = time.time()
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        ticks = int(fields[19])                 # field 22 (starttime), after pid and comm
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
        age = since_boot - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - age if 0 <= age < 3600 else now

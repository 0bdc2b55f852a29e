"""`python flow.py run --local` and `resume --local`: one local run, start to end.

Owns: putting a local run together and taking it apart. In order: the local store
(`kflow.local.location`), the code package (built as for a deploy and kept in the
store, so ``run.code`` works; the tasks run the flow's folder itself, ``--code-dir``),
the Flow spec (`kflow.manifest.flow_manifest`, parsed by the planner's `FlowModel`:
the same @retry, @catch, @timeout settings as on the cluster), the run record
(`kflow.local.record`), for a resume the origin (`kflow.local.origin`), then the loop
(`kflow.local.loop.drive`) over a `ProcessExecutor`, printing the progress lines
(`kflow.progress.ProgressLog`) and each task's output, and at the end the outcome.

Signals: the first Ctrl-C (or SIGTERM) asks the loop to stop the run (its tasks get
SIGTERM, the run ends ``Stopped``); a second one kills them at once. Whatever
happens, every task process is ended before this returns (`Executor.close`).

Exit codes: 0 Succeeded, 1 Failed or Stopped (or the run could not start: the error
says what and what to do), 130 after Ctrl-C.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from kflow import progress
from kflow.api_types import RunPhase
from kflow.exceptions import KflowException
from kflow.local import report
from kflow.local.executor import Executor, RunLaunch, StepLaunch, step_launches
from kflow.local.location import check_run_id, local_namespace, new_run_id, store_dir
from kflow.local.loop import drive
from kflow.local.origin import OriginError, check_origin, clone_kept, kept_steps, read_origin
from kflow.local.processes import Echo, ProcessExecutor, store_dir_env
from kflow.local.record import RecordBook, RunRecord
from kflow.planning import FlowModel, ObservedAttempt, RunModel

if TYPE_CHECKING:
    from kflow.flowspec import FlowSpec
    from kflow.graph import FlowGraph
    from kflow.packaging import CodePackage
    from kflow.store import Datastore

__all__ = ["LocalRunError", "LocalSettings", "drive_to_end", "resume_local", "run_local"]

STOP_GRACE_SECONDS = 10.0      # SIGTERM → SIGKILL for stopped tasks
RECORD_EVERY_SECONDS = 1.0     # the run record's status is written at most this often
EXIT_INTERRUPTED = 130


class LocalRunError(KflowException):
    """A local run could not be started (what, where, and what to do)."""


@dataclass(frozen=True)
class LocalSettings:
    """The options of `run --local` / `resume --local` that are not the flow's."""

    max_workers: int = 16
    namespace: str | None = None
    tags: Sequence[str] = ()
    run_id: str | None = None
    prog: str = "flow.py"
    package_include: Sequence[str] = ()


class _Console:
    """stdout/stderr shared by the loop and the tasks' reader threads, line by line."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self._streams = {"stdout": out, "stderr": err}
        self._lock = threading.RLock()   # the signal handler prints from the main thread

    def line(self, stream: str, text: str) -> None:
        target = self._streams.get(stream, self._streams["stdout"])
        with self._lock:
            target.write(text + "\n")
            target.flush()

    def lines(self, texts: Sequence[str]) -> None:
        for text in texts:
            self.line("stdout", text)


def _open_store(root: Path) -> Datastore:
    from kflow.store import Datastore, LocalObjectStore

    try:
        return Datastore(LocalObjectStore(root))
    except OSError as exc:
        raise LocalRunError(f"cannot create the local store {root}: {exc}; set "
                            "KFLOW_STORE_DIR to a writable directory") from None


@dataclass(frozen=True)
class _Prepared:
    flow: FlowModel
    launch_steps: Mapping[str, StepLaunch]
    flow_file: str
    code_dir: Path
    code_sha256: str


def _prepare(flow_cls: type[FlowSpec], graph: FlowGraph, store: Datastore,
             settings: LocalSettings, err: TextIO) -> _Prepared:
    """The code package (kept in the store) and the Flow spec, parsed for the planner."""
    from kflow.manifest import flow_manifest

    flow_path = Path(graph.file)
    package = package_flow(graph, settings, err)
    store.put_code_package(package.sha256, package.data)
    spec = flow_manifest(flow_cls, graph, package,
                         package_url=f"file://{store.layout.code_package(package.sha256)}",
                         image="local", namespace=local_namespace(settings.namespace),
                         username=_user())["spec"]
    try:
        flow = FlowModel.from_spec(spec)
    except ValueError as exc:
        raise LocalRunError(f"flow {graph.name}: {exc}") from None
    return _Prepared(flow, step_launches(spec), package.flow_file,
                     flow_path.absolute().parent, package.sha256)


def package_flow(graph: FlowGraph, settings: LocalSettings, err: TextIO) -> CodePackage:
    """The flow's code package (its warnings printed to `err`); LocalRunError if it
    cannot be built."""
    from kflow import packaging

    flow_path = Path(graph.file)
    try:
        package = packaging.build_package(flow_path, settings.package_include)
    except (OSError, ValueError) as exc:
        raise LocalRunError(f"packaging {flow_path}: {exc}") from None
    for warning in package.warnings:
        print(f"warning: {warning}", file=err)
    return package


def _user() -> str:
    from kflow.config import local_user

    return local_user()


def run_local(flow_cls: type[FlowSpec], graph: FlowGraph, parameters: Mapping[str, str],
              settings: LocalSettings, out: TextIO | None = None,
              err: TextIO | None = None) -> int:
    """Run the flow on this machine (`python flow.py run --local`); the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    root = store_dir()
    store = _open_store(root)
    try:
        prepared = _prepare(flow_cls, graph, store, settings, err)
        namespace = local_namespace(settings.namespace)
        run_id = _new_run(store, namespace, graph.name, settings.run_id)
        record = RunRecord(flow=graph.name, run_id=run_id, namespace=namespace,
                           flow_file=prepared.flow_file, code_sha256=prepared.code_sha256,
                           user=_user(), parameters=dict(parameters),
                           tags=tuple(dict.fromkeys(settings.tags)),
                           max_workers=settings.max_workers)
        return _execute(store, root, prepared, record, (), 0, out, err, settings.prog)
    finally:
        store.close()


def _new_run(store: Datastore, namespace: str, flow: str, wanted: str | None) -> str:
    if wanted is None:
        return new_run_id()
    try:
        run_id = check_run_id(wanted)
    except ValueError as exc:
        raise LocalRunError(f"--name: {exc}") from None
    if RecordBook(store).read(namespace, flow, run_id) is not None or store.list_steps(
            namespace, flow, run_id):
        raise LocalRunError(f"a run {flow}/{run_id} exists already in the local store; "
                            "choose another --name")
    return run_id


def _newest(book: RecordBook, namespace: str, flow: str) -> str:
    records = []
    for run_id in book.run_ids(namespace, flow):
        with contextlib.suppress(ValueError):
            found = book.read(namespace, flow, run_id)
            if found is not None:
                records.append(found)
    if not records:
        raise LocalRunError(f"{flow} has no local run in namespace {namespace} of the "
                            f"local store {book.store.objects!r}; nothing to resume")
    newest = max(records, key=lambda r: (str(r.status.get("startedAt") or ""), r.run_id))
    return newest.run_id


def resume_local(flow_cls: type[FlowSpec], graph: FlowGraph, origin_run_id: str | None,
                 step: str | None, settings: LocalSettings, out: TextIO | None = None,
                 err: TextIO | None = None) -> int:
    """Resume a local run as a new local run (`python flow.py resume --local`): its
    succeeded tasks are kept, its failed steps (or `step` and what follows) run again."""
    out, err = out or sys.stdout, err or sys.stderr
    root = store_dir()
    store = _open_store(root)
    try:
        namespace = local_namespace(settings.namespace)
        book = RecordBook(store)
        origin_run_id = origin_run_id or _newest(book, namespace, graph.name)
        try:
            found = book.read(namespace, graph.name, origin_run_id)
        except ValueError as exc:
            raise LocalRunError(f"the record of run {origin_run_id}: {exc}") from None
        prepared = _prepare(flow_cls, graph, store, settings, err)
        try:
            origin = check_origin(found, origin_run_id, prepared.flow, step,
                                  found.effective_phase() if found else None, settings.prog)
        except OriginError as exc:
            raise LocalRunError(str(exc)) from None
        attempts = read_origin(store, namespace, graph.name, origin_run_id)
        run_id = _new_run(store, namespace, graph.name, settings.run_id)
        record = RunRecord(flow=graph.name, run_id=run_id, namespace=namespace,
                           flow_file=prepared.flow_file, code_sha256=prepared.code_sha256,
                           user=_user(), parameters=dict(origin.parameters),
                           tags=tuple(dict.fromkeys([*origin.tags, *settings.tags])),
                           max_workers=settings.max_workers, origin_run_id=origin_run_id,
                           resume_step=step)
        extra = {"origin_run_id": origin_run_id}
        if record.tags:
            extra["tags"] = ",".join(record.tags)
        cloned = clone_kept(store, namespace, graph.name, origin_run_id, run_id, attempts,
                            kept_steps(prepared.flow, step), extra)
        return _execute(store, root, prepared, record, attempts, cloned, out, err,
                        settings.prog)
    finally:
        store.close()


@contextlib.contextmanager
def _interrupts(stop: threading.Event, signalled: threading.Event, wake: Any,
                console: _Console) -> Iterator[None]:
    """SIGINT/SIGTERM: the first sets `stop` and `signalled` (and wakes the loop), the
    second raises KeyboardInterrupt. Only in the main thread (elsewhere signals stay as
    they are)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if signalled.is_set():
            console.lines(report.interrupt_lines(first=False))
            raise KeyboardInterrupt
        signalled.set()
        stop.set()
        console.lines(report.interrupt_lines(first=True))
        threading.Thread(target=wake, daemon=True).start()   # not under our own lock

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _execute(store: Datastore, root: Path, prepared: _Prepared, record: RunRecord,
             origin: Sequence[ObservedAttempt], cloned: int, out: TextIO, err: TextIO,
             prog: str) -> int:
    """Drive the run of `record` to its end; the exit code."""
    book = RecordBook(store)
    book.write(record)
    launch = RunLaunch(flow_file=prepared.flow_file, code_dir=prepared.code_dir,
                       code_sha256=prepared.code_sha256, namespace=record.namespace,
                       flow=record.flow, run_id=record.run_id,
                       start_step=prepared.flow.start, parameters=record.parameters,
                       tags=record.tags, origin_run_id=record.origin_run_id,
                       user=record.user, steps=prepared.launch_steps)
    work = Path(tempfile.mkdtemp(prefix="kflow-local-"))
    try:
        return drive_to_end(
            prepared.flow, record.run_model(),
            lambda echo: ProcessExecutor(launch, store_dir_env(root), work, echo=echo,
                                         stop_grace=STOP_GRACE_SECONDS),
            origin=origin, save=lambda status: book.write(record.with_status(status)),
            header=report.header_lines(record.flow, record.run_id, root, record.max_workers,
                                       record.origin_run_id, cloned),
            outcome=lambda final: report.outcome_lines(record.flow, record.run_id, final,
                                                       prog),
            out=out, err=err)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def drive_to_end(flow: FlowModel, run: RunModel, executor_for: Callable[[Echo], Executor], *,
                 origin: Sequence[ObservedAttempt], save: Callable[[Mapping[str, Any]], None],
                 header: Sequence[str], outcome: Callable[[Mapping[str, Any]], list[str]],
                 out: TextIO, err: TextIO, stop: threading.Event | None = None) -> int:
    """Print `header`, drive `run` over the executor `executor_for(echo)` makes until it
    ended (progress lines as it goes, Ctrl-C handled as the module docstring says),
    `save` its status on every phase change and at most every `RECORD_EVERY_SECONDS`
    (always at the end), print `outcome(final status)`; the exit code. Shared by local
    and hybrid runs (`kflow.hybrid.session`). Setting `stop` from another thread stops
    the run as Ctrl-C does (the exit code is then 1: Stopped, not 130)."""
    console = _Console(out, err)
    console.lines(header)
    executor = executor_for(console.line)
    log = progress.ProgressLog()
    stop = stop or threading.Event()
    signalled = threading.Event()
    state: dict[str, Any] = {"status": dict(run.status), "written": 0.0, "phase": None}

    def on_status(status: Mapping[str, Any]) -> None:
        console.lines(log.feed(status))
        state["status"] = dict(status)
        now = time.monotonic()
        if status.get("phase") != state["phase"] or now - state["written"] >= \
                RECORD_EVERY_SECONDS:
            save(status)
            state["written"], state["phase"] = now, status.get("phase")

    interrupted = False
    final: dict[str, Any] = {}
    with _interrupts(stop, signalled, executor.wake, console):
        try:
            final = drive(flow, run, executor, origin=origin, on_status=on_status,
                          interrupted=stop)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            executor.close(0.0 if interrupted else STOP_GRACE_SECONDS)
    if interrupted or not final:
        final = {**state["status"], "phase": RunPhase.STOPPED.value}
    save(final)
    console.lines(outcome(final))
    if signalled.is_set() or interrupted:
        return EXIT_INTERRUPTED
    return 0 if final.get("phase") == RunPhase.SUCCEEDED.value else 1

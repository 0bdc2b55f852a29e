"""The client API's objects, with Metaflow's names and semantics: `Flow`, `Run`,
`Step`, `Task`, `DataArtifact`, and the namespace filter.

Owns: the object tree (``Flow('F')`` → ``Run('F/r')`` → ``Step('F/r/s')`` →
``Task('F/r/s/t')`` → ``DataArtifact('F/r/s/t/name')``), what each property means, and
the namespace filter (`namespace`, `get_namespace`, `default_namespace`). Reads go
through one process-wide `Source` (`kflow.client.source`), opened on first use from
kflow's configuration; `set_source` swaps it (tests, several clusters).

Semantics kept from Metaflow: iteration yields children newest first (runs by
creation; a flow's runs include running and failed ones); ``run.successful`` is the
end task's success, ``run.finished`` that the end task committed (a failed run is not
finished); ``run.data`` is the end task's data; a task reads its latest committed
attempt (``Task(pathspec, attempt=k)`` another). kflow adds ``run.status`` (the
FlowRun's phase while it exists), ``run.flowrun`` (its name) and ``Run('F/<FlowRun
name>')``. The default namespace is global (None): the Kubernetes namespace already
scopes runs; ``namespace('user:alice')`` filters by the ``user:`` system tag.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kflow.client.source import (
    CACHED_VALUE_BYTES,
    END_STEP,
    START_STEP,
    ClientError,
    RunInfo,
    Source,
    match_run,
)
from kflow.exceptions import KflowException
from kflow.store import ObjectNotFound, TaskKey, TaskMetadata
from kflow.store.records import ArtifactRef, ExceptionInfo
from kflow.trigger import Trigger

__all__ = [
    "DataArtifact",
    "Flow",
    "KflowNamespaceMismatch",
    "KflowNotFound",
    "Run",
    "Step",
    "Task",
    "default_namespace",
    "get_namespace",
    "get_source",
    "namespace",
    "set_source",
]


class KflowNotFound(KflowException):
    """The object does not exist (``Flow('X')`` with no run, a bad pathspec, ...)."""


class KflowNamespaceMismatch(KflowException):
    """The object exists but is outside the current namespace (see `namespace`)."""


SYSTEM_TAG_PREFIXES = ("user:", "runtime:", "flowrun:")
PREFETCH = 16           # runs whose end task `Flow.__iter__` reads ahead, in parallel
_shared: dict[str, Any] = {"namespace": None, "source": None}
_source_lock = threading.Lock()


def namespace(ns: str | None) -> str | None:
    """Set the namespace filter: a tag every object must carry (``'user:alice'``,
    ``'project:p'``), or None for every run. Returns it."""
    _shared["namespace"] = ns
    return ns


def get_namespace() -> str | None:
    return _shared["namespace"]  # type: ignore[no-any-return]


def default_namespace() -> str | None:
    """Back to the default namespace (global in kflow: see the module docstring)."""
    return namespace(None)


def set_source(source: Source | None) -> None:
    """Read from `source` from now on (None: open one from the configuration on next
    use). The previous one is closed."""
    with _source_lock:
        old, _shared["source"] = _shared["source"], source
    if old is not None and old is not source:
        old.close()


def get_source() -> Source:
    """The `Source` reads go through (opened from the configuration on first use)."""
    with _source_lock:
        if _shared["source"] is None:
            _shared["source"] = Source.from_config()
        return _shared["source"]  # type: ignore[no-any-return]


def _parts(pathspec: str, count: int, kind: str) -> list[str]:
    parts = pathspec.split("/") if isinstance(pathspec, str) else []
    if len(parts) != count or not all(parts):
        example = "/".join(["Flow", "run_id", "step", "task", "name"][:count])
        raise KflowNotFound(f"{kind}({pathspec!r}): a {kind} pathspec looks like "
                            f"'{example}'")
    return parts


def _time(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


class Flow:
    """A flow (by its class name): its runs, newest first."""

    def __init__(self, name: str) -> None:
        self.id = self.pathspec = name
        self._runs = [Run._from_info(i) for i in get_source().runs(name)]
        if not self._runs:
            raise KflowNotFound(
                f"Flow({name!r}) does not exist: no run of it in namespace "
                f"{get_source().namespace} (the flow's class name, e.g. Flow('TrainFlow'); "
                f"`kubectl get flowruns` lists the live runs)")
        ns = get_namespace()
        if ns is not None and not any(ns in r.tags for r in self._runs):
            raise KflowNamespaceMismatch(
                f"Flow({name!r}) has no run in namespace {ns!r}; "
                f"`namespace(None)` reads every run")

    def __repr__(self) -> str:
        return f"Flow('{self.id}')"

    def __iter__(self) -> Iterator[Run]:
        """The runs, newest first; each batch's end task is read in parallel before it
        is yielded (what `run.data` and `run.successful` read), so a loop over a hundred
        runs waits for a few batches instead of three round trips per run."""
        ns = get_namespace()
        runs = [r for r in self._runs if ns is None or ns in r.tags]
        batches = [runs[first:first + PREFETCH] for first in range(0, len(runs), PREFETCH)]
        source = get_source()
        ahead = source.submit_all(Run._prefetch, batches[0]) if batches else []
        for number, batch in enumerate(batches):
            for future in ahead:
                future.result()
            if number + 1 < len(batches):       # the next batch reads while this one is used
                ahead = source.submit_all(Run._prefetch, batches[number + 1])
            yield from batch

    def __getitem__(self, run_id: str) -> Run:
        info = match_run((r._info for r in self._runs), run_id)
        if info is None:
            raise KeyError(f"Flow {self.id} has no run {run_id!r}")
        return next(r for r in self._runs if r._info is info)._check_namespace()

    def __contains__(self, run_id: object) -> bool:
        try:
            self[str(run_id)]
        except (KeyError, KflowNamespaceMismatch):
            return False
        return True

    def runs(self, *tags: str) -> Iterator[Run]:
        """The runs carrying every one of `tags`, newest first."""
        return (r for r in self if all(t in r.tags for t in tags))

    @property
    def latest_run(self) -> Run | None:
        return next(iter(self), None)

    @property
    def latest_successful_run(self) -> Run | None:
        return next((r for r in self if r.successful), None)


class Run:
    """One run of a flow: ``Run('Flow/run_id')`` (or ``'Flow/<FlowRun name>'``)."""

    _info: RunInfo
    _end: Task | None
    _user_tags: frozenset[str] | None
    id: str
    flow_name: str
    pathspec: str

    def __init__(self, pathspec: str) -> None:
        flow, ident = _parts(pathspec, 2, "Run")
        info = get_source().run(flow, ident)
        if info is None:
            raise KflowNotFound(f"Run({pathspec!r}) does not exist: flow {flow} has no run "
                                f"with that run id or FlowRun name")
        self._init(info)
        self._check_namespace()

    @classmethod
    def _from_info(cls, info: RunInfo) -> Run:
        run = cls.__new__(cls)
        run._init(info)
        return run

    def _init(self, info: RunInfo) -> None:
        self._info = info
        self.id = info.run_id
        self.flow_name = info.flow
        self.pathspec = f"{info.flow}/{info.run_id}"
        self._end: Task | None = None
        self._user_tags: frozenset[str] | None = None

    def _check_namespace(self) -> Run:
        ns = get_namespace()
        if ns is not None and ns not in self.tags:
            raise KflowNamespaceMismatch(f"Run {self.pathspec} is not in namespace {ns!r}; "
                                         f"`namespace(None)` reads every run")
        return self

    def __repr__(self) -> str:
        return f"Run('{self.pathspec}')"

    # ------------------------------------------------------------------ identity
    @property
    def flowrun(self) -> str | None:
        """The FlowRun's name (None once it was deleted)."""
        return self._info.flowrun_name or None

    @property
    def flowrun_status(self) -> dict[str, Any]:
        """The FlowRun's status as read ({} once it was deleted)."""
        live = self._info.flowrun
        return dict(live.get("status") or {}) if live is not None else {}

    @property
    def user(self) -> str | None:
        """Who started the run (the FlowRun's ``kflow.dev/user``, else the task's user)."""
        if self._info.user is None:
            meta = get_source().start_meta(self.flow_name, self.id)
            return meta.user if meta is not None else None
        return self._info.user

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self._info.created_at, UTC)

    @property
    def origin_run_id(self) -> str | None:
        return self._info.origin_run_id

    @property
    def trigger(self) -> Trigger | None:
        """What started this run with ``@trigger_on_finish`` (as ``current.trigger`` in
        its steps: ``.run`` is the upstream `Run`); None if it was not triggered. From the
        FlowRun's ``spec.trigger``, else (the FlowRun deleted) the start task's record."""
        live = self._info.flowrun
        if live is not None:
            return Trigger.from_spec((live.get("spec") or {}).get("trigger"))
        meta = get_source().start_meta(self.flow_name, self.id)
        return Trigger.from_text(meta.extra.get("trigger")) if meta is not None else None

    # ---------------------------------------------------------------------- tags
    @property
    def system_tags(self) -> frozenset[str]:
        tags = {"runtime:kflow"}
        if self._info.user:
            tags.add(f"user:{self._info.user}")
        if self._info.flowrun_name:
            tags.add(f"flowrun:{self._info.flowrun_name}")
        return frozenset(tags)

    @property
    def user_tags(self) -> frozenset[str]:
        """The run's tags and those changed since (read once per Run object)."""
        if self._user_tags is None:
            changed = get_source().run_tags(self.flow_name, self.id)
            self._user_tags = frozenset((set(self._info.tags) | set(changed["added"]))
                                        - set(changed["removed"]))
        return self._user_tags

    @property
    def tags(self) -> frozenset[str]:
        return self.user_tags | self.system_tags

    def add_tag(self, tag: str) -> None:
        self.add_tags([tag])

    def add_tags(self, tags: list[str] | tuple[str, ...]) -> None:
        self.replace_tags([], list(tags))

    def remove_tag(self, tag: str) -> None:
        self.remove_tags([tag])

    def remove_tags(self, tags: list[str] | tuple[str, ...]) -> None:
        self.replace_tags(list(tags), [])

    def replace_tag(self, old: str, new: str) -> None:
        self.replace_tags([old], [new])

    def replace_tags(self, remove: list[str], add: list[str]) -> None:
        """Remove then add user tags (kept in the store: they outlive the FlowRun)."""
        for tag in [*remove, *add]:
            if not isinstance(tag, str) or not tag or len(tag) > 500:
                raise ClientError(f"tag {tag!r}: a tag is a non-empty string of at most "
                                  f"500 characters")
            if tag in self.system_tags or tag.startswith(SYSTEM_TAG_PREFIXES):
                raise ClientError(f"tag {tag!r} is a system tag (prefixes "
                                  f"{', '.join(SYSTEM_TAG_PREFIXES)}); it cannot be changed")
        source = get_source()
        changed = source.run_tags(self.flow_name, self.id)
        added = (set(changed["added"]) - set(remove)) | set(add)
        removed = (set(changed["removed"]) | set(remove)) - set(add)
        source.set_run_tags(self.flow_name, self.id, added, removed)
        self._user_tags = None

    # --------------------------------------------------------------------- state
    @property
    def status(self) -> str:
        """The FlowRun's phase while it exists (a local run's: its run record's); once it
        is gone, Succeeded or Failed from the end task's record, or Unknown (the run ended
        without an end task)."""
        if self._info.phase:
            return self._info.phase
        end = self.end_task
        if end is not None and end.finished:
            return "Succeeded" if end.successful else "Failed"
        return "Unknown"

    @property
    def end_task(self) -> Task | None:
        """The end task once it committed (None before: read again to see it)."""
        if self._end is None:
            self._end = self._finished_task(END_STEP)
        return self._end

    @property
    def successful(self) -> bool:
        end = self.end_task
        return end is not None and end.successful

    @property
    def finished(self) -> bool:
        return self.end_task is not None

    @property
    def finished_at(self) -> datetime | None:
        end = self.end_task
        return end.finished_at if end is not None else None

    @property
    def data(self) -> DataView | None:
        end = self.end_task
        return end.data if end is not None else None

    @property
    def parameters(self) -> dict[str, object]:
        """Parameter name → value (typed, from the start task; the FlowRun's strings
        while the start task has not committed)."""
        start = self._finished_task(START_STEP)
        try:
            names = json.loads(start.metadata.extra["parameters"]) if start else {}
        except (KeyError, ValueError):
            names = {}
        if start is not None and names:
            return {name: start[attr].data for name, attr in names.items() if attr in start}
        return dict(self._info.raw_parameters)

    def _finished_task(self, step: str) -> Task | None:
        """The step's first task once it committed, else None."""
        try:
            task = Task(f"{self.pathspec}/{step}/0")
        except KflowNotFound:
            return None
        return task if task.finished else None

    @property
    def code(self) -> Code | None:
        sha = self._info.code_sha256
        if sha is None:
            meta = get_source().start_meta(self.flow_name, self.id)
            sha = meta.code_sha256 if meta is not None else None
        return Code(sha) if sha else None

    def _prefetch(self) -> None:
        """Read the end task's record and artifact index now, and the (small) artifacts
        read from earlier runs' end tasks (on a reader thread: see `Flow.__iter__`), so
        `successful` and `data.<name>` answer from the cache."""
        end = self.end_task
        if end is None:
            return
        refs = end._refs()
        source = get_source()
        for name in source.likely_reads(self.flow_name, END_STEP):
            ref = refs.get(name)
            if ref is not None and ref.size <= CACHED_VALUE_BYTES:
                source.load(ref)

    # ------------------------------------------------------------------ children
    def steps(self) -> Iterator[Step]:
        """The steps that ran, newest first."""
        steps = [Step._make(self, s) for s in get_source().steps(self.flow_name, self.id)]
        steps = [s for s in steps if s._first is not None]
        return iter(sorted(steps, key=lambda s: s.created_at or datetime.min.replace(
            tzinfo=UTC), reverse=True))

    def __iter__(self) -> Iterator[Step]:
        return self.steps()

    def __getitem__(self, step: str) -> Step:
        made = Step._make(self, step)
        if made._first is None:
            raise KeyError(f"Run {self.pathspec} has no step {step!r} (yet)")
        return made

    def __contains__(self, step: object) -> bool:
        return str(step) in get_source().steps(self.flow_name, self.id)


class Step:
    """One step of a run: ``Step('Flow/run_id/step')``; its tasks (one, or a foreach's)."""

    _run: Run
    _tasks: list[str]
    _first: str | None
    id: str
    pathspec: str

    def __init__(self, pathspec: str) -> None:
        flow, run_id, step = _parts(pathspec, 3, "Step")
        made = Run(f"{flow}/{run_id}")[step]
        self.__dict__.update(made.__dict__)

    @classmethod
    def _make(cls, run: Run, step: str) -> Step:
        made = cls.__new__(cls)
        made._run, made.id = run, step
        made.pathspec = f"{run.pathspec}/{step}"
        made._tasks = get_source().tasks(run.flow_name, run.id, step)
        made._first = made._tasks[0] if made._tasks else None
        return made

    def __repr__(self) -> str:
        return f"Step('{self.pathspec}')"

    @property
    def task(self) -> Task:
        """The step's (first) task."""
        return Task(f"{self.pathspec}/{self._first}")

    def tasks(self) -> Iterator[Task]:
        return iter(Task(f"{self.pathspec}/{t}") for t in self._tasks)

    def __iter__(self) -> Iterator[Task]:
        return self.tasks()

    def __getitem__(self, task: str) -> Task:
        if str(task) not in self._tasks:
            raise KeyError(f"Step {self.pathspec} has no task {task!r}")
        return Task(f"{self.pathspec}/{task}")

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def created_at(self) -> datetime | None:
        return Task(f"{self.pathspec}/{self._first}").created_at if self._first else None

    @property
    def finished_at(self) -> datetime | None:
        ends = [t.finished_at for t in self.tasks()]
        return None if not ends or None in ends else max(e for e in ends if e is not None)


class Task:
    """One task: ``Task('Flow/run_id/step/task')``, its latest committed attempt (or the
    running one), or ``Task(pathspec, attempt=k)``."""

    def __init__(self, pathspec: str, attempt: int | None = None) -> None:
        flow, run_id, step, task = _parts(pathspec, 4, "Task")
        source = get_source()
        try:
            self._key = TaskKey(source.namespace, flow, run_id, step, task)
        except ValueError as exc:
            raise KflowNotFound(f"Task({pathspec!r}): {exc}") from None
        attempts = source.attempts(self._key)
        if attempt is None:
            done = [n for n, ok in attempts.items() if ok]
            attempt = max(done) if done else max(attempts, default=None)
        if attempt is None or attempt not in attempts:
            raise KflowNotFound(f"Task({pathspec!r}) has no record"
                                + (f" of attempt {attempt}" if attempt is not None else ""))
        self.pathspec, self.id = pathspec, task
        self.current_attempt = attempt
        self._attempt = self._key.attempt(attempt)
        self._committed = attempts[attempt]

    def __repr__(self) -> str:
        return f"Task('{self.pathspec}')"

    @property
    def metadata(self) -> TaskMetadata:
        """The attempt's record (``meta.json``): user, host, versions, timing, ..."""
        return get_source().meta(self._attempt, committed=self._committed)

    @property
    def metadata_dict(self) -> dict[str, Any]:
        meta = self.metadata
        return {"user": meta.user, "host": meta.host, "attempt": meta.attempt,
                "code_sha256": meta.code_sha256, "python_version": meta.python_version,
                "kflow_version": meta.kflow_version, **dict(meta.extra)}

    @property
    def finished(self) -> bool:
        return self._committed

    @property
    def successful(self) -> bool:
        return self._committed and self.metadata.succeeded

    @property
    def created_at(self) -> datetime | None:
        return _time(self.metadata.started_at)

    @property
    def finished_at(self) -> datetime | None:
        return _time(self.metadata.finished_at) if self._committed else None

    @property
    def index(self) -> int | None:
        """The foreach index of this task (None outside a foreach)."""
        text = self.metadata.extra.get("foreach_index")
        return int(text) if text is not None and text.isdigit() else None

    @property
    def exception(self) -> TaskException | None:
        info = self.metadata.exception
        return TaskException(info) if info is not None else None

    @property
    def stdout(self) -> str:
        return get_source().log(self._attempt, "stdout")

    @property
    def stderr(self) -> str:
        return get_source().log(self._attempt, "stderr")

    @property
    def code(self) -> Code | None:
        sha = self.metadata.code_sha256
        return Code(sha) if sha else None

    def _refs(self) -> dict[str, ArtifactRef]:
        if not self._committed:
            return {}
        return dict(get_source().index(self._attempt))

    @property
    def artifacts(self) -> list[DataArtifact]:
        return [DataArtifact._make(self, n, r) for n, r in self._refs().items()
                if not n.startswith("_")]

    @property
    def data(self) -> DataView:
        return DataView(self)

    def __iter__(self) -> Iterator[DataArtifact]:
        return iter(self.artifacts)

    def __getitem__(self, name: str) -> DataArtifact:
        refs = self._refs()
        if name not in refs:
            raise KeyError(f"Task {self.pathspec} has no artifact {name!r}")
        return DataArtifact._make(self, name, refs[name])

    def __contains__(self, name: object) -> bool:
        return str(name) in self._refs()


class TaskException:
    """A step's exception: ``type`` ("module.Class"), ``exception`` (the message),
    ``stacktrace``; ``str()`` is the traceback (Metaflow's wrapper's shape)."""

    def __init__(self, info: ExceptionInfo) -> None:
        self.type = info.type
        self.exception = info.message
        self.stacktrace = info.traceback

    def __str__(self) -> str:
        return self.stacktrace or f"{self.type}: {self.exception}"

    def __repr__(self) -> str:
        return f"TaskException({self.type}: {self.exception})"


class DataView:
    """A task's artifacts as attributes (``task.data.model``), loaded when read."""

    def __init__(self, task: Task) -> None:
        self._task = task

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._task[name].data
        except KeyError:
            raise AttributeError(f"{self._task.pathspec} has no artifact {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._task

    def __repr__(self) -> str:
        names = ", ".join(a.id for a in self._task.artifacts)
        return f"<data of {self._task.pathspec}: {names}>"


class DataArtifact:
    """One artifact: ``DataArtifact('Flow/run_id/step/task/name')``."""

    _task: Task
    _ref: ArtifactRef
    id: str
    pathspec: str

    def __init__(self, pathspec: str) -> None:
        flow, run_id, step, task, name = _parts(pathspec, 5, "DataArtifact")
        try:
            made = Task(f"{flow}/{run_id}/{step}/{task}")[name]
        except KeyError as exc:
            raise KflowNotFound(str(exc.args[0])) from None
        self.__dict__.update(made.__dict__)

    @classmethod
    def _make(cls, task: Task, name: str, ref: ArtifactRef) -> DataArtifact:
        made = cls.__new__(cls)
        made._task, made._ref, made.id = task, ref, name
        made.pathspec = f"{task.pathspec}/{name}"
        return made

    def __repr__(self) -> str:
        return f"DataArtifact('{self.pathspec}')"

    @property
    def data(self) -> object:
        source = get_source()
        key = self._task._key
        source.note_read(key.flow, key.step, self.id)
        return source.load(self._ref)

    @property
    def sha(self) -> str:
        return self._ref.sha256

    @property
    def size(self) -> int:
        return self._ref.size

    @property
    def type_name(self) -> str:
        return self._ref.type_name

    @property
    def finished_at(self) -> datetime | None:
        return self._task.finished_at

    @property
    def created_at(self) -> datetime | None:
        return self._task.finished_at


class Code:
    """A run's code package (content-addressed by its sha256)."""

    def __init__(self, sha256: str) -> None:
        self.sha256 = sha256
        self._data: bytes | None = None

    def __repr__(self) -> str:
        return f"Code({self.sha256[:12]})"

    @property
    def data(self) -> bytes:
        """The package's bytes (tar.gz), checked against its sha256."""
        if self._data is None:
            try:
                self._data = get_source().code_package(self.sha256)
            except ObjectNotFound:
                raise KflowNotFound(f"code package {self.sha256} is not in the store") from None
        return self._data

    @property
    def tarball(self) -> tarfile.TarFile:
        return tarfile.open(fileobj=io.BytesIO(self.data), mode="r:gz")

    @property
    def files(self) -> list[str]:
        with self.tarball as tar:
            return sorted(m.name for m in tar.getmembers() if m.isfile())

    def read(self, name: str) -> str:
        """One file of the package, as text."""
        with self.tarball as tar:
            member = tar.extractfile(name)
            if member is None:
                raise KflowNotFound(f"{name} is not a file of code package {self.sha256[:12]}")
            return member.read().decode("utf-8")

    def extract(self, directory: str | Path) -> Path:
        """Write the package's files under `directory`; that directory."""
        target = Path(directory)
        with self.tarball as tar:
            tar.extractall(target, filter="data")
        return target

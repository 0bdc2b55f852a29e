"""`Datastore`: the one object the runner and the client API talk to.

Owns: wiring an `ObjectStore` and a `StoreLayout` to artifacts (`cas.py`),
task attempt records (meta.json, artifacts.json, DONE) and logs, and the
read-side rules: an attempt counts only once its DONE marker exists
(`latest_done_attempt`), and the DONE marker is written last (`AttemptWriter.finish`,
`Datastore.clone_attempt`).
Code packages are stored here too (``code/<sha256>.tar.gz``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from kflow.store.backend import ObjectStore
from kflow.store.cas import DEFAULT_WORKERS, ContentAddressedStore
from kflow.store.errors import CorruptArtifact, ObjectNotFound, StoreError
from kflow.store.layout import AttemptKey, StoreLayout, TaskKey, validate_sha256
from kflow.store.logs import DEFAULT_INTERVAL, DEFAULT_MAX_BUFFER, LogSink, read_log
from kflow.store.records import ArtifactIndex, ArtifactRef, TaskMetadata

__all__ = ["AttemptWriter", "Datastore"]


def _task_sort_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split("."))


class Datastore:
    """Artifacts, task records and logs of every run in one object store."""

    def __init__(self, objects: ObjectStore, layout: StoreLayout | None = None, *,
                 workers: int = DEFAULT_WORKERS, verify: bool = True) -> None:
        self.objects = objects
        self.layout = layout or StoreLayout()
        self.cas = ContentAddressedStore(objects, self.layout, workers=workers, verify=verify)

    def __repr__(self) -> str:
        return f"Datastore({self.objects!r}, prefix={self.layout.prefix!r})"

    def close(self) -> None:
        """Stop worker threads (of the store and its backend, if it has any)."""
        self.cas.close()
        close = getattr(self.objects, "close", None)
        if callable(close):
            close()

    # ---------------------------------------------------------------- artifacts

    def save(self, value: object, name: str = "") -> ArtifactRef:
        """Store one value (once per content); its ref. `name` is for error messages."""
        return self.cas.save(value, name)

    def save_many(self, values: Mapping[str, object]) -> ArtifactIndex:
        """Store many values in parallel; their index."""
        return ArtifactIndex(self.cas.save_many(values))

    def load(self, ref: ArtifactRef | str) -> object:
        """The value behind `ref` (an `ArtifactRef` or a sha256)."""
        return self.cas.load(ref)

    def load_many(self, refs: Mapping[str, ArtifactRef | str],
                  names: Iterable[str] | None = None) -> dict[str, object]:
        """Load many artifacts in parallel (all of `refs`, or just `names`)."""
        chosen = refs if names is None else {n: refs[n] for n in names}
        return self.cas.load_many(chosen)

    # -------------------------------------------------------------- code packages

    def put_code_package(self, sha256: str, data: bytes) -> str:
        """Store a code package unless it is there; its key. Checks the digest."""
        validate_sha256(sha256)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise StoreError(f"code package bytes do not hash to {sha256}")
        key = self.layout.code_package(sha256)
        if not self.objects.exists(key):
            self.objects.put(key, data)
        return key

    def get_code_package(self, sha256: str) -> bytes:
        """The code package with this digest, verified."""
        data = self.objects.get(self.layout.code_package(sha256))
        if hashlib.sha256(data).hexdigest() != sha256:
            raise CorruptArtifact(f"code package {sha256} is corrupt in the store")
        return data

    # ------------------------------------------------------------ task attempts

    def attempt(self, key: AttemptKey) -> AttemptWriter:
        """The writer of one task attempt's records."""
        return AttemptWriter(self, key)

    def is_done(self, key: AttemptKey) -> bool:
        """Whether the attempt committed (its DONE marker exists)."""
        return self.objects.exists(self.layout.done(key))

    def list_attempts(self, task: TaskKey) -> dict[int, bool]:
        """Every attempt that recorded anything → whether it is DONE (one LIST)."""
        prefix = self.layout.task_prefix(task)
        found: dict[int, bool] = {}
        for obj in self.objects.list(prefix):
            rest = obj[len(prefix):]
            head, _, tail = rest.partition("/")
            number = self.layout.attempt_number(head)
            if number is not None:
                found[number] = found.get(number, False) or tail == "DONE"
        return dict(sorted(found.items()))

    def latest_done_attempt(self, task: TaskKey) -> int | None:
        """The highest attempt with a DONE marker, or None; attempts without
        DONE (running, or crashed before committing) are invisible."""
        done = [n for n, ok in self.list_attempts(task).items() if ok]
        return max(done) if done else None

    def list_tasks(self, namespace: str, flow: str, run_id: str, step: str) -> list[str]:
        """The task ids (foreach index paths) of a step that recorded anything,
        in index order (one non-recursive LIST)."""
        names = self._children(self.layout.step_prefix(namespace, flow, run_id, step))
        return sorted((n for n in names if self.layout.is_task_name(n)), key=_task_sort_key)

    def _children(self, prefix: str) -> set[str]:
        """The names of `prefix`'s immediate children (one non-recursive LIST)."""
        names = {self.layout.child_name(prefix, k) for k in self.objects.list(prefix, False)}
        return {n for n in names if n}

    def list_flows(self, namespace: str) -> list[str]:
        """The flows that recorded a run in `namespace` (one non-recursive LIST)."""
        return sorted(self._children(self.layout.namespace_prefix(namespace)))

    def list_runs(self, namespace: str, flow: str) -> list[str]:
        """The run ids of a flow that recorded anything (one non-recursive LIST)."""
        return sorted(self._children(self.layout.flow_prefix(namespace, flow)))

    def read_run_tags(self, namespace: str, flow: str, run_id: str) -> dict[str, list[str]]:
        """Tags changed after the run started: ``{"added": [...], "removed": [...]}``
        (both empty when never changed)."""
        try:
            doc = json.loads(self.objects.get(self.layout.run_tags(namespace, flow, run_id)))
        except ObjectNotFound:
            doc = {}
        return {key: [str(t) for t in doc.get(key) or []] for key in ("added", "removed")}

    def write_run_tags(self, namespace: str, flow: str, run_id: str,
                       added: Iterable[str], removed: Iterable[str]) -> None:
        self.objects.put(self.layout.run_tags(namespace, flow, run_id), json.dumps(
            {"added": sorted(set(added)), "removed": sorted(set(removed))}).encode())

    def list_steps(self, namespace: str, flow: str, run_id: str) -> list[str]:
        """The steps of a run that recorded anything, sorted by name."""
        return sorted(self._children(self.layout.run_prefix(namespace, flow, run_id)))

    def clone_attempt(self, source: AttemptKey, target: AttemptKey,
                      meta: TaskMetadata | None = None) -> TaskMetadata:
        """Copy a DONE attempt's records (meta.json, artifacts.json, then DONE) to another
        run's task: a ``resumeFrom`` run's cloned task. Artifacts are content-addressed,
        so nothing but the records is copied. The copy's meta.json says where it came
        from (``extra["cloned_from"]``). Idempotent: a second copy writes the same.
        `meta`: the source's ``meta.json`` when the caller read it already."""
        if not self.is_done(source):
            raise StoreError(f"cannot clone {source.task.pathspec} attempt {source.attempt}: "
                             "it has no DONE marker")
        meta = meta or self.read_meta(source)
        origin = f"{source.task.pathspec}/{source.attempt}"
        meta = replace(meta, extra={**meta.extra, "cloned_from": origin})
        self.commit(target, meta, self.objects.get(self.layout.artifacts(source)),
                    cloned_from=origin)
        return meta

    def commit(self, key: AttemptKey, meta: TaskMetadata, index: bytes,
               **done_extra: str) -> None:
        """An attempt's final records: meta.json and artifacts.json (side by side:
        readers trust neither before DONE), then DONE (with `done_extra`)."""
        layout, objects = self.layout, self.objects
        records = [(layout.meta(key), meta.to_json().encode()), (layout.artifacts(key), index)]
        with ThreadPoolExecutor(len(records), thread_name_prefix="kflow-commit") as pool:
            list(pool.map(lambda record: objects.put(*record), records))
        done = {"attempt": key.attempt, "exit_status": meta.exit_status, **done_extra}
        objects.put(layout.done(key), json.dumps(done).encode())

    def read_meta(self, key: AttemptKey) -> TaskMetadata:
        return TaskMetadata.from_json(self.objects.get(self.layout.meta(key)))

    def read_index(self, key: AttemptKey) -> ArtifactIndex:
        return ArtifactIndex.from_json(self.objects.get(self.layout.artifacts(key)))

    def read_log(self, key: AttemptKey, stream: str) -> bytes:
        """A log so far (readable while the task runs and after a crash)."""
        return read_log(self.objects, self.layout, key, stream)


class AttemptWriter:
    """Writes one task attempt's records; `finish` commits them (DONE last).

    Rerunning an attempt that `Datastore.is_done` reports done is the
    caller's decision; this writer overwrites nothing but meta.json.
    """

    def __init__(self, store: Datastore, key: AttemptKey) -> None:
        self.store = store
        self.key = key
        self._index = ArtifactIndex()

    @property
    def index(self) -> ArtifactIndex:
        """The artifacts saved or added so far."""
        return self._index

    def begin(self, meta: TaskMetadata) -> None:
        """Record the attempt's start (meta.json without an outcome)."""
        self.store.objects.put(self.store.layout.meta(self.key), meta.to_json().encode())

    def log_sink(self, stream: str, *, interval: float = DEFAULT_INTERVAL,
                 max_buffer: int = DEFAULT_MAX_BUFFER) -> LogSink:
        """A sink for "stdout" or "stderr", uploading segments while the task runs."""
        return LogSink(self.store.objects, self.store.layout, self.key, stream,
                       interval=interval, max_buffer=max_buffer)

    def save_artifacts(self, values: Mapping[str, object]) -> ArtifactIndex:
        """Store values (in parallel) and add them to this attempt's index; their refs."""
        saved = self.store.save_many(values)
        self._index = self._index.merged(saved)
        return saved

    def add_refs(self, refs: Mapping[str, ArtifactRef]) -> None:
        """Add already-stored artifacts (e.g. inherited from a parent) to the index."""
        self._index = self._index.merged(refs)

    def finish(self, meta: TaskMetadata) -> None:
        """Commit the outcome `meta` and the artifact index (`Datastore.commit`)."""
        self.store.commit(self.key, meta, self._index.to_json().encode())

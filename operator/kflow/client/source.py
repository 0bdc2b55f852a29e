"""Where the client API reads from: the FlowRun resources and the object store.

Owns: opening both from kflow's configuration (`Source.from_config`), listing a
flow's runs as `RunInfo` — live ones from the FlowRun resources (one LIST of Flows,
one of FlowRuns), finished ones from the store also after their FlowRun is gone (one
LIST, then the start task's record of each, read in parallel) — and the store reads
the client objects make, with the records of committed attempts cached (they never
change). Without a cluster configured, the store alone answers (the archive); local
runs (``python flow.py run --local``) are read from their local store the same way
(`Source.local`; `Source.from_config` picks it with ``$KFLOW_STORE_DIR`` set, or when no
object store is configured and a ``.kflow/store`` folder is found).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from kflow import api_types
from kflow.exceptions import KflowException
from kflow.store import (
    ArtifactIndex,
    ArtifactRef,
    AttemptKey,
    Datastore,
    ObjectNotFound,
    StoreError,
    TaskKey,
    TaskMetadata,
)

__all__ = ["END_STEP", "START_STEP", "ClientError", "RunInfo", "Source", "match_run"]

START_STEP = "start"
END_STEP = "end"
READERS = 16            # parallel store reads when listing runs
CACHED_VALUE_BYTES = 1 << 20    # artifact values kept in memory (and read ahead) up to this


class ClientError(KflowException):
    """The client API could not read what was asked (what happened and what to do)."""


@dataclass(frozen=True)
class RunInfo:
    """What is known of a run before reading its tasks: from its FlowRun when it still
    exists (`user` and `code_sha256` may then be None until the start task is read),
    else from its start task's record."""

    flow: str
    run_id: str
    namespace: str
    created_at: float                       # epoch seconds
    user: str | None
    tags: tuple[str, ...]
    code_sha256: str | None
    origin_run_id: str | None
    flowrun: Mapping[str, Any] | None       # the FlowRun as read; None once deleted
    raw_parameters: Mapping[str, str]       # spec.parameters of the FlowRun, as strings
    recorded_phase: str | None = None       # a local run's phase, from its run record

    @property
    def phase(self) -> str | None:
        """The FlowRun's phase, or a local run's recorded one (None once the FlowRun is
        gone, or before it started)."""
        if self.flowrun is None:
            return self.recorded_phase
        phase = (self.flowrun.get("status") or {}).get("phase")
        return str(phase) if phase else None

    @property
    def flowrun_name(self) -> str | None:
        if self.flowrun is None:
            return None
        return str(self.flowrun["metadata"]["name"])


def _epoch(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _split_tags(text: str | None) -> tuple[str, ...]:
    return tuple(t for t in (text or "").split(",") if t)


def match_run(infos: Iterable[RunInfo], ident: str) -> RunInfo | None:
    """The first of `infos` (newest first) whose run id or FlowRun name is `ident`, else
    whose run id is `ident`-<uid8> (the run of a deleted FlowRun of that name)."""
    infos = list(infos)
    found = [i for i in infos if ident in (i.run_id, i.flowrun_name)]
    if not found:
        found = [i for i in infos if i.run_id.rsplit("-", 1)[0] == ident]
    return found[0] if found else None


class Source:
    """The store, and the Kubernetes namespace's FlowRuns when a cluster is configured."""

    def __init__(self, store: Datastore, namespace: str, api_client: Any | None = None,
                 recorded_phase: Callable[[str, str], str | None] | None = None) -> None:
        self.store = store
        self.namespace = namespace
        self._api_client = api_client
        # (flow, run id) → the phase its run record says (local runs), else None
        self._recorded_phase = recorded_phase or (lambda flow, run_id: None)
        self._lock = threading.Lock()
        self._metas: dict[AttemptKey, TaskMetadata] = {}
        self._indexes: dict[AttemptKey, ArtifactIndex] = {}
        self._values: dict[str, object] = {}
        self._read_names: set[tuple[str, str, str]] = set()   # (flow, step, artifact)
        self._pool: ThreadPoolExecutor | None = None
        self._in_pool = threading.local()

    @classmethod
    def local(cls, root: str | Path | None = None, namespace: str | None = None) -> Source:
        """The local store of ``python flow.py run --local`` (store only, no cluster):
        `root`, else ``$KFLOW_STORE_DIR``, else the nearest ``.kflow/store`` (see
        `kflow.local.location`); `namespace` else ``$KFLOW_NAMESPACE``, else ``local``.
        ClientError when there is no such directory."""
        from kflow.local.location import local_namespace, store_dir
        from kflow.store import LocalObjectStore

        folder = Path(root).expanduser() if root is not None else store_dir()
        if not folder.is_dir():
            raise ClientError(f"no local store at {folder}: local runs (python <flow>.py run "
                              "--local) create it; set KFLOW_STORE_DIR to the store of "
                              "yours, or run from the folder you ran the flow in")
        from kflow.local.record import RecordBook

        store = Datastore(LocalObjectStore(folder))
        ns = local_namespace(namespace)
        book = RecordBook(store)

        def recorded(flow: str, run_id: str) -> str | None:
            try:
                record = book.read(ns, flow, run_id)
            except ValueError:                  # an unreadable record: no phase from it
                return None
            return record.effective_phase() if record is not None else None

        return cls(store, ns, None, recorded_phase=recorded)

    @classmethod
    def from_config(cls, settings: Any = None, namespace: str | None = None) -> Source:
        """From kflow's configuration (`kflow.config.load()` when None; `namespace`
        replaces its Kubernetes namespace): the object store is required; the cluster is
        used when a kubeconfig loads. With ``$KFLOW_STORE_DIR`` set, or no object store
        configured but a local store found (``.kflow/store`` here or above), the local
        store of local runs is read instead (`Source.local`)."""
        from kflow import config, kube
        from kflow.store.retry import RetryPolicy

        if settings is None and os.environ.get("KFLOW_STORE_DIR"):
            return cls.local(namespace=namespace)
        settings = settings or config.load()
        try:
            s3 = settings.require_s3()
        except config.ConfigError:
            from kflow.local.location import find_store_dir

            if find_store_dir(Path.cwd().absolute()) is None:
                raise
            return cls.local(namespace=namespace)
        store = Datastore(s3.object_store(RetryPolicy(attempts=3, deadline=10.0)))
        try:
            api_client = kube.api_client(settings)
        except config.ConfigError:
            api_client = None        # no cluster: the store alone (finished runs)
        return cls(store, namespace or settings.namespace, api_client)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()
        if self._api_client is not None:
            self._api_client.close()

    # ----------------------------------------------------------------- the cluster

    def _list(self, plural: str) -> list[dict[str, Any]]:
        if self._api_client is None:
            return []
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        api = client.CustomObjectsApi(self._api_client)
        try:
            listed = cast(dict[str, Any], api.list_namespaced_custom_object(
                api_types.GROUP, api_types.VERSION, self.namespace, plural))
        except ApiException as exc:
            if exc.status == 404:      # CRDs not installed: no live runs
                return []
            raise ClientError(
                f"listing {plural} in namespace {self.namespace} failed ({exc.status} "
                f"{exc.reason}); check the kubeconfig and RBAC (kubectl get {plural} -n "
                f"{self.namespace})") from exc
        except (HTTPError, OSError) as exc:
            raise ClientError(
                f"can't reach the Kubernetes API server to list {plural}: {exc}. Is the "
                f"cluster up (kflow cluster up)? To read finished runs from the store "
                f"only, unset KUBECONFIG / the kubeconfig in `kflow configure`.") from exc
        return list(listed.get("items") or [])

    def _live(self, flow: str) -> list[dict[str, Any]]:
        """The FlowRuns of the Flow resources deployed from flow class `flow`."""
        if self._api_client is None:
            return []
        resources = {str(f["metadata"]["name"]) for f in self._list(api_types.FLOW_PLURAL)
                     if (f.get("spec") or {}).get("flowName") == flow}
        return [r for r in self._list(api_types.FLOWRUN_PLURAL)
                if ((r.get("spec") or {}).get("flowRef") or {}).get("name") in resources
                and (r.get("metadata") or {}).get("uid")]

    # ------------------------------------------------------------------- listing

    def runs(self, flow: str) -> list[RunInfo]:
        """Every run of `flow`, newest first (live FlowRuns and the store's runs)."""
        infos: dict[str, RunInfo] = {}
        for run in self._live(flow):
            run_id = api_types.run_id(run)
            infos[run_id] = self._from_flowrun(flow, run_id, run)
        try:
            with self._reading(f"listing the runs of {flow}"):
                listed = self.store.list_runs(self.namespace, flow)
        except ValueError:       # a flow name that cannot be a store key: no runs there
            listed = []
        archived = [r for r in listed if r not in infos]
        starts = self._parallel(lambda run_id: self.start_meta(flow, run_id), archived)
        for run_id, meta in zip(archived, starts, strict=True):
            if meta is not None:
                infos[run_id] = self._from_meta(flow, run_id, meta)
        return self._newest_first(flow, list(infos.values()))

    def _newest_first(self, flow: str, infos: list[RunInfo]) -> list[RunInfo]:
        """Sorted by creation, newest first. A FlowRun's creationTimestamp has whole
        seconds: live runs created in the same second as another run are ordered by
        their start task's start (ms; not started yet: last of that second)."""
        seconds: dict[int, int] = {}
        for info in infos:
            seconds[int(info.created_at)] = seconds.get(int(info.created_at), 0) + 1
        tied = [i for i in infos if i.flowrun is not None and seconds[int(i.created_at)] > 1]
        precise = {i.run_id: i.created_at for i in infos}
        for info, meta in zip(tied, self._parallel(
                lambda i: self.start_meta(flow, i.run_id), tied), strict=True):
            precise[info.run_id] = (meta.started_at if meta is not None
                                    else int(info.created_at) + 0.999999)
        return sorted(infos, key=lambda i: (int(i.created_at), precise[i.run_id], i.run_id),
                      reverse=True)

    def run(self, flow: str, ident: str) -> RunInfo | None:
        """The run of `flow` whose run id, or FlowRun name, is `ident`."""
        return match_run(self.runs(flow), ident)

    def flows(self) -> list[str]:
        """The flow classes with a Flow resource or a recorded run in the namespace."""
        deployed = {str((f.get("spec") or {}).get("flowName"))
                    for f in self._list(api_types.FLOW_PLURAL)
                    if (f.get("spec") or {}).get("flowName")}
        with self._reading("listing the flows"):
            recorded = set(self.store.list_flows(self.namespace))
        return sorted(deployed | recorded)

    def find(self, ident: str) -> RunInfo | None:
        """A run from what a user types: ``Flow/run_id``, ``Flow/<FlowRun name>``, a run
        id or a FlowRun name (live, or deleted: its run id starts with the name)."""
        flow, sep, rest = ident.partition("/")
        if sep:
            return self.run(flow, rest)
        for run in self._list(api_types.FLOWRUN_PLURAL):
            if run["metadata"]["name"] == ident or api_types.run_id(run) == ident:
                flow_ref = ((run.get("spec") or {}).get("flowRef") or {}).get("name")
                for deployed in self._list(api_types.FLOW_PLURAL):
                    if deployed["metadata"]["name"] == flow_ref:
                        found = self.run(str(deployed["spec"]["flowName"]), ident)
                        if found is not None:
                            return found
        for name in self.flows():
            found = self.run(name, ident)
            if found is not None:
                return found
        return None

    def _from_flowrun(self, flow: str, run_id: str, run: Mapping[str, Any]) -> RunInfo:
        metadata, spec = run.get("metadata") or {}, run.get("spec") or {}
        status = run.get("status") or {}
        annotations = metadata.get("annotations") or {}
        origin = (spec.get("resumeFrom") or {}).get("run")
        return RunInfo(
            flow=flow, run_id=run_id, namespace=self.namespace,
            created_at=_epoch(metadata.get("creationTimestamp")) or 0.0,
            user=annotations.get(api_types.ANNOTATION_USER),
            tags=tuple(str(t) for t in spec.get("tags") or []),
            code_sha256=(status.get("flow") or {}).get("codeSha256"),
            origin_run_id=str(origin) if origin else None,
            flowrun=run,
            raw_parameters={str(k): str(v) for k, v in (spec.get("parameters") or {}).items()})

    def _from_meta(self, flow: str, run_id: str, meta: TaskMetadata) -> RunInfo:
        extra = meta.extra
        return RunInfo(
            flow=flow, run_id=run_id, namespace=self.namespace, created_at=meta.started_at,
            user=meta.user, tags=_split_tags(extra.get("tags")),
            code_sha256=meta.code_sha256, origin_run_id=extra.get("origin_run_id"),
            flowrun=None, raw_parameters={}, recorded_phase=self._recorded_phase(flow, run_id))

    # ------------------------------------------------------------------ records

    def start_meta(self, flow: str, run_id: str) -> TaskMetadata | None:
        """The start task's first record (the run's creation), None if it has none."""
        key = TaskKey(self.namespace, flow, run_id, START_STEP).attempt(0)
        try:
            return self.meta(key)
        except ObjectNotFound:
            return None

    def attempts(self, task: TaskKey) -> dict[int, bool]:
        """attempt → committed, for every attempt of `task` that recorded anything."""
        with self._reading(f"listing the attempts of {task.pathspec}"):
            return self.store.list_attempts(task)

    def meta(self, key: AttemptKey, committed: bool = False) -> TaskMetadata:
        """An attempt's ``meta.json`` (cached once the attempt is `committed`)."""
        with self._lock:
            if key in self._metas:
                return self._metas[key]
        with self._reading(f"reading {key.task.pathspec}"):
            meta = self.store.read_meta(key)
        if committed or meta.finished_at is not None:
            with self._lock:
                self._metas[key] = meta
        return meta

    def index(self, key: AttemptKey) -> ArtifactIndex:
        """A committed attempt's artifact index (cached)."""
        with self._lock:
            if key in self._indexes:
                return self._indexes[key]
        try:
            with self._reading(f"reading the artifacts of {key.task.pathspec}"):
                index = self.store.read_index(key)
        except ObjectNotFound:
            return ArtifactIndex()
        with self._lock:
            self._indexes[key] = index
        return index

    def load(self, ref: ArtifactRef) -> object:
        """An artifact's value (content-addressed: cached by sha256)."""
        with self._lock:
            if ref.sha256 in self._values:
                return self._values[ref.sha256]
        with self._reading(f"loading artifact {ref.sha256[:12]}"):
            value = self.store.load(ref)
        if ref.size <= CACHED_VALUE_BYTES:  # small values only: the cache stays small
            with self._lock:
                self._values[ref.sha256] = value
        return value

    def log(self, key: AttemptKey, stream: str) -> str:
        with self._reading(f"reading the {stream} of {key.task.pathspec}"):
            return self.store.read_log(key, stream).decode("utf-8", errors="replace")

    def tasks(self, flow: str, run_id: str, step: str) -> list[str]:
        with self._reading(f"listing the tasks of {flow}/{run_id}/{step}"):
            return self.store.list_tasks(self.namespace, flow, run_id, step)

    def steps(self, flow: str, run_id: str) -> list[str]:
        with self._reading(f"listing the steps of {flow}/{run_id}"):
            return self.store.list_steps(self.namespace, flow, run_id)

    def run_tags(self, flow: str, run_id: str) -> dict[str, list[str]]:
        """Tags added and removed after the run started (see `Datastore.read_run_tags`)."""
        with self._reading(f"reading the tags of {flow}/{run_id}"):
            return self.store.read_run_tags(self.namespace, flow, run_id)

    def set_run_tags(self, flow: str, run_id: str, added: Iterable[str],
                     removed: Iterable[str]) -> None:
        with self._reading(f"writing the tags of {flow}/{run_id}"):
            self.store.write_run_tags(self.namespace, flow, run_id, added, removed)

    def code_package(self, sha256: str) -> bytes:
        with self._reading(f"reading code package {sha256[:12]}"):
            return self.store.get_code_package(sha256)

    def submit_all(self, read: Callable[[Any], Any], items: Iterable[Any]) -> list[Future[Any]]:
        """`read` of each item on the source's reader threads (one pool for the source's
        life); on a reader thread itself, run at once (a pool waiting on itself would
        deadlock)."""
        items = list(items)
        if getattr(self._in_pool, "yes", False) or len(items) <= 1:
            done: list[Future[Any]] = []
            for item in items:
                future: Future[Any] = Future()
                try:
                    future.set_result(read(item))
                except Exception as exc:  # delivered by result(), as from the pool
                    future.set_exception(exc)
                done.append(future)
            return done
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(READERS, thread_name_prefix="kflow-client",
                                                initializer=self._mark_reader)
            pool = self._pool
        return [pool.submit(read, item) for item in items]

    def _mark_reader(self) -> None:
        self._in_pool.yes = True

    def _parallel(self, read: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        return [future.result() for future in self.submit_all(read, items)]

    def note_read(self, flow: str, step: str, name: str) -> None:
        """An artifact was read: `likely_reads` offers it for the flow's other runs."""
        with self._lock:
            self._read_names.add((flow, step, name))

    def likely_reads(self, flow: str, step: str) -> list[str]:
        """The artifacts of `step` read so far in some run of `flow` (what a loop over
        runs reads next)."""
        with self._lock:
            return sorted(n for f, s, n in self._read_names if (f, s) == (flow, step))

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """Store errors inside the block become one `ClientError` saying what was being
        read; `ObjectNotFound` (a missing record: the callers' business) passes."""
        try:
            yield
        except ObjectNotFound:
            raise
        except StoreError as exc:
            raise self._store_error(what, exc) from exc

    def _store_error(self, what: str, exc: Exception) -> ClientError:
        endpoint = getattr(getattr(self.store.objects, "config", None), "endpoint", "")
        return ClientError(f"{what} from the object store {endpoint} failed: "
                           f"{str(exc).rstrip('.')}. Is it up, and are the credentials right? "
                           f"`kflow configure --show` shows the settings in use.")

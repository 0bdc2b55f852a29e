"""A task's view of its artifacts: parent values loaded on first touch, merges by reference.

Owns: `TaskArtifacts` (the artifacts a flow object inherits as store refs,
loading each on first read), the flow subclass the runner instantiates
(`task_flow_class`: `__getattr__` reads through the view, ``del self.x``
drops an inherited artifact, `merge_artifacts` copies refs without loading
data), lazy parameter values, and `plan_persist`, which decides what the
task must upload and what it passes on as references.

Read-ahead: a step that touches many inherited artifacts one by one (a loop
over hundreds of small ones) would pay one store round trip per artifact.
After `READAHEAD_AFTER` lazy loads, a miss loads a batch instead: the missed
artifact plus up to `READAHEAD_BATCH` - 1 other small unread ones (each under
`READAHEAD_MAX_SIZE` bytes, at most `READAHEAD_MAX_BYTES` in all), in
parallel, through the reader's `load_many` if it has one (not for a store on
local disk, where a file read costs less than a thread hand-off). Read-ahead values
are not "loaded" (nothing changes for `plan_persist`) until the step reads
them; if a batch fails, read-ahead stops and loads go back to one at a time.

What is persisted at the end of a task:

* every attribute the step set (``self.x = ...``, in the object's
  ``__dict__``), serialized and uploaded (the store skips blobs it has);
* every inherited artifact the step did not replace, as its parent's ref
  (never re-uploaded), except a mutable value the step loaded and changed
  in place (``self.items.append(3)``), which is re-encoded and saved.

Must not import: minio, the Kubernetes client. Reads values only through
the `ArtifactReader` protocol (the datastore in the runner, a dict in tests).
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from kflow.exceptions import KflowException
from kflow.inputs import EPHEMERAL_ATTRIBUTES, Inputs
from kflow.store.local import LocalObjectStore
from kflow.store.records import ArtifactRef

if TYPE_CHECKING:
    from kflow.flowspec import FlowSpec

__all__ = [
    "VIEW_ATTRIBUTE",
    "ArtifactReader",
    "PersistPlan",
    "TaskArtifacts",
    "attach",
    "plan_persist",
    "task_flow_class",
]

VIEW_ATTRIBUTE = "_kflow_view"
_NOT_ARTIFACTS = EPHEMERAL_ATTRIBUTES | {VIEW_ATTRIBUTE}
# Types whose values cannot change in place: a loaded one is passed on by ref unchecked.
_IMMUTABLE = (str, bytes, int, float, complex, bool, type(None), frozenset, range)
READAHEAD_AFTER = 16                 # lazy loads one at a time before reading ahead
READAHEAD_BATCH = 256                # artifacts per read-ahead batch
READAHEAD_MAX_SIZE = 256 * 1024      # only artifacts smaller than this are read ahead
READAHEAD_MAX_BYTES = 16 << 20       # stored bytes per read-ahead batch
# Set while FlowSpec.merge_artifacts runs: reads of inputs return refs, not values.
_MERGING: contextvars.ContextVar[bool] = contextvars.ContextVar("kflow_merging", default=False)


class ArtifactReader(Protocol):
    """Loads one artifact value from its ref."""

    def load(self, ref: ArtifactRef) -> Any:
        """The stored value."""
        ...


@dataclass(frozen=True)
class _MergedRef:
    """An input's artifact travelling through `merge_artifacts` as a reference."""

    ref: ArtifactRef


class TaskArtifacts:
    """Artifacts a flow object holds as refs, loaded on first read.

    `origin` says where they come from, for the error of a missing one
    (``step 'train' (task 3), the parent of 'choose'``).
    """

    def __init__(self, refs: Mapping[str, ArtifactRef], reader: ArtifactReader,
                 origin: str | None = None) -> None:
        self.refs: dict[str, ArtifactRef] = dict(refs)
        self.loaded: dict[str, Any] = {}
        self.reader = reader
        self.origin = origin
        self._misses = 0
        self._ahead: dict[str, tuple[ArtifactRef, Any]] = {}
        load_many = getattr(reader, "load_many", None)
        local = isinstance(getattr(reader, "objects", None), LocalObjectStore)
        self._load_many: Callable[[Mapping[str, ArtifactRef]], Mapping[str, Any]] | None = \
            load_many if callable(load_many) and not local else None

    def get(self, name: str, owner: str) -> Any:
        """The value of `name` (loaded now if not yet); AttributeError if there is none."""
        ref = self.refs.get(name)
        if ref is None:
            raise AttributeError(self.missing_message(name, owner))
        if _MERGING.get():
            return _MergedRef(ref)
        if name in self.loaded:
            return self.loaded[name]
        ahead = self._ahead.pop(name, None)
        if ahead is not None and ahead[0] == ref:
            value = ahead[1]
        else:
            self._misses += 1
            value = self._read_ahead(name, ref) if self._misses > READAHEAD_AFTER \
                else self.reader.load(ref)
        self.loaded[name] = value
        return value

    def _read_ahead(self, name: str, ref: ArtifactRef) -> Any:
        """Load `name` together with a batch of other small unread artifacts."""
        load_many = self._load_many
        if load_many is None or ref.size >= READAHEAD_MAX_SIZE:
            return self.reader.load(ref)
        batch = {name: ref}
        total = ref.size
        for other, other_ref in self.refs.items():
            if len(batch) >= READAHEAD_BATCH:
                break
            if other in batch or other in self.loaded or other in self._ahead \
                    or other_ref.size >= READAHEAD_MAX_SIZE \
                    or total + other_ref.size > READAHEAD_MAX_BYTES:
                continue
            batch[other] = other_ref
            total += other_ref.size
        try:
            values = load_many(batch)
        except Exception:
            self._load_many = None  # e.g. one value cannot be unpickled here: stop guessing
            return self.reader.load(ref)
        for other, other_ref in batch.items():
            if other != name:
                self._ahead[other] = (other_ref, values[other])
        return values[name]

    def missing_message(self, name: str, owner: str) -> str:
        if self.origin is None:
            return f"'{owner}' object has no attribute '{name}'"
        return f"artifact '{name}' was not set by {self.origin}"

    def drop(self, name: str) -> bool:
        """Forget an inherited artifact (``del self.x``); whether there was one."""
        self.loaded.pop(name, None)
        self._ahead.pop(name, None)
        return self.refs.pop(name, None) is not None


class _LazyParameters(dict[str, Any]):
    """``_parameter_values`` of a task: parameter name → value, loaded when first read."""

    def __init__(self, view: TaskArtifacts, attrs: Mapping[str, str], owner: str) -> None:
        super().__init__()
        self._view, self._attrs, self._owner = view, dict(attrs), owner

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._attrs

    def __getitem__(self, key: str) -> Any:
        if not dict.__contains__(self, key) and key in self._attrs:
            dict.__setitem__(self, key, self._view.get(self._attrs[key], self._owner))
        return dict.__getitem__(self, key)


def _view(flow: object) -> TaskArtifacts | None:
    view: TaskArtifacts | None = flow.__dict__.get(VIEW_ATTRIBUTE)
    return view


class _StoreArtifacts:
    """The `kflow.inputs.ArtifactSource` of a store-backed flow object (hashes without loading)."""

    def __init__(self, flow: object) -> None:
        self._flow = flow

    def artifact_names(self) -> list[str]:
        own = [name for name in vars(self._flow)
               if not name.startswith("__") and name not in _NOT_ARTIFACTS]
        view = _view(self._flow)
        inherited = [name for name in (view.refs if view else ()) if name not in own]
        return own + inherited

    def artifact_sha(self, name: str) -> str:
        own = vars(self._flow)
        if name in own:
            from kflow.store.encoding import encode

            return encode(own[name], name).sha256()
        view = _view(self._flow)
        if view is None or name not in view.refs:
            raise KeyError(name)
        return view.refs[name].sha256


def _flow_methods(base: type[FlowSpec]) -> dict[str, Any]:
    """The methods a task's flow class adds to the user's class `base`."""

    base_setattr = cast(Callable[[Any, str, Any], None], base.__setattr__)
    base_merge = cast(Callable[..., None], base.merge_artifacts)

    def __getattr__(self: Any, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        view = _view(self)
        if view is None:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        return view.get(name, type(self).__name__)

    def __setattr__(self: Any, name: str, value: Any) -> None:
        view = _view(self)
        if isinstance(value, _MergedRef):  # merge_artifacts copying a reference
            base_setattr(self, name, None)  # the constant / read-only checks
            del self.__dict__[name]
            if view is not None:
                view.refs[name] = value.ref
                view.loaded.pop(name, None)
            return
        base_setattr(self, name, value)

    def __delattr__(self: Any, name: str) -> None:
        own = self.__dict__.pop(name, _ABSENT) is not _ABSENT
        view = _view(self)
        inherited = view.drop(name) if view is not None else False
        if not (own or inherited):
            raise AttributeError(name)

    def merge_artifacts(self: Any, inputs: Inputs, include: Collection[str] | None = None,
                        exclude: Collection[str] | None = None) -> None:
        """Like `FlowSpec.merge_artifacts`, but copies references: no value is loaded."""
        caller = sys._getframe(1)
        token = _MERGING.set(True)
        try:
            base_merge(self, inputs, include=include, exclude=exclude)
        except Exception as exc:
            # Point the error at the user's call, not at this wrapper.
            if isinstance(exc, KflowException):
                exc.file, exc.line = caller.f_code.co_filename, caller.f_lineno
            raise
        finally:
            _MERGING.reset(token)

    return {"__getattr__": __getattr__, "__setattr__": __setattr__,
            "__delattr__": __delattr__, "merge_artifacts": merge_artifacts}


_ABSENT = object()
_CLASSES: dict[type, type[FlowSpec]] = {}


def task_flow_class(flow_cls: type[FlowSpec]) -> type[FlowSpec]:
    """A subclass of the user's flow class whose objects read artifacts through a view.

    Same name, module and steps; only attribute access, deletion and
    `merge_artifacts` differ. One class per flow class (cached).
    """
    found = _CLASSES.get(flow_cls)
    if found is None:
        namespace = {
            **_flow_methods(flow_cls),
            "__module__": flow_cls.__module__,
            "__qualname__": flow_cls.__qualname__,
            "__doc__": flow_cls.__doc__,
        }
        found = type(flow_cls.__name__, (flow_cls,), namespace)
        _CLASSES[flow_cls] = found
    return found


def attach(flow: FlowSpec, view: TaskArtifacts,
           parameters: Mapping[str, str] | None = None) -> None:
    """Give `flow` its inherited artifacts and, for `parameters` (parameter name →
    artifact name), parameter values read from those artifacts when first used."""
    flow.__dict__[VIEW_ATTRIBUTE] = view
    flow.__dict__["_artifact_source"] = _StoreArtifacts(flow)
    if parameters:
        flow.__dict__["_parameter_values"] = _LazyParameters(view, parameters,
                                                             type(flow).__name__)


@dataclass(frozen=True)
class PersistPlan:
    """What a finished task stores: values to upload and refs passed on unchanged."""

    values: dict[str, Any]
    carried: dict[str, ArtifactRef]


def plan_persist(flow: object, sha_of: Callable[[Any, str], str]) -> PersistPlan:
    """Split the task's artifacts into values to save and refs to carry (see module doc).

    `sha_of(value, name)` gives the content address a value would be stored
    under; it is called only for inherited mutable values the step loaded.
    """
    own = {name: value for name, value in vars(flow).items()
           if not name.startswith("__") and name not in _NOT_ARTIFACTS}
    carried: dict[str, ArtifactRef] = {}
    view = _view(flow)
    if view is None:
        return PersistPlan(own, carried)
    for name, ref in view.refs.items():
        if name in own:
            continue
        if name in view.loaded:
            value = view.loaded[name]
            if not isinstance(value, _IMMUTABLE) and sha_of(value, name) != ref.sha256:
                own[name] = value  # changed in place
                continue
        carried[name] = ref
    return PersistPlan(own, carried)

"""Where everything lives in the object store: the one owner of the key scheme.

Owns: every key kflow reads or writes in the object store, for the runner, the
client API, the operator and `kflow.packaging`. Pure: no I/O, no imports
beyond the standard library. Keys are relative to the bucket and start with
an optional prefix (``KFLOW_S3_PREFIX``, default empty)::

    <prefix>data/<sha[:2]>/<sha>                       content-addressed artifact blobs
    <prefix>code/<sha256>.tar.gz                       code packages
    <prefix>runs/<namespace>/<flow>/<run_id>/<step>/<task>/<attempt>/
        meta.json                                      task metadata (at start; again at end)
        artifacts.json                                 artifact index: name -> ref
        logs/stdout/000001, logs/stderr/000001, ...    log segments, in order
        DONE                                           commit marker, written last
    <prefix>tags/<namespace>/<flow>/<run_id>.json      tags added / removed after the run
                                                       started (the client API's add_tag)
    <prefix>local/<namespace>/<flow>/<run_id>.json     a local run's record (`kflow.local`:
                                                       its spec and last status)

`task` is the foreach index path ("0" outside foreach, "3" or "3.1" inside
nested foreach); `attempt` is an int (0, 1, ...). A segment is a path
component of safe characters, so distinct inputs always give distinct keys
and no key is a prefix-collision of another's directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "LOG_STREAMS",
    "AttemptKey",
    "StoreLayout",
    "TaskKey",
    "validate_sha256",
]

LOG_STREAMS: tuple[str, ...] = ("stdout", "stderr")

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,252}$")
_TASK = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_SHA256 = re.compile(r"^[a-f0-9]{64}$")
_PREFIX = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.\-]*/)*$")
_SEGMENT_DIGITS = 6


def _segment(kind: str, value: str) -> str:
    if not _SEGMENT.match(value):
        raise ValueError(
            f"{kind} {value!r} cannot be part of a store key: use letters, digits, "
            "'_', '-' and '.', starting with a letter, digit or '_'"
        )
    return value


def validate_sha256(sha256: str) -> str:
    """`sha256` if it is a lowercase hex sha256 digest, else ValueError."""
    if not _SHA256.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


@dataclass(frozen=True)
class TaskKey:
    """One task of a run: namespace, flow, run id, step and foreach index path."""

    namespace: str
    flow: str
    run_id: str
    step: str
    task: str = "0"

    def __post_init__(self) -> None:
        _segment("namespace", self.namespace)
        _segment("flow", self.flow)
        _segment("run id", self.run_id)
        _segment("step", self.step)
        if not _TASK.match(self.task):
            raise ValueError(
                f"task {self.task!r} is not a foreach index path like '0', '3' or '3.1'"
            )

    def attempt(self, attempt: int) -> AttemptKey:
        """This task's attempt number `attempt`."""
        return AttemptKey(self, attempt)

    @property
    def pathspec(self) -> str:
        """``flow/run_id/step/task`` (Metaflow's pathspec, without the namespace)."""
        return f"{self.flow}/{self.run_id}/{self.step}/{self.task}"


@dataclass(frozen=True)
class AttemptKey:
    """One attempt of a task."""

    task: TaskKey
    attempt: int

    def __post_init__(self) -> None:
        if isinstance(self.attempt, bool) or not isinstance(self.attempt, int) \
                or self.attempt < 0:
            raise ValueError(f"attempt must be an int >= 0, got {self.attempt!r}")


@dataclass(frozen=True)
class StoreLayout:
    """The key scheme under one prefix ("" or "some/dirs/")."""

    prefix: str = ""

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(
                f"store prefix {self.prefix!r} must be '' or safe path segments ending in '/'"
            )

    @classmethod
    def from_prefix(cls, prefix: str) -> StoreLayout:
        """A layout for a user-given prefix: surrounding '/' trimmed, one '/' appended."""
        clean = prefix.strip("/")
        return cls(f"{clean}/" if clean else "")

    # ------------------------------------------------------------ content-addressed

    @property
    def data_prefix(self) -> str:
        return f"{self.prefix}data/"

    def blob(self, sha256: str) -> str:
        """The key of the artifact blob with this sha256: ``data/<sha[:2]>/<sha>``."""
        validate_sha256(sha256)
        return f"{self.prefix}data/{sha256[:2]}/{sha256}"

    def code_package(self, sha256: str) -> str:
        """The key of the code package with this sha256: ``code/<sha256>.tar.gz``."""
        validate_sha256(sha256)
        return f"{self.prefix}code/{sha256}.tar.gz"

    # ------------------------------------------------------------------- run records

    def run_prefix(self, namespace: str, flow: str, run_id: str) -> str:
        """``runs/<namespace>/<flow>/<run_id>/`` (everything a run recorded)."""
        return f"{self.flow_prefix(namespace, flow)}{_segment('run id', run_id)}/"

    def namespace_prefix(self, namespace: str) -> str:
        """``runs/<namespace>/``: its immediate children are the flows that ran."""
        return f"{self.prefix}runs/{_segment('namespace', namespace)}/"

    def flow_prefix(self, namespace: str, flow: str) -> str:
        """``runs/<namespace>/<flow>/``: its immediate children are the flow's runs."""
        return f"{self.namespace_prefix(namespace)}{_segment('flow', flow)}/"

    def run_tags(self, namespace: str, flow: str, run_id: str) -> str:
        """``tags/<namespace>/<flow>/<run_id>.json``: tags changed after the run started
        (outside the run's prefix, so a run's listing holds only its steps)."""
        return (f"{self.prefix}tags/{_segment('namespace', namespace)}/"
                f"{_segment('flow', flow)}/{_segment('run id', run_id)}.json")

    def local_run(self, namespace: str, flow: str, run_id: str) -> str:
        """``local/<namespace>/<flow>/<run_id>.json``: the record of a run made by
        `kflow.local` (outside the run's prefix, like the tags)."""
        return (f"{self.prefix}local/{_segment('namespace', namespace)}/"
                f"{_segment('flow', flow)}/{_segment('run id', run_id)}.json")

    def local_runs_prefix(self, namespace: str, flow: str) -> str:
        """``local/<namespace>/<flow>/``: the records of the flow's local runs."""
        return f"{self.prefix}local/{_segment('namespace', namespace)}/{_segment('flow', flow)}/"

    def step_prefix(self, namespace: str, flow: str, run_id: str, step: str) -> str:
        """The prefix whose immediate children are the step's task directories."""
        return f"{self.run_prefix(namespace, flow, run_id)}{_segment('step', step)}/"

    def task_prefix(self, task: TaskKey) -> str:
        """The prefix whose immediate children are the task's attempt directories."""
        return f"{self.step_prefix(task.namespace, task.flow, task.run_id, task.step)}{task.task}/"

    def attempt_prefix(self, key: AttemptKey) -> str:
        return f"{self.task_prefix(key.task)}{key.attempt}/"

    def meta(self, key: AttemptKey) -> str:
        return f"{self.attempt_prefix(key)}meta.json"

    def artifacts(self, key: AttemptKey) -> str:
        return f"{self.attempt_prefix(key)}artifacts.json"

    def done(self, key: AttemptKey) -> str:
        return f"{self.attempt_prefix(key)}DONE"

    def log_prefix(self, key: AttemptKey, stream: str) -> str:
        if stream not in LOG_STREAMS:
            raise ValueError(f"log stream must be one of {LOG_STREAMS}, got {stream!r}")
        return f"{self.attempt_prefix(key)}logs/{stream}/"

    def log_segment(self, key: AttemptKey, stream: str, index: int) -> str:
        """Segment `index` (>= 1) of a log: ``logs/<stream>/000001``; sorts by index."""
        if index < 1:
            raise ValueError(f"log segment index must be >= 1, got {index}")
        return f"{self.log_prefix(key, stream)}{index:0{_SEGMENT_DIGITS}d}"

    # ------------------------------------------------------------------- parsing

    @staticmethod
    def child_name(parent: str, key: str) -> str | None:
        """The first path segment of `key` below `parent` (``a/b/`` + ``a/b/c/d`` → ``c``)."""
        if not key.startswith(parent):
            return None
        rest = key[len(parent):]
        name = rest.split("/", 1)[0]
        return name or None

    @staticmethod
    def log_segment_index(name: str) -> int | None:
        """The index of a log segment's last path segment, or None if it is not one."""
        return int(name) if name.isdigit() else None

    @staticmethod
    def attempt_number(name: str) -> int | None:
        """The attempt number an attempt directory name stands for, or None."""
        return int(name) if name.isdigit() and (name == "0" or name[0] != "0") else None

    @staticmethod
    def is_task_name(name: str) -> bool:
        return bool(_TASK.match(name))

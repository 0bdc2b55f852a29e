"""The JSON records of a task attempt: artifact refs and index, task metadata.

Owns: the value types written to ``artifacts.json`` and ``meta.json`` and their
(versioned) JSON forms. Pure apart from `TaskMetadata.collect`, which reads
the process environment (user, host, versions).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import platform
import socket
import traceback as tb
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = [
    "ArtifactIndex",
    "ArtifactRef",
    "ExceptionInfo",
    "TaskMetadata",
]

RECORD_VERSION = 1


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def _iso_ms(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def _timing(doc: object) -> dict[str, float]:
    """``meta.json``'s ``timing``, tolerant: entries that are not ISO times are dropped."""
    if not isinstance(doc, Mapping):
        return {}
    out: dict[str, float] = {}
    for key, text in doc.items():
        try:
            value = _from_iso(text)
        except ValueError:
            continue
        if value is not None:
            out[str(key)] = value
    return out


def _from_iso(text: object) -> float | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO-8601 time, got {text!r}")
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class ArtifactRef:
    """Where an artifact's bytes are and how to read them.

    `sha256` is the content address (of the stored bytes), `size` the stored
    size, `type_name` the value's qualified type name, `encoding` how the
    bytes decode (see `kflow.store.encoding`, e.g. ``ndarray``, ``pickle+zstd``).
    """

    sha256: str
    size: int
    type_name: str
    encoding: str

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "type": self.type_name,
                "encoding": self.encoding}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ArtifactRef:
        return cls(sha256=str(doc["sha256"]), size=int(doc["size"]),
                   type_name=str(doc["type"]), encoding=str(doc["encoding"]))


class ArtifactIndex(Mapping[str, ArtifactRef]):
    """An immutable mapping artifact name → `ArtifactRef` (a task's ``artifacts.json``).

    Cheap to build and pass around: the runner keeps one per parent task and
    loads values only for the names a step touches.
    """

    __slots__ = ("_refs",)

    def __init__(self, refs: Mapping[str, ArtifactRef] | None = None) -> None:
        self._refs: dict[str, ArtifactRef] = dict(sorted((refs or {}).items()))

    def __getitem__(self, name: str) -> ArtifactRef:
        return self._refs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"ArtifactIndex({sorted(self._refs)})"

    def merged(self, other: Mapping[str, ArtifactRef]) -> ArtifactIndex:
        """A new index with `other`'s entries added (replacing same names)."""
        return ArtifactIndex({**self._refs, **other})

    def to_json(self) -> str:
        doc = {"version": RECORD_VERSION,
               "artifacts": {name: ref.to_json() for name, ref in self._refs.items()}}
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> ArtifactIndex:
        doc = json.loads(text)
        return cls({name: ArtifactRef.from_json(ref)
                    for name, ref in doc.get("artifacts", {}).items()})


@dataclass(frozen=True)
class ExceptionInfo:
    """A step's exception as text: type, message and formatted traceback."""

    type: str
    message: str
    traceback: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> ExceptionInfo:
        kind = type(exc)
        return cls(
            type=f"{kind.__module__}.{kind.__qualname__}",
            message=str(exc),
            traceback="".join(tb.format_exception(exc)),
        )


@dataclass(frozen=True)
class TaskMetadata:
    """What a task attempt records about itself (``meta.json``).

    Written once when the attempt starts (`finished_at` None) and again at the
    end with the outcome. `exit_status` is the runner's exit code (0 = success).

    `timing` (epoch seconds; ISO 8601 with milliseconds in the JSON) says where the
    attempt's time went, by the operator's and the runner's clocks: ``readyAt`` (the
    task could run), ``createdAt`` (its pod was created), ``startedAt`` (the runner
    process started), ``userStartedAt`` / ``userFinishedAt`` (the step function),
    ``finishedAt`` (the record is committed). A time not known is left out; records
    written before it existed read as ``{}``.
    """

    attempt: int
    started_at: float
    user: str
    host: str
    code_sha256: str | None
    python_version: str
    cloudpickle_version: str
    kflow_version: str
    finished_at: float | None = None
    exit_status: int | None = None
    exception: ExceptionInfo | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    timing: Mapping[str, float] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.exit_status == 0 and self.exception is None

    @classmethod
    def collect(cls, attempt: int, code_sha256: str | None, started_at: float,
                extra: Mapping[str, str] | None = None,
                user: str | None = None) -> TaskMetadata:
        """The start-of-attempt record, filled from this process's environment; `user`
        (who started the run) defaults to this process's user."""
        import cloudpickle

        from kflow import __version__ as kflow_version

        if not user:
            try:
                user = getpass.getuser()
            except (KeyError, OSError):
                user = "unknown"
        return cls(
            attempt=attempt,
            started_at=started_at,
            user=user,
            host=socket.gethostname(),
            code_sha256=code_sha256,
            python_version=platform.python_version(),
            cloudpickle_version=str(cloudpickle.__version__),
            kflow_version=str(kflow_version),
            extra=dict(extra or {}),
        )

    def finished(self, finished_at: float, exit_status: int,
                 exception: BaseException | ExceptionInfo | None = None) -> TaskMetadata:
        """This record with the attempt's outcome."""
        if isinstance(exception, BaseException):
            exception = ExceptionInfo.from_exception(exception)
        return replace(self, finished_at=finished_at, exit_status=exit_status,
                       exception=exception)

    def to_json(self) -> str:
        doc = asdict(self)
        doc["version"] = RECORD_VERSION
        doc["started_at"] = _iso(self.started_at)
        doc["finished_at"] = _iso(self.finished_at)
        doc["extra"] = dict(self.extra)
        doc["timing"] = {key: _iso_ms(value) for key, value in self.timing.items()}
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> TaskMetadata:
        doc = json.loads(text)
        exc = doc.get("exception")
        started = _from_iso(doc["started_at"])
        return cls(
            attempt=int(doc["attempt"]),
            started_at=started if started is not None else 0.0,
            user=str(doc["user"]),
            host=str(doc["host"]),
            code_sha256=doc.get("code_sha256"),
            python_version=str(doc["python_version"]),
            cloudpickle_version=str(doc["cloudpickle_version"]),
            kflow_version=str(doc.get("kflow_version", "")),
            finished_at=_from_iso(doc.get("finished_at")),
            exit_status=doc.get("exit_status"),
            exception=ExceptionInfo(**exc) if exc else None,
            extra={str(k): str(v) for k, v in (doc.get("extra") or {}).items()},
            timing=_timing(doc.get("timing")),
        )


"""The task's result as the pod's termination message (pure, plus one small write).

Owns: `TaskResult`, its JSON form (version 1, at most `MAX_BYTES`), and
writing it where the kubelet reads it. The operator learns a task's outcome
from the pod status alone, without reading the store::

    {"v": 1, "ok": true, "step": "train", "task": "3", "attempt": 0,
     "next": ["choose"], "foreach": {"var": "rates", "splits": 3} | null,
     "switch": "chosen-step" | null, "artifacts": 4, "bytes": 1234,
     "timings": {"code": s, "inputs": s, "user": s, "persist": s, "total": s},
     "at": {"startedAt": t, "userStartedAt": t, "userFinishedAt": t, "finishedAt": t},
     "error": {"type": "ValueError", "message": "..."} | null}

``ok`` is the task's outcome (true also when @catch handled a failure,
false for a user failure or an infrastructure error); ``next`` is empty
when the step did not finish. ``artifacts`` counts the task's artifacts
and ``bytes`` the bytes this task uploaded. ``at`` holds the runner's clock
readings as epoch seconds with milliseconds (the pod's own timestamps have
1 s resolution): its process start, the step function's start and end, and
the commit of the task's record; a time not reached is left out (no ``at``
at all when none was). The
operator's status sums them up (`kflow.planning.overhead`). Kubernetes keeps
at most 4096 bytes of a termination message, so long error messages are cut
first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_PATH",
    "MAX_BYTES",
    "VERSION",
    "TaskResult",
    "termination_path",
    "write_termination_message",
]

VERSION = 1
MAX_BYTES = 4096
DEFAULT_PATH = Path("/dev/termination-log")
PATH_ENV = "KFLOW_TERMINATION_MESSAGE_PATH"
_ELLIPSIS = "…"


@dataclass(frozen=True)
class TaskResult:
    """What the operator needs to know about a finished task."""

    ok: bool
    step: str
    task: str
    attempt: int
    next_steps: tuple[str, ...] = ()
    foreach_var: str | None = None
    foreach_splits: int | None = None
    switch: str | None = None
    artifacts: int = 0
    bytes: int = 0
    timings: Mapping[str, float] = field(default_factory=dict)
    at: Mapping[str, float] = field(default_factory=dict)     # epoch seconds, see above
    error_type: str | None = None
    error_message: str | None = None

    def to_dict(self, message_limit: int | None = None) -> dict[str, object]:
        """The JSON-ready dict; `message_limit` cuts the error message to that many chars."""
        error: dict[str, str] | None = None
        if self.error_type is not None or self.error_message is not None:
            message = self.error_message or ""
            if message_limit is not None and len(message) > message_limit:
                message = message[:max(message_limit - 1, 0)] + _ELLIPSIS
            error = {"type": self.error_type or "Exception", "message": message}
        foreach = None
        if self.foreach_var is not None:
            foreach = {"var": self.foreach_var, "splits": self.foreach_splits}
        doc: dict[str, object] = {
            "v": VERSION,
            "ok": self.ok,
            "step": self.step,
            "task": self.task,
            "attempt": self.attempt,
            "next": list(self.next_steps),
            "foreach": foreach,
            "switch": self.switch,
            "artifacts": self.artifacts,
            "bytes": self.bytes,
            "timings": {key: round(value, 3) for key, value in self.timings.items()},
            "error": error,
        }
        if self.at:
            doc["at"] = {key: round(value, 3) for key, value in self.at.items()}
        return doc

    def to_json(self, max_bytes: int = MAX_BYTES) -> str:
        """Compact JSON of at most `max_bytes` UTF-8 bytes (the error message is cut to fit)."""
        text = _dumps(self.to_dict())
        if len(text.encode()) <= max_bytes:
            return text
        # Cut the message, then (in the worst case, huge step names) the type too.
        low, high = 0, len(self.error_message or "")
        best = _dumps(self.to_dict(message_limit=0))
        while low <= high:
            middle = (low + high) // 2
            candidate = _dumps(self.to_dict(message_limit=middle))
            if len(candidate.encode()) <= max_bytes:
                best, low = candidate, middle + 1
            else:
                high = middle - 1
        if len(best.encode()) > max_bytes:
            best = _dumps({"v": VERSION, "ok": self.ok, "step": self.step[:200],
                           "task": self.task[:200], "attempt": self.attempt,
                           "error": {"type": (self.error_type or "")[:200],
                                     "message": "(result too large)"}})
        return best


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def termination_path(environ: Mapping[str, str]) -> Path | None:
    """Where to write: ``$KFLOW_TERMINATION_MESSAGE_PATH``, else /dev/termination-log
    if it can be written (it exists in pods), else nowhere."""
    explicit = environ.get(PATH_ENV)
    if explicit:
        return Path(explicit)
    if DEFAULT_PATH.exists() and os.access(DEFAULT_PATH, os.W_OK):
        return DEFAULT_PATH
    return None


def write_termination_message(result: TaskResult, environ: Mapping[str, str]) -> Path | None:
    """Write the result's JSON; return where (None when there is nowhere, or it failed)."""
    path = termination_path(environ)
    if path is None:
        return None
    try:
        path.write_text(result.to_json(), encoding="utf-8")
    except OSError:
        return None
    return path

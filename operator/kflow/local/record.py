"""The record of a local run: its spec and last status, in the store (the local FlowRun).

Owns: `RunRecord` (what a local run was asked to do — flow, run id, parameters,
tags, parallelism, the run it resumes and from which step — and the planner's last
status of it, plus which process drives it) with its JSON form, and `RecordBook`,
which reads and writes records at ``local/<namespace>/<flow>/<run_id>.json``
(`kflow.store.layout.StoreLayout.local_run`). The tasks' own records (meta.json,
artifacts, logs, DONE) are the runner's, under ``runs/``, as for a cluster run; the
client API reads those. This record is what `resume --local` needs besides them:
whether the origin is finished, and how it was started.

A record whose driving process is gone while its phase is not terminal (the machine
rebooted, ``kill -9``) counts as ``Failed``: `RunRecord.effective_phase`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kflow.api_types import TERMINAL_PHASES, RunPhase
from kflow.planning.run import RunModel
from kflow.store import Datastore, ObjectNotFound

__all__ = ["RECORD_KIND", "RecordBook", "RunRecord", "pid_alive"]

RECORD_KIND = "LocalRun"
RECORD_VERSION = 1


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class RunRecord:
    """One local run (see the module docstring)."""

    flow: str
    run_id: str
    namespace: str
    flow_file: str
    code_sha256: str
    user: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    tags: Sequence[str] = ()
    max_workers: int = 16
    origin_run_id: str | None = None
    resume_step: str | None = None
    status: Mapping[str, Any] = field(default_factory=dict)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)

    @property
    def phase(self) -> str | None:
        value = self.status.get("phase")
        return str(value) if value else None

    def effective_phase(self, alive: Callable[[int], bool] = pid_alive,
                        host: str | None = None) -> str | None:
        """The phase, with a run whose driver died before it ended counted as Failed
        (only checked on the machine that drives it)."""
        phase = self.phase
        if phase in {p.value for p in TERMINAL_PHASES}:
            return phase
        here = socket.gethostname() if host is None else host
        if here == self.host and not alive(self.pid):
            return RunPhase.FAILED.value
        return phase

    def run_model(self) -> RunModel:
        """The planner's view of this run (its previous status included)."""
        return RunModel(name=self.run_id, namespace=self.namespace,
                        max_parallelism=self.max_workers,
                        resume_from_run=self.origin_run_id,
                        resume_from_step=self.resume_step, status=dict(self.status))

    def with_status(self, status: Mapping[str, Any]) -> RunRecord:
        return replace(self, status=dict(status))

    def to_json(self) -> str:
        doc = {"kind": RECORD_KIND, "version": RECORD_VERSION, "flow": self.flow,
               "runId": self.run_id, "namespace": self.namespace,
               "flowFile": self.flow_file, "codeSha256": self.code_sha256,
               "user": self.user, "parameters": dict(self.parameters),
               "tags": list(self.tags), "maxWorkers": self.max_workers,
               "originRunId": self.origin_run_id, "resumeStep": self.resume_step,
               "host": self.host, "pid": self.pid, "status": dict(self.status)}
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> RunRecord:
        """Parse a record; ValueError (saying what is wrong) for anything else."""
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("kind") != RECORD_KIND:
            raise ValueError(f"not a {RECORD_KIND} record")
        try:
            return cls(
                flow=str(doc["flow"]), run_id=str(doc["runId"]),
                namespace=str(doc["namespace"]), flow_file=str(doc["flowFile"]),
                code_sha256=str(doc["codeSha256"]), user=str(doc.get("user") or ""),
                parameters={str(k): str(v) for k, v in (doc.get("parameters") or {}).items()},
                tags=tuple(str(t) for t in doc.get("tags") or ()),
                max_workers=int(doc.get("maxWorkers") or 16),
                origin_run_id=doc.get("originRunId") or None,
                resume_step=doc.get("resumeStep") or None,
                status=dict(doc.get("status") or {}), host=str(doc.get("host") or ""),
                pid=int(doc.get("pid") or 0))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"a {RECORD_KIND} record with a missing or bad field: "
                             f"{exc}") from None


class RecordBook:
    """Reads and writes the records of local runs in one store."""

    def __init__(self, store: Datastore) -> None:
        self.store = store

    def write(self, record: RunRecord) -> None:
        key = self.store.layout.local_run(record.namespace, record.flow, record.run_id)
        self.store.objects.put(key, record.to_json().encode())

    def read(self, namespace: str, flow: str, run_id: str) -> RunRecord | None:
        """The record of that run; None if there is none; ValueError if it is broken."""
        key = self.store.layout.local_run(namespace, flow, run_id)
        try:
            text = self.store.objects.get(key)
        except ObjectNotFound:
            return None
        try:
            return RunRecord.from_json(text)
        except ValueError as exc:
            raise ValueError(f"{key} in {self.store.objects!r}: {exc}") from None

    def run_ids(self, namespace: str, flow: str) -> list[str]:
        """The run ids of the flow's local records, sorted by name."""
        prefix = self.store.layout.local_runs_prefix(namespace, flow)
        names = [key[len(prefix):] for key in self.store.objects.list(prefix, recursive=False)]
        return sorted(n[: -len(".json")] for n in names if n.endswith(".json"))

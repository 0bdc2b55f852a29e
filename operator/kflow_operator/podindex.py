"""The step pods the operator knows from its pod watch, by FlowRun: no LIST per reconcile.

Owns: `PodIndex`. The kopf pod watch (`handlers.step_pod_event`) feeds every event of a
step pod into it before it wakes the pod's run; a reconcile reads its run's pods from
here. A LIST for a run is still made when its entry is missing (the first reconcile of
the run in this process) or older than `RESYNC_SECONDS` (a resync, like an informer's:
it bounds how long an event lost in a watch restart can mislead the planner). Pods the
operator itself creates are added at once (`created`), so a reconcile that runs before
the pod's first watch event does not ask for it again.

Ordering: each object keeps the copy with the highest ``metadata.resourceVersion``
(compared as integers, as the API server's etcd storage makes them; a copy without
one, as created here, is the oldest). A deletion leaves a tombstone so that an older
event arriving late cannot bring the pod back. A LIST replaces a run's entry except for
what the watch changed after the LIST was asked for.

Thread-safe (kopf runs the handlers and the reconciles on its worker threads). Pure:
no kopf, no kubernetes client.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kflow import api_types

__all__ = ["RESYNC_SECONDS", "PodIndex", "RunKey", "run_of"]

RESYNC_SECONDS: Final = 60.0
RunKey = tuple[str, str]        # (namespace, FlowRun name)


def _version(pod: Mapping[str, Any]) -> int:
    text = str((pod.get("metadata") or {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else -1


def run_of(pod: Mapping[str, Any]) -> RunKey | None:
    """The (namespace, FlowRun) controlling `pod`, None for a pod of no FlowRun."""
    metadata = pod.get("metadata") or {}
    for ref in metadata.get("ownerReferences") or []:
        if ref.get("kind") == api_types.FLOWRUN_KIND and ref.get("controller"):
            return str(metadata.get("namespace") or ""), str(ref.get("name"))
    return None


@dataclass
class _Entry:
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)       # name → sequence number
    tombstones: dict[str, int] = field(default_factory=dict)    # name → resourceVersion
    listed_at: float | None = None


class PodIndex:
    """Step pods by FlowRun, kept current by the pod watch (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 resync_seconds: float = RESYNC_SECONDS) -> None:
        self._clock = clock
        self._resync = resync_seconds
        self._lock = threading.Lock()
        self._runs: dict[RunKey, _Entry] = {}
        self._seq = 0

    def _touch(self, entry: _Entry, name: str) -> None:
        self._seq += 1
        entry.changed[name] = self._seq

    def observe(self, pod: Mapping[str, Any], deleted: bool = False) -> RunKey | None:
        """A watch event of `pod` (`deleted`: a DELETED event); its run, if any."""
        key = run_of(pod)
        if key is None:
            return None
        name = str((pod.get("metadata") or {}).get("name"))
        version = _version(pod)
        with self._lock:
            entry = self._runs.setdefault(key, _Entry())
            known = entry.pods.get(name)
            if version < entry.tombstones.get(name, -1) or (
                    known is not None and version < _version(known)):
                return key                                  # an older copy, late
            if deleted:
                entry.pods.pop(name, None)
                entry.tombstones[name] = version
            else:
                entry.pods[name] = copy.deepcopy(dict(pod))
                entry.tombstones.pop(name, None)
            self._touch(entry, name)
        return key

    def created(self, pod: Mapping[str, Any]) -> None:
        """The operator created `pod` (the manifest it sent): known from now on."""
        key = run_of(pod)
        if key is None:
            return
        name = str(pod["metadata"]["name"])
        with self._lock:
            entry = self._runs.setdefault(key, _Entry())
            if name not in entry.pods and name not in entry.tombstones:
                entry.pods[name] = copy.deepcopy(dict(pod))
                self._touch(entry, name)

    def pods(self, key: RunKey) -> list[dict[str, Any]] | None:
        """The run's pods, or None when they must be listed first (never listed in this
        process, or not for `RESYNC_SECONDS`). The dicts are the index's own: read them,
        never change them (every update replaces a pod's dict, never edits it)."""
        with self._lock:
            entry = self._runs.get(key)
            if entry is None or entry.listed_at is None or (
                    self._clock() - entry.listed_at > self._resync):
                return None
            return list(entry.pods.values())

    def mark(self) -> int:
        """A point in the event sequence: take it before a LIST, pass it to `listed`."""
        with self._lock:
            return self._seq

    def listed(self, key: RunKey, pods: list[dict[str, Any]], since: int) -> list[dict[str, Any]]:
        """A LIST of the run's pods (asked for at `since`, from `mark`) replaces its
        entry, except what the watch changed after `since`; the run's pods, merged."""
        with self._lock:
            entry = self._runs.setdefault(key, _Entry())
            fresh = {str((p.get("metadata") or {}).get("name")): p for p in pods}
            merged: dict[str, dict[str, Any]] = {}
            for name, pod in fresh.items():
                known = entry.pods.get(name)
                newer = known is not None and entry.changed.get(name, 0) > since and \
                    _version(known) >= _version(pod)
                if name in entry.tombstones and entry.changed.get(name, 0) > since:
                    continue                                # deleted since the LIST
                merged[name] = known if newer and known is not None else copy.deepcopy(pod)
            for name, known in entry.pods.items():
                if name not in merged and entry.changed.get(name, 0) > since:
                    merged[name] = known                    # added since the LIST
            entry.pods = merged
            entry.changed = {n: s for n, s in entry.changed.items() if s > since}
            entry.tombstones = {n: v for n, v in entry.tombstones.items()
                                if entry.changed.get(n, 0) > since}
            entry.listed_at = self._clock()
            return list(merged.values())

    def invalidate(self, key: RunKey) -> None:
        """List the run's pods again at its next reconcile (e.g. a create found its pod
        already there: an event was missed)."""
        with self._lock:
            entry = self._runs.get(key)
            if entry is not None:
                entry.listed_at = None

    def forget(self, key: RunKey) -> None:
        """The run is gone: drop its entry."""
        with self._lock:
            self._runs.pop(key, None)

"""`Trigger`: what started a run with ``@trigger_on_finish`` (Metaflow's ``current.trigger``
and ``Run.trigger``).

Owns: the `Trigger` value and its three spellings — a FlowRun's ``spec.trigger``
(``{flow, run, runId}``, written by the operator), the runner's ``--trigger-run
FLOW/RUN_ID`` and the ``trigger`` entry of the start task's record (both
``FLOW/RUN_ID``). ``trigger.run`` is a client `kflow.client.Run` of the upstream run,
``trigger.runs`` all of them (one for ``@trigger_on_finish``), ``trigger.event`` /
``trigger.events`` Metaflow-style event descriptions (``kflow.<Flow>.end``).

Runs are opened lazily (only when user code asks), by a function the caller may pass: the
runner passes one that reads from the task's own store and namespace (a step pod has no
Kubernetes rights). Imports only the standard library; the client on first use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from kflow.client import Run

__all__ = ["Trigger", "TriggerEvent", "TriggeringRun", "parse_pathspec"]

_PATHSPEC: Final = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)/([a-z0-9]([-a-z0-9]*[a-z0-9])?)$")


@dataclass(frozen=True)
class TriggeringRun:
    """One upstream run: its flow class, run id and (when known) FlowRun name."""

    flow: str
    run_id: str
    flowrun: str | None = None

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}"


@dataclass(frozen=True)
class TriggerEvent:
    """Metaflow's ``MetaflowEvent`` for a run-finished trigger."""

    name: str                # kflow.<Flow>.end
    id: str                  # the upstream run id
    type: str = "run"
    timestamp: float | None = None


def _open_client_run(pathspec: str) -> Run:
    from kflow.client import Run

    return Run(pathspec)


class Trigger:
    """The run(s) whose success started this run (see the module docstring)."""

    def __init__(self, runs: Sequence[TriggeringRun],
                 open_run: Callable[[str], Run] | None = None) -> None:
        if not runs:
            raise ValueError("a Trigger needs at least one upstream run")
        self._runs = tuple(runs)
        self._open_run = open_run or _open_client_run

    @classmethod
    def from_spec(cls, spec: object, open_run: Callable[[str], Run] | None = None
                  ) -> Trigger | None:
        """From a FlowRun's ``spec.trigger``; None when absent or malformed."""
        if not isinstance(spec, Mapping):
            return None
        flow, run_id = spec.get("flow"), spec.get("runId")
        if not isinstance(flow, str) or not isinstance(run_id, str):
            return None
        run = spec.get("run")
        return cls([TriggeringRun(flow, run_id, run if isinstance(run, str) else None)],
                   open_run)

    @classmethod
    def from_text(cls, text: object, open_run: Callable[[str], Run] | None = None
                  ) -> Trigger | None:
        """From ``FLOW/RUN_ID`` (the runner's argument, the record); None when empty."""
        if not isinstance(text, str) or not text:
            return None
        return cls([TriggeringRun(*parse_pathspec(text))], open_run)

    # -- what it says -------------------------------------------------------------------

    @property
    def triggering_runs(self) -> tuple[TriggeringRun, ...]:
        """The upstream runs, without reading them."""
        return self._runs

    @property
    def run(self) -> Run:
        """The upstream run (a client `Run`: ``.id``, ``.data``, ``.successful`` …)."""
        return self._open_run(self._runs[0].pathspec)

    @property
    def runs(self) -> list[Run]:
        """Every upstream run."""
        return [self._open_run(run.pathspec) for run in self._runs]

    @property
    def event(self) -> TriggerEvent:
        """The first event (``kflow.<Flow>.end`` of the upstream run)."""
        return self.events[0]

    @property
    def events(self) -> list[TriggerEvent]:
        return [TriggerEvent(f"kflow.{run.flow}.end", run.run_id) for run in self._runs]

    def to_text(self) -> str:
        """``FLOW/RUN_ID`` of the first run (what the runner records)."""
        return self._runs[0].pathspec

    def __repr__(self) -> str:
        return f"Trigger({', '.join(run.pathspec for run in self._runs)})"


def parse_pathspec(text: str) -> tuple[str, str]:
    """``FLOW/RUN_ID`` → (flow, run id); ValueError saying the form otherwise."""
    match = _PATHSPEC.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not FLOW/RUN_ID (a flow class name, '/', a run id "
                         "such as train-flow-x7k2-1a2b3c4d)")
    return match.group(1), match.group(2)

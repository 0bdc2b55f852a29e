"""Local runs: ``python flow.py run --local`` runs a whole flow on this machine.

No cluster and no S3 server: the same planner as the operator
(`kflow.planning.plan`), the same runner as the step pods (``python -m kflow.runner``,
as subprocesses, with ``--code-dir``), and a local directory as the store
(`kflow.store.LocalObjectStore`). The client API reads local runs like any other
(`kflow.client.Source.local`). Its modules each own one thing:

============  =====================================================================
``location``  where the local store lives, the namespace, new run ids
``executor``  the `Executor` seam (start / stop / observe attempts) and the runner's
              arguments (pure); a hybrid mode implements it over pods and processes
``processes``  `ProcessExecutor`: runner subprocesses, their output, their end
``observe``   a finished process → the planner's `ObservedAttempt` (pure; mirrors
              `kflow_operator.observe`)
``loop``      `drive`: observe → plan → act until the run ends
``record``    the run record in the store (the local FlowRun: spec and status)
``origin``    resume: the origin run checked, its results read, kept tasks cloned
``report``    the lines a local run prints (pure)
``session``   `run_local` / `resume_local`: all of the above, signals, exit codes
============  =====================================================================

Imports nothing from kflow_operator, kopf or kubernetes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kflow.local.session import LocalRunError, LocalSettings, resume_local, run_local

__all__ = ["LocalRunError", "LocalSettings", "resume_local", "run_local"]


def __getattr__(name: str) -> Any:
    # The client imports kflow.local.location only: keep the package's import light.
    if name in __all__:
        from kflow.local import session

        return getattr(session, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Hybrid runs' drivers, as the operator sees them: alive or lost (pure).

Owns `driver_lost`: a FlowRun with ``spec.driver: Local`` is run by a user's process
(`kflow.hybrid`), which reports in ``status.driver.heartbeatAt`` every few seconds. A
run not yet finished whose driver has not reported for the timeout (counted from the
FlowRun's creation before the first report) is lost: the operator fails it with
reason ``DriverLost`` and stops its pods, so it never stays Running with nobody behind
it. Otherwise the answer says when to look again. Imports only the standard library
and `kflow.api_types` / `kflow.planning.run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kflow import api_types
from kflow.planning.run import parse_time

__all__ = ["driver_lost"]


def driver_lost(run: Mapping[str, Any], now: datetime,
                timeout_seconds: float) -> tuple[str | None, float]:
    """(why the run's driver is lost, None while it is alive; the seconds until it
    would be lost if it stays silent)."""
    metadata = run.get("metadata") or {}
    driver = (run.get("status") or {}).get(api_types.DRIVER_STATUS) or {}
    last = parse_time(driver.get("heartbeatAt")) or parse_time(
        metadata.get("creationTimestamp"))
    if last is None:
        return None, timeout_seconds
    silent = (now - last).total_seconds()
    if silent <= timeout_seconds:
        return None, max(timeout_seconds - silent, 0.0) + 0.5
    who = (f"on {driver.get('host')} (pid {driver.get('pid')})" if driver.get("host")
           else "(it never reported)")
    return (f"the process driving this hybrid run {who} has not reported for "
            f"{silent:.0f} s (limit {timeout_seconds:.0f} s): it was killed, or lost the "
            "cluster; its pods were stopped. Start a new run (python <flow>.py run "
            "--local)"), 0.0

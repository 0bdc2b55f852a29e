"""Formatting the bounded `FlowRun.status` (pure).

Owns: the per-step summary entry (`step_entry`), conditions that keep their
`lastTransitionTime` while their status is unchanged (`condition`), and the
small formatters: `format_duration` ("1m30s"), `format_indexes` ("3,17-19",
at most 1024 characters) and `clip`. Every list is bounded by the number of
steps, never by the number of tasks.

Must not import: kopf, kubernetes, minio, kflow.store, kflow.runner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from kflow.planning.run import format_time, parse_time

__all__ = ["MAX_RUN_MESSAGE", "clip", "condition", "format_duration", "format_indexes"]

MAX_INDEXES = 1024
MAX_STEP_MESSAGE = 2048
MAX_RUN_MESSAGE = 4096          # status.message and status.failure.message (the CRD's maxLength)
MAX_STEP_REASON = 128


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters (an ellipsis marks the cut)."""
    return text if len(text) <= limit else text[:max(limit - 1, 0)] + "…"


def format_duration(seconds: float) -> str:
    """45 → "45s", 90 → "1m30s", 7380 → "2h3m" (seconds dropped past an hour)."""
    total = max(int(seconds), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def format_indexes(paths: Iterable[tuple[int, ...]], limit: int = MAX_INDEXES) -> str:
    """Foreach index paths as intervals: (3,), (17,), (18,), (19,) → "3,17-19".

    Nested paths group runs of their last index under the same prefix:
    (1, 2), (1, 3) → "1.2-3". Longer than `limit`: cut at an interval, "…" last.
    """
    parts: list[str] = []
    run_prefix: tuple[int, ...] | None = None
    first = last = 0

    def flush() -> None:
        if run_prefix is None:
            return
        head = "".join(f"{i}." for i in run_prefix)
        parts.append(f"{head}{first}" if first == last else f"{head}{first}-{last}")

    for path in sorted(set(paths)):
        if not path:
            continue
        prefix, index = path[:-1], path[-1]
        if prefix == run_prefix and index == last + 1:
            last = index
            continue
        flush()
        run_prefix, first, last = prefix, index, index
    flush()
    text = ""
    for part in parts:
        candidate = f"{text},{part}" if text else part
        if len(candidate) > limit - 2:
            return f"{text},…" if text else "…"
        text = candidate
    return text


def condition(previous: Mapping[str, Any] | None, kind: str, status: str, reason: str,
              message: str, now: datetime, generation: int) -> dict[str, Any]:
    """A condition; `lastTransitionTime` stays that of `previous` when `status` is unchanged."""
    since = format_time(now)
    if previous is not None and previous.get("status") == status:
        kept = parse_time(previous.get("lastTransitionTime"))
        if kept is not None:
            since = format_time(kept)
    return {"type": str(kind), "status": str(status), "reason": str(reason),
            "message": clip(message, 32768), "lastTransitionTime": since,
            "observedGeneration": generation}

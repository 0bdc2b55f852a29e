"""Retrying transient object-store failures with capped, jittered exponential back-off.

Owns: which failures are transient (`is_transient`), the back-off schedule
(`RetryPolicy.delays`, pure) and the loop that applies them (`with_retries`),
which turns an exhausted budget into `StoreUnavailable`. Knows minio's and
urllib3's exception types by name only through `is_transient`'s arguments, so
it imports neither.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from kflow.store.errors import StoreUnavailable

__all__ = ["TRANSIENT_S3_CODES", "RetryPolicy", "with_retries"]

T = TypeVar("T")

# S3 error codes worth retrying (AWS's "retryable" list plus MinIO's own).
TRANSIENT_S3_CODES = frozenset({
    "SlowDown", "SlowDownRead", "SlowDownWrite", "ServiceUnavailable", "InternalError",
    "RequestTimeout", "RequestTimeTooSkewed", "Throttling", "ThrottlingException",
    "XMinioServerNotInitialized", "XMinioStorageFull", "OperationAborted",
    "XMinioReadQuorum", "XMinioWriteQuorum",
})


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep retrying: `attempts` tries in all; waits doubling from
    `base_delay` up to `max_delay` (each drawn from [cap/2, cap]); no new try
    after `deadline` seconds since the first."""

    attempts: int = 8
    base_delay: float = 0.2
    max_delay: float = 5.0
    deadline: float = 60.0

    @classmethod
    def until(cls, deadline: float, *, base_delay: float = 0.2,
              max_delay: float = 5.0) -> RetryPolicy:
        """Retry for `deadline` seconds, however many tries that takes: `attempts` is
        set so that even the shortest waits last past the deadline (with the default
        `attempts` the tries run out first: 8 tries wait 8-16 s in all)."""
        tries, waited = 1, 0.0
        while waited <= deadline:
            waited += min(max_delay, base_delay * (2 ** (tries - 1))) / 2
            tries += 1
        return cls(attempts=tries, base_delay=base_delay, max_delay=max_delay,
                   deadline=deadline)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits before try 2, 3, ... (`attempts - 1` of them)."""
        rng = rng or random.Random()
        for n in range(self.attempts - 1):
            cap = min(self.max_delay, self.base_delay * (2 ** n))
            yield cap / 2 + rng.uniform(0, cap / 2)


def with_retries(
    op: Callable[[], T],
    policy: RetryPolicy,
    is_transient: Callable[[BaseException], bool],
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run `op`, retrying transient failures per `policy`.

    Non-transient errors propagate at once. When the budget is spent the last
    transient error is chained to a `StoreUnavailable` naming `what`.
    """
    started = clock()
    delays = policy.delays()
    tries = 0
    while True:
        tries += 1
        try:
            return op()
        except Exception as exc:
            if not is_transient(exc):
                raise
            delay = next(delays, None)
            if delay is None or clock() + delay - started > policy.deadline:
                raise StoreUnavailable(
                    f"object store unavailable: {what} failed {tries} times in "
                    f"{clock() - started:.1f} s; last error: {type(exc).__name__}: {exc}",
                    hint="Check that the S3 endpoint is up and reachable from here; "
                    "this is an infrastructure failure, not a problem in the flow.",
                ) from exc
            sleep(delay)

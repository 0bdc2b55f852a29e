"""A token bucket that paces the operator's writes to the API server (pure logic).

Owns: `TokenBucket`. The bucket holds at most `burst` tokens and gains `rate` tokens a
second; each write takes one. `try_acquire` never waits; `reserve` takes the tokens at
once (the level may go below zero) and says how long the caller must wait before using
them, so concurrent callers queue fairly in arrival order (Go's ``rate.Limiter.Reserve``);
`acquire` is `reserve` plus the wait (`on_wait`, if given, hears of each wait: the
throttling metrics). The clock and the sleep are injectable, so tests need no real time.
Thread-safe: one lock around the arithmetic, never held while sleeping.

Imports nothing but the standard library.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; starts full."""

    def __init__(self, rate: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 on_wait: Callable[[float], None] | None = None) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number of tokens per second, not {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._on_wait = on_wait
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()

    def _refill(self) -> float:
        """Add the tokens earned since the last call; return now. Call with the lock held."""
        now = self._clock()
        elapsed = max(now - self._updated, 0.0)   # a clock going back earns nothing
        self._tokens = min(self._tokens + elapsed * self.rate, float(self.burst))
        self._updated = now
        return now

    def _check(self, tokens: int) -> None:
        if tokens < 1 or tokens > self.burst:
            raise ValueError(f"can take 1 to {self.burst} tokens at once, not {tokens}")

    @property
    def available(self) -> float:
        """Tokens available now (negative while reservations are outstanding)."""
        with self._lock:
            self._refill()
            return self._tokens

    def try_acquire(self, tokens: int = 1) -> bool:
        """Take `tokens` if they are there now; never waits."""
        self._check(tokens)
        with self._lock:
            self._refill()
            if self._tokens >= tokens:
                self._tokens -= tokens
                return True
            return False

    def reserve(self, tokens: int = 1) -> float:
        """Take `tokens` now; return the seconds to wait before acting (0.0: at once)."""
        self._check(tokens)
        with self._lock:
            self._refill()
            self._tokens -= tokens
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self, tokens: int = 1, timeout: float | None = None) -> bool:
        """Wait until `tokens` are ours; False (nothing taken) if that would exceed `timeout`."""
        self._check(tokens)
        with self._lock:
            self._refill()
            wait = 0.0 if self._tokens >= tokens else (tokens - self._tokens) / self.rate
            if timeout is not None and wait > timeout:
                return False
            self._tokens -= tokens
        if wait > 0:
            if self._on_wait is not None:
                self._on_wait(wait)
            self._sleep(wait)
        return True

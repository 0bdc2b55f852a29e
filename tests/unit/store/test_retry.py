"""Retry policy and transient-error classification (no server needed)."""

from __future__ import annotations

import itertools
import random

import pytest
import urllib3
from minio.error import S3Error, ServerError

from kflow.store import RetryPolicy, StoreUnavailable
from kflow.store.retry import with_retries
from kflow.store.s3 import MIN_PART_SIZE, is_transient, plan_parts


class FakeResponse:
    def __init__(self, status: int) -> None:
        self.status = status


def s3_error(code: str, status: int) -> S3Error:
    return S3Error(FakeResponse(status), code, "msg", "/r", "req", "host")  # type: ignore[arg-type]


def test_delays_grow_and_are_capped() -> None:
    policy = RetryPolicy(attempts=8, base_delay=0.1, max_delay=1.0)
    delays = list(policy.delays(random.Random(0)))
    assert len(delays) == 7
    for n, delay in enumerate(delays):
        cap = min(1.0, 0.1 * 2 ** n)
        assert cap / 2 <= delay <= cap


def test_transient_errors_are_retried_until_budget() -> None:
    slept: list[float] = []
    calls = 0

    def op() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionRefusedError("refused")

    with pytest.raises(StoreUnavailable) as info:
        with_retries(op, RetryPolicy(attempts=4, base_delay=0.01), is_transient, "GET k",
                     sleep=slept.append)
    assert calls == 4 and len(slept) == 3
    assert "GET k" in str(info.value) and "infrastructure" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_success_after_transient_failures() -> None:
    outcomes = [s3_error("SlowDown", 503), urllib3.exceptions.ProtocolError("reset"), "ok"]

    def op() -> str:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    assert with_retries(op, RetryPolicy(), is_transient, "x", sleep=lambda _: None) == "ok"


def test_permanent_errors_are_not_retried() -> None:
    calls = 0

    def op() -> None:
        nonlocal calls
        calls += 1
        raise s3_error("AccessDenied", 403)

    with pytest.raises(S3Error):
        with_retries(op, RetryPolicy(), is_transient, "x", sleep=lambda _: None)
    assert calls == 1


def test_deadline_stops_retrying() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def op() -> None:
        raise TimeoutError

    policy = RetryPolicy(attempts=100, base_delay=1.0, max_delay=1.0, deadline=5.0)
    with pytest.raises(StoreUnavailable):
        with_retries(op, policy, is_transient, "x", sleep=sleep, clock=lambda: now[0])
    assert now[0] <= 5.0


def _seconds_until_given_up(policy: RetryPolicy) -> float:
    """How long `with_retries` keeps retrying a server that refuses every request."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def op() -> None:
        raise ConnectionRefusedError("refused")

    with pytest.raises(StoreUnavailable):
        with_retries(op, policy, is_transient, "x", sleep=sleep, clock=lambda: now[0])
    return now[0]


class _Shortest(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


def test_the_default_policy_gives_up_after_its_eight_tries_long_before_its_deadline() -> None:
    # Why a store outage of ~10 s failed tasks: 7 waits of 8-16 s, though deadline=60.
    assert 8 <= _seconds_until_given_up(RetryPolicy()) <= 16.2


@pytest.mark.parametrize("deadline", [0.5, 10.0, 60.0, 300.0])
def test_a_policy_until_a_deadline_retries_for_that_long(deadline: float) -> None:
    policy = RetryPolicy.until(deadline)
    assert policy.deadline == deadline
    # Even the shortest waits outlast the deadline: the tries never run out first.
    assert sum(policy.delays(_Shortest())) > deadline
    assert deadline - policy.max_delay <= _seconds_until_given_up(policy) <= deadline


@pytest.mark.parametrize(("exc", "transient"), [
    (s3_error("SlowDown", 503), True),
    (s3_error("InternalError", 500), True),
    (s3_error("Whatever", 502), True),
    (s3_error("NoSuchKey", 404), False),
    (s3_error("AccessDenied", 403), False),
    (ServerError("bad gateway", 502), True),
    (ServerError("too many", 429), True),
    (urllib3.exceptions.NewConnectionError(None, "refused"), True),  # type: ignore[arg-type]
    (ConnectionResetError(), True),
    (ValueError("bug"), False),
])
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_plan_parts() -> None:
    assert plan_parts(0, 16) == [(0, 0)]
    parts = plan_parts(100 * MIN_PART_SIZE + 7, 16 << 20)
    assert parts[0] == (0, 16 << 20)
    assert sum(n for _, n in parts) == 100 * MIN_PART_SIZE + 7
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(parts))
    huge = plan_parts(10**12, MIN_PART_SIZE)
    assert len(huge) <= 10_000

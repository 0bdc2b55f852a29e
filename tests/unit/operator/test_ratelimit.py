"""The token bucket, on a fake clock."""

from __future__ import annotations

import threading

import pytest

from kflow_operator.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_starts_full_then_refills_at_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock, sleep=clock.sleep)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5                       # one token back
    assert bucket.try_acquire() and not bucket.try_acquire()
    clock.now += 100                       # never more than burst
    assert bucket.available == pytest.approx(3.0)


def test_reserve_queues_callers_in_order() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, burst=1, clock=clock)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    clock.now += 0.2
    assert bucket.available == pytest.approx(0.0)


def test_acquire_sleeps_for_the_missing_tokens_and_honours_timeout() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4.0, burst=2, clock=clock, sleep=clock.sleep)
    assert bucket.acquire(2)
    assert not bucket.acquire(1, timeout=0.1)       # needs 0.25 s: nothing taken
    assert bucket.available == pytest.approx(0.0)
    assert bucket.acquire(1)
    assert clock.slept == [pytest.approx(0.25)]


def test_clock_going_back_earns_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    assert bucket.try_acquire()
    clock.now -= 50
    assert not bucket.try_acquire()


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (float("inf"), 1), (1, 0)])
def test_rejects_bad_settings(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


def test_more_tokens_than_burst_is_an_error() -> None:
    with pytest.raises(ValueError, match="1 to 2"):
        TokenBucket(rate=1, burst=2).try_acquire(3)


def test_thread_safe_no_token_handed_out_twice() -> None:
    clock = FakeClock()                    # frozen: only the burst is available
    bucket = TokenBucket(rate=1.0, burst=500, clock=clock)
    granted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [bucket.try_acquire() for _ in range(100)]
        with lock:
            granted.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 500

"""The token bucket, on an injected clock: exact waits, burst, sustained rate."""

from __future__ import annotations

import pytest

from guardian.clients.ratelimit import TokenBucket
from tests.clock import Clock


def test_a_burst_passes_then_requests_are_spaced_by_one_over_qps() -> None:
    clock = Clock()
    bucket = TokenBucket(qps=5, burst=10, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(13)]
    assert waits[:10] == [0.0] * 10
    assert waits[10:] == pytest.approx([0.2, 0.2, 0.2])
    assert clock.now == pytest.approx(100.6)
    assert list(bucket.grant_times)[9:] == pytest.approx([100.0, 100.2, 100.4, 100.6])


def test_the_sustained_rate_never_exceeds_qps() -> None:
    clock = Clock()
    bucket = TokenBucket(qps=10, burst=1, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(101):
        bucket.acquire()
        stamps.append(clock.now)
    assert (stamps[-1] - stamps[0]) == pytest.approx(10.0)
    assert bucket.waited == pytest.approx(10.0)


def test_idle_time_refills_up_to_the_burst_only() -> None:
    clock = Clock()
    bucket = TokenBucket(qps=1, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        bucket.acquire()
    clock.now += 3600
    assert [bucket.acquire() for _ in range(4)] == pytest.approx([0, 0, 0, 1.0])


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="qps must be > 0"):
        TokenBucket(qps=0)

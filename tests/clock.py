"""A fake monotonic clock that only moves when code under test sleeps."""

from __future__ import annotations


class Clock:
    """Call it for the time; pass ``clock.sleep`` as the sleep function."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

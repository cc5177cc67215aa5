"""A client-side token bucket, like client-go's: ``qps`` tokens a second, at most ``burst``.

Input: calls to ``acquire()``. Output: the caller waits until a token is free. Called by
``guardian.clients.kube`` before every API-server request, so that guardian never becomes
one more client drowning an overloaded control plane. Clock and sleep are injectable.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class TokenBucket:
    """Thread-safe token bucket; ``waited`` sums the seconds callers spent waiting.

    ``grant_times`` keeps the clock time of the last 10,000 grants, so the request rate a
    caller actually achieved can be checked after the fact.
    """

    def __init__(
        self,
        qps: float = 5.0,
        burst: int = 10,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"qps must be > 0 and burst >= 1 (got {qps}, {burst})")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited = 0.0
        self.granted = 0
        self.grant_times: deque[float] = deque(maxlen=10_000)

    def acquire(self) -> float:
        """Take one token, waiting as long as needed; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
            self._stamp = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.qps
            self.waited += wait
            self.granted += 1
            self.grant_times.append(now + wait)
        if wait > 0:
            self._sleep(wait)
        return wait

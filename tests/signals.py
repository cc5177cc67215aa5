"""Step-verification signals for runner tests that never reach Prometheus."""

from __future__ import annotations


class NoSignals:
    """No burn rate known, no query holds: verification that needs them cannot pass."""

    def short_burn(self, slo: str) -> float | None:
        return None

    def holds(self, promql: str) -> bool:
        return False

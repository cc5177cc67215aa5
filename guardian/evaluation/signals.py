"""Signals for verification: an SLO's burn rate now, and whether a PromQL condition holds.

Input: the config's SLOs and a ``QuerySource``; an ``SLOResult``. Output: ``PrometheusSignals``
(what ``guardian.executor`` verifies playbook steps against: ``short_burn``, ``holds``), each
evaluation within ``evaluation_budget``; ``shortest_burn`` and ``slo_context`` (what playbook
templates see as ``slo``). ``PrometheusSignals`` is built by ``guardian.app.wiring.runner``
(for the daemon's and the console's executor); ``slo_context`` is called by
``guardian.planning.trigger``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from guardian.config.model import SLO, Config
from guardian.errors import DataUnavailable
from guardian.evaluation.budget import evaluation_budget
from guardian.evaluation.instant import evaluate
from guardian.evaluation.queries import Source
from guardian.evaluation.results import SLOResult
from guardian.evaluation.source import QuerySource


@dataclass
class PrometheusSignals:
    """What playbook steps verify against (``guardian.executor.verify.Signals``), from
    Prometheus."""

    slos: Sequence[SLO]
    source: QuerySource
    mode: Source = "raw"
    budget: float | None = None
    """Seconds one ``short_burn`` may take (``evaluate``'s budget); ``None``: no bound."""
    parallel: int = 1

    @classmethod
    def of(cls, config: Config, source: QuerySource) -> PrometheusSignals:
        """The signals for ``config``: its SLOs, source and parallelism, and each evaluation
        within ``evaluation_budget``, so a silent Prometheus cannot hold a step's verification
        for one query timeout per window."""
        settings = config.prometheus
        budget = evaluation_budget(settings.timeout, config.daemon.interval)
        return cls(config.slos, source, settings.source, budget, settings.parallel_queries)

    def short_burn(self, slo: str) -> float | None:
        """The SLO's burn rate over its shortest short window, now."""
        chosen = [s for s in self.slos if s.name == slo]
        if not chosen:
            return None
        evaluation, _ = evaluate(chosen, self.source, None, self.mode, self.parallel, self.budget)
        return shortest_burn(evaluation.slos[0])

    def holds(self, promql: str) -> bool:
        """True when ``promql`` returns a sample (Prometheus down: False, never "holds")."""
        try:
            return bool(self.source.instant(promql))
        except DataUnavailable:
            return False


def shortest_burn(result: SLOResult) -> float | None:
    """Burn rate of the shortest short window that has data."""
    windows = sorted((w for w in result.windows if w.short_burn is not None), key=lambda w: w.short)
    return windows[0].short_burn if windows else None


def slo_context(result: SLOResult) -> dict[str, object]:
    """What playbook templates and verification see as ``slo``."""
    return {
        "name": result.name,
        "status": result.status,
        "objective": result.objective,
        "short_burn": shortest_burn(result),
        "windows": [
            {
                "severity": w.severity,
                "long": w.long,
                "short": w.short,
                "factor": w.factor,
                "long_burn": w.long_burn,
                "short_burn": w.short_burn,
                "firing": w.firing,
            }
            for w in result.windows
        ],
    }

"""The evaluation stage's front door: Prometheus → ``Evaluation``, for one instant or a range.

Input: SLOs and a ``QuerySource`` (Prometheus). Output: ``evaluate`` (one ``Evaluation`` and
an error), ``replay`` (a ``Replay``: one per step of a range), ``evaluation_budget`` (the
seconds one evaluation may take) and ``PrometheusSignals`` (what verification asks
Prometheus). Imported by ``guardian.pipeline`` (``evaluate``, ``evaluation_budget``),
``guardian.app.commands.evaluate`` (``eval``, ``backtest``), ``guardian.app.charts``
(``replay``), ``guardian.app.wiring`` (``PrometheusSignals``), ``bench/evaluate.py`` and the
tests. Nothing is defined here: the work is in
``guardian.evaluation.instant``, ``.replay``, ``.budget``, ``.signals`` and ``.source``.
"""

from __future__ import annotations

from guardian.evaluation.budget import evaluation_budget
from guardian.evaluation.instant import evaluate
from guardian.evaluation.replay import MAX_POINTS, Replay, replay
from guardian.evaluation.signals import PrometheusSignals, shortest_burn, slo_context
from guardian.evaluation.source import QuerySource

__all__ = [
    "MAX_POINTS",
    "PrometheusSignals",
    "QuerySource",
    "Replay",
    "evaluate",
    "evaluation_budget",
    "replay",
    "shortest_burn",
    "slo_context",
]

"""Rules export: SLOs → Prometheus rule groups, named like Sloth's so dashboards keep working.

Input: the model's SLOs. Output: a ``{"groups": [...]}`` document for a Prometheus rule file.
Called by ``guardian rules`` (``guardian.app.commands.evaluate``) and by the tests that load
the output into a real Prometheus to check that it computes exactly the burn rates guardian
computes.

Per SLO (label ``slo="<name>"`` plus the SLO's labels):

- ``slo:sli_error:ratio_rate<window>`` and ``slo:sli_total:rate<window>`` for every window;
- ``slo:objective:ratio``, ``slo:error_budget:ratio``, ``slo:time_period:days``,
  ``slo:current_burn_rate:ratio`` (shortest window), ``slo:period_burn_rate:ratio``,
  ``slo:period_error_budget_remaining:ratio`` and ``guardian_slo_info``;
- one alert ``GuardianBurnRate`` per window pair, labelled ``severity``, ``long``, ``short``.

The period's error ratio is computed from the shortest window's recorded error and total rates
(``slo:sli_errors:rate<w>``, ``slo:sli_total:rate<w>``) summed over the period, so it is
weighted by traffic like a plain ``rate`` and idle minutes do not turn it into NaN; a 30-day
``rate`` at every rule evaluation would cost Prometheus too much.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from guardian.config.model import SLO, WindowPair
from guardian.durations import format_duration
from guardian.evaluation import sli as sli_promql

ALERT = "GuardianBurnRate"


def rule_groups(slos: Iterable[SLO]) -> dict[str, Any]:
    """The rule file document for ``slos``."""
    groups: list[dict[str, Any]] = []
    for slo in slos:
        groups.append({"name": f"guardian-slo-{slo.name}-sli", "rules": _sli_rules(slo)})
        groups.append({"name": f"guardian-slo-{slo.name}-meta", "rules": _meta_rules(slo)})
        groups.append({"name": f"guardian-slo-{slo.name}-alerts", "rules": _alerts(slo)})
    return {"groups": groups}


def _labels(slo: SLO, **extra: str) -> dict[str, str]:
    return {**dict(slo.labels), "slo": slo.name, **extra}


def _windows(slo: SLO) -> list[int]:
    return sorted({w for pair in slo.windows for w in (pair.long, pair.short)})


def _sli_rules(slo: SLO) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for window in _windows(slo):
        w = format_duration(window)
        errors = sli_promql.errors_rate(slo.sli, window)
        total = sli_promql.total_rate(slo.sli, window)
        rules.append(
            {
                "record": f"slo:sli_error:ratio_rate{w}",
                "expr": f"({errors})\n/\n({total})\n",
                "labels": _labels(slo, window=w),
            }
        )
        rules.append(
            {"record": f"slo:sli_total:rate{w}", "expr": total, "labels": _labels(slo, window=w)}
        )
    return rules


def _meta_rules(slo: SLO) -> list[dict[str, Any]]:
    sel = f'{{slo="{slo.name}"}}'
    shortest = format_duration(_windows(slo)[0])
    period = format_duration(slo.period)
    return [
        _vector("slo:objective:ratio", slo.objective / 100, slo),
        _vector("slo:error_budget:ratio", slo.budget, slo),
        _vector("slo:time_period:days", slo.period / 86400, slo),
        _burn("slo:current_burn_rate:ratio", shortest, slo),
        *(_period_rules(slo, shortest, period) if slo.period not in _windows(slo) else []),
        _burn("slo:period_burn_rate:ratio", period, slo),
        {
            "record": "slo:period_error_budget_remaining:ratio",
            "expr": f"1 - slo:period_burn_rate:ratio{sel}",
            "labels": _labels(slo),
        },
        {
            "record": "guardian_slo_info",
            "expr": "vector(1)",
            "labels": _labels(
                slo, objective=f"{slo.objective:g}", window_set=slo.window_set, period=period
            ),
        },
    ]


def _burn(record: str, window: str, slo: SLO) -> dict[str, Any]:
    """``record``: the error ratio over ``window`` divided by the SLO's budget."""
    sel = f'{{slo="{slo.name}"}}'
    return {
        "record": record,
        "expr": f"slo:sli_error:ratio_rate{window}{sel}\n"
        f"/ on(slo) group_left\nslo:error_budget:ratio{sel}\n",
        "labels": _labels(slo),
    }


def _period_rules(slo: SLO, shortest: str, period: str) -> list[dict[str, Any]]:
    """The period's error ratio from the shortest window's recorded rates, summed over it."""
    sel = f'{{slo="{slo.name}"}}'
    errors = f"slo:sli_errors:rate{shortest}{sel}"
    total = f"slo:sli_total:rate{shortest}{sel}"
    return [
        {
            "record": f"slo:sli_errors:rate{shortest}",
            "expr": sli_promql.errors_rate(slo.sli, _windows(slo)[0]),
            "labels": _labels(slo, window=shortest),
        },
        {
            "record": f"slo:sli_error:ratio_rate{period}",
            "expr": f"sum_over_time({errors}[{period}])\n/\nsum_over_time({total}[{period}])\n",
            "labels": _labels(slo, window=period),
        },
    ]


def _vector(record: str, value: float, slo: SLO) -> dict[str, Any]:
    return {"record": record, "expr": f"vector({value!r})", "labels": _labels(slo)}


def _alerts(slo: SLO) -> list[dict[str, Any]]:
    return [_alert(slo, pair) for pair in slo.windows]


def _alert(slo: SLO, pair: WindowPair) -> dict[str, Any]:
    sel = f'{{slo="{slo.name}"}}'
    long, short = format_duration(pair.long), format_duration(pair.short)
    threshold = f"({pair.factor(slo.period)!r} * {slo.budget!r})"
    expr = (
        f"(slo:sli_error:ratio_rate{long}{sel} > {threshold})\n"
        f"and ignoring(window)\n(slo:sli_error:ratio_rate{short}{sel} > {threshold})\n"
    )
    if pair.severity == "page" and slo.min_events > 0:
        expr += (
            f"and ignoring(window)\n"
            f"(slo:sli_total:rate{long}{sel} * {pair.long} >= {slo.min_events})\n"
        )
    return {
        "alert": ALERT,
        "expr": expr,
        "labels": _labels(slo, severity=pair.severity, long=long, short=short),
        "annotations": {
            "summary": f"SLO {slo.name} burns its error budget too fast ({long}/{short})",
            "description": (
                f"Error ratio over {long} and {short} is above {pair.factor(slo.period):.3g}x "
                f"the budget of the {slo.objective:g}% objective."
            ),
        },
    }

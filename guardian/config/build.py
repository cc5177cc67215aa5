"""Validated specs → the frozen model: window sets, SLOs (with their SLIs) and Prometheus.

Input: the ``FileSpec`` of each file, with its path (``Loaded``). Output: the model objects of
``guardian.config.model``; problems are appended to ``errors`` as lines naming the file and
the breadcrumb path (a window set defined twice, an SLO name used twice, a pair that can
never fire for the SLO's objective, ...). Called by ``guardian.config.load._merge``.
"""

from __future__ import annotations

from dataclasses import dataclass

from guardian.config import windows as builtin_windows
from guardian.config.model import (
    SLI,
    SLO,
    ApiserverLatencySLI,
    CorednsErrorsSLI,
    LatencySLI,
    PrometheusSettings,
    RatioSLI,
    WindowPair,
)
from guardian.config.read import shown
from guardian.config.slo_spec import SLISpec, SLOSpec, WindowPairSpec
from guardian.config.spec import EvaluationSpec, FileSpec, PrometheusSpec
from guardian.durations import format_duration, parse_duration
from guardian.errors import ConfigError


@dataclass(frozen=True)
class Loaded:
    """One config file's validated spec and the path it was read from."""

    path: str
    spec: FileSpec


def window_sets(
    loaded: list[Loaded], errors: list[ConfigError]
) -> dict[str, tuple[WindowPair, ...]]:
    sets = dict(builtin_windows.BUILTIN)
    origin: dict[str, str] = {}
    for item in loaded:
        for name, pairs in item.spec.window_sets.items():
            label = name if len(name) <= 40 else name[:39] + "…"
            if name in builtin_windows.BUILTIN:
                errors.append(
                    ConfigError(f"{item.path}: window_sets: {name}: is built in; pick another name")
                )
            elif name in origin:
                errors.append(
                    ConfigError(
                        f"{item.path}: window_sets: {label}: already defined in {origin[name]}"
                    )
                )
            else:
                origin[name] = item.path
                sets[name] = tuple(_pair(p) for p in pairs)
    return sets


def _pair(spec: WindowPairSpec) -> WindowPair:
    return WindowPair(
        severity=spec.severity,
        long=parse_duration(spec.long),
        short=parse_duration(spec.short),
        budget_fraction=spec.budget_fraction,
        fixed_factor=spec.factor,
    )


def build_slos(
    loaded: list[Loaded],
    sets: dict[str, tuple[WindowPair, ...]],
    evaluation: PrometheusSpec | EvaluationSpec | None,
    errors: list[ConfigError],
) -> list[SLO]:
    defaults = evaluation if isinstance(evaluation, EvaluationSpec) else EvaluationSpec()
    seen: dict[str, str] = {}
    slos: list[SLO] = []
    for item in loaded:
        for index, spec in enumerate(item.spec.slos):
            where = f"{item.path}: slos[{index}] {spec.name!r}"
            if spec.name in seen:
                errors.append(ConfigError(f"{where}: name: already used by {seen[spec.name]}"))
                continue
            seen[spec.name] = f"slos[{index}] in {item.path}"
            if spec.windows not in sets:
                known = ", ".join(sorted(sets))
                errors.append(
                    ConfigError(
                        f"{where}: windows: unknown window set {shown(spec.windows, 40)} "
                        f"(known: {known})"
                    )
                )
                continue
            slo = _slo(spec, sets[spec.windows], defaults, item.path)
            longest = max(pair.long for pair in slo.windows)
            if longest > slo.period:
                errors.append(
                    ConfigError(
                        f"{where}: windows: {spec.windows} has a {format_duration(longest)} "
                        f"window, longer than the period {spec.period}; pick a shorter window "
                        "set or a longer period"
                    )
                )
                continue
            silent = _never_fire(slo, spec.windows in builtin_windows.BUILTIN)
            errors.extend(ConfigError(f"{where}: windows: {line}") for line in silent)
            if not silent:
                slos.append(slo)
    return slos


def _never_fire(slo: SLO, builtin: bool) -> list[str]:
    """A line per pair whose factor the burn rate can never exceed, so it can never fire.

    The error ratio is at most 1, so the burn rate is at most ``1 / budget`` (100 for 99%);
    a pair fires only above its factor. Window sets are shared, so this is an SLO's check.
    """
    highest = 1.0 / slo.budget
    lines: list[str] = []
    for pair in slo.windows:
        factor = pair.factor(slo.period)
        if factor < highest:
            continue
        if builtin:
            fix = "raise the objective or use a window set with lower factors"
        elif pair.fixed_factor is None:
            fix = "lower its budget_fraction"
        else:
            fix = "lower it"
        verb = "page" if pair.severity == "page" else "open a ticket"
        lines.append(
            f"{pair.severity} {format_duration(pair.long)}/{format_duration(pair.short)}: "
            f"factor {factor:g} can never {verb}: with objective {slo.objective:g} the burn "
            f"rate is at most {highest:g}; {fix}"
        )
    return lines


def _slo(spec: SLOSpec, pairs: tuple[WindowPair, ...], defaults: EvaluationSpec, path: str) -> SLO:
    return SLO(
        name=spec.name,
        objective=spec.objective,
        period=parse_duration(spec.period),
        sli=_sli(spec.sli),
        window_set=spec.windows,
        windows=pairs,
        min_events=spec.min_events if spec.min_events is not None else defaults.min_events,
        max_staleness=parse_duration(defaults.max_staleness),
        labels=tuple(sorted(spec.labels.items())),
        description=spec.description,
        source=path,
    )


def _sli(spec: SLISpec) -> SLI:
    if spec.apiserver_latency is not None:
        a = spec.apiserver_latency
        return ApiserverLatencySLI(
            metric=a.metric,
            requests_metric=a.requests_metric,
            verbs=a.verbs,
            resource_threshold=_seconds_le(a.thresholds.resource),
            namespace_threshold=_seconds_le(a.thresholds.namespace),
            cluster_threshold=_seconds_le(a.thresholds.cluster),
            write_threshold=_seconds_le(a.thresholds.write),
            selector=a.selector,
            rejected_are_bad=a.rejected_are_bad,
        )
    if spec.coredns_errors is not None:
        c = spec.coredns_errors
        return CorednsErrorsSLI(metric=c.metric, rcodes=tuple(c.rcodes), selector=c.selector)
    if spec.ratio is not None:
        return RatioSLI(errors=spec.ratio.errors, total=spec.ratio.total)
    assert spec.latency is not None
    lat = spec.latency
    return LatencySLI(metric=lat.metric, le=lat.le, selector=lat.selector)


def _seconds_le(duration: str) -> str:
    """A duration as the ``le`` label Kubernetes exposes: ``1s`` → ``"1"``."""
    return str(parse_duration(duration))


def prometheus_settings(spec: PrometheusSpec) -> PrometheusSettings:
    auth = spec.basic_auth
    return PrometheusSettings(
        url=spec.url,
        timeout=parse_duration(spec.timeout),
        bearer_token_file=spec.bearer_token_file,
        bearer_token_env=spec.bearer_token_env,
        basic_auth_username=auth.username if auth else None,
        basic_auth_password_file=auth.password_file if auth else None,
        tls_ca_file=spec.tls_ca_file,
        tls_insecure_skip_verify=spec.tls_insecure_skip_verify,
        headers=tuple(sorted(spec.headers.items())),
        source=spec.source,
        parallel_queries=spec.parallel_queries,
    )

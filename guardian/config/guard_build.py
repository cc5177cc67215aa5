"""The validated ``change_guard`` spec → ``ChangeGuardSettings``, checked against the SLOs.

Input: the file's path, its ``ChangeGuardSpec`` and the SLOs built from every file. Output:
``ChangeGuardSettings`` (durations in seconds, the pairs as ``WindowPair`` with a fixed
factor); problems are appended to ``errors`` as lines naming the file and the path: an SLO
name no file defines, a factor that no selected SLO's burn rate can ever exceed. Called by
``guardian.config.load._merge``.
"""

from __future__ import annotations

from collections.abc import Sequence

from guardian.config.guard_spec import ChangeGuardSpec
from guardian.config.model import SLO, ChangeGuardSettings, WindowPair
from guardian.config.read import shown
from guardian.durations import parse_duration
from guardian.errors import ConfigError


def change_guard(
    path: str, spec: ChangeGuardSpec, slos: Sequence[SLO], errors: list[ConfigError]
) -> ChangeGuardSettings:
    """The settings of ``spec`` (read from ``path``); problems go to ``errors``."""
    names = {slo.name for slo in slos}
    for index, name in enumerate(spec.slos):
        if name not in names:
            known = ", ".join(sorted(names)) or "none"
            errors.append(
                ConfigError(
                    f"{path}: change_guard: slos[{index}]: no SLO is called {shown(name, 70)} "
                    f"(known: {known}); fix the name or remove it"
                )
            )
    settings = ChangeGuardSettings(
        slos=tuple(spec.slos),
        labels=tuple(sorted(spec.labels.items())),
        guard_window=parse_duration(spec.guard_window),
        windows=tuple(
            WindowPair(
                "page", parse_duration(w.long), parse_duration(w.short), fixed_factor=w.factor
            )
            for w in spec.windows
        ),
        baseline_window=parse_duration(spec.baseline.window),
        baseline_ratio=spec.baseline.ratio,
        min_events=spec.min_events,
        playbook=spec.playbook,
        source=path,
    )
    _reachable(path, spec, settings, slos, errors)
    return settings


def _reachable(
    path: str,
    spec: ChangeGuardSpec,
    settings: ChangeGuardSettings,
    slos: Sequence[SLO],
    errors: list[ConfigError],
) -> None:
    """A pair whose factor is at least ``1 / budget`` of a selected SLO can never fire for it
    (the error ratio is at most 1)."""
    for slo in (s for s in slos if settings.selects(s)):
        highest = 1.0 / slo.budget
        for index, pair in enumerate(spec.windows):
            if pair.factor >= highest:
                errors.append(
                    ConfigError(
                        f"{path}: change_guard: windows[{index}]: factor: {pair.factor:g} can "
                        f"never fire for SLO {slo.name}: with objective {slo.objective:g} the "
                        f"burn rate is at most {highest:g}; lower it"
                    )
                )

"""Load playbooks: files or directories → validated specs → frozen ``Playbook`` values.

Input: paths (files or directories of ``*.yaml``), the action catalogue's parameter models,
and the SLO names of the loaded config. Output: playbooks by name, or ``ConfigErrors`` with
one breadcrumb line per problem, e.g. ``playbooks/shed.yaml: steps[0] 'shed': action:
unknown action 'shed' (known: pause-rollout, ...)``. Called by ``guardian.app.wiring`` (the CLI,
the daemon and its reload).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from guardian.config.load import validated
from guardian.config.messages import format_error
from guardian.config.read import shown
from guardian.durations import parse_duration
from guardian.errors import ConfigError, ConfigErrors
from guardian.playbooks import template
from guardian.playbooks.model import (
    Guards,
    MaintenanceWindow,
    Playbook,
    Step,
    Trigger,
    Verify,
)
from guardian.playbooks.spec import GuardsSpec, PlaybookSpec, StepSpec


def load_playbooks(
    paths: Iterable[str | Path],
    actions: Mapping[str, type[BaseModel]],
    slo_names: Iterable[str] = (),
) -> dict[str, Playbook]:
    """Every playbook found under ``paths``, checked against ``actions`` and ``slo_names``."""
    errors: list[ConfigError] = []
    found: dict[str, Playbook] = {}
    known_slos = set(slo_names)
    for file in _files([Path(p) for p in paths], errors):
        try:
            spec = _parse(file)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            continue
        problems = _check(spec, actions, known_slos)
        errors.extend(ConfigError(f"{file}: {p}") for p in problems)
        if spec.name in found:
            errors.append(
                ConfigError(
                    f"{file}: name: {spec.name!r} already used by {found[spec.name].source}"
                )
            )
        elif not problems:
            found[spec.name] = _model(spec, str(file))
    if errors:
        raise ConfigErrors(errors)
    return found


def _files(paths: list[Path], errors: list[ConfigError]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        elif path.exists():
            files.append(path)
        else:
            errors.append(ConfigError(f"{path}: no such playbook file or directory"))
    return files


def _parse(file: Path) -> PlaybookSpec:
    return validated(file, PlaybookSpec, _named)


def _named(message: str, raw: dict[str, Any]) -> str:
    """Add the step's name to ``steps[i]`` breadcrumbs."""
    steps = raw.get("steps")
    if message.startswith("steps[") and isinstance(steps, list):
        index = int(message[6 : message.index("]")])
        if index < len(steps) and isinstance(steps[index], dict) and "name" in steps[index]:
            end = message.index("]") + 1
            return f"{message[:end]} {shown(steps[index]['name'], 70)}{message[end:]}"
    return message


def _check(spec: PlaybookSpec, actions: Mapping[str, type[BaseModel]], slos: set[str]) -> list[str]:
    problems = []
    for name in spec.trigger.slos:
        if slos and name not in slos:
            problems.append(
                f"trigger: slos: unknown SLO {shown(name, 70)} (known: {', '.join(sorted(slos))})"
            )
    for index, step in enumerate(spec.steps):
        where = f"steps[{index}] {shown(step.name, 70)}"
        model = actions.get(step.action)
        if model is None:
            known = ", ".join(sorted(actions))
            problems.append(
                f"{where}: action: unknown action {shown(step.action, 70)} (known: {known})"
            )
            continue
        problems.extend(f"{where}: {p}" for p in _check_params(step, model))
    return problems


def _check_params(step: StepSpec, model: type[BaseModel]) -> list[str]:
    problems = []
    for key in step.params:
        if key not in model.model_fields:
            known = ", ".join(model.model_fields)
            problems.append(
                f"params: {_cut(key)}: not a parameter of {step.action} (known: {known})"
            )
    for path in [*template.paths([step.params, step.context]), *([step.when] if step.when else [])]:
        try:
            template.check(path)
        except template.TemplateError as exc:
            problems.append(f"params: {_cut(str(exc), 200)}")
    if problems:
        return problems
    if template.paths(step.params):
        required = [n for n, f in model.model_fields.items() if f.is_required()]
        return [f"params: {n}: is required" for n in required if n not in step.params]
    try:
        checked = model.model_validate(step.params)
    except ValidationError as exc:
        return [f"params: {format_error(e, step.params)}" for e in exc.errors()]
    return [
        f"params: {name}: must be a finite number (got {value})"
        for name, value in checked
        if isinstance(value, float) and not math.isfinite(value)
    ]


def _cut(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _model(spec: PlaybookSpec, source: str) -> Playbook:
    roots = sorted(
        {p.split(".")[0].split("[")[0] for s in spec.steps for p in template.paths(s.params)}
    )
    return Playbook(
        name=spec.name,
        description=spec.description,
        trigger=Trigger(
            slos=tuple(spec.trigger.slos),
            labels=tuple(sorted(spec.trigger.labels.items())),
            severity=spec.trigger.severity,
        ),
        guards=_guards(spec.guards),
        approver_users=tuple(spec.approvers.users),
        approver_groups=tuple(spec.approvers.groups),
        steps=tuple(_step(s) for s in spec.steps),
        source=source,
        needs=tuple(roots),
    )


def _guards(guards: GuardsSpec) -> Guards:
    return Guards(
        cooldown=parse_duration(guards.cooldown),
        max_runs_per_hour=guards.max_runs_per_hour,
        one_per_target=guards.one_per_target,
        require_suspect=guards.require_suspect,
        maintenance_windows=tuple(
            MaintenanceWindow(
                days=tuple(w.days),
                start=time.fromisoformat(w.start),
                end=time.fromisoformat(w.end),
                timezone=w.timezone,
            )
            for w in guards.maintenance_windows
        ),
    )


def _step(s: StepSpec) -> Step:
    return Step(
        name=s.name,
        action=s.action,
        params=dict(s.params),
        approval=s.approval,
        verify=Verify(
            burn_falls=s.verify.burn_falls,
            promql=s.verify.promql,
            within=parse_duration(s.verify.within),
        )
        if s.verify
        else None,
        timeout=parse_duration(s.timeout),
        on_failure=s.on_failure,
        context=s.context,
        when=s.when,
    )

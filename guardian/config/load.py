"""Load configuration: YAML file or directory → validated specs → the frozen ``Config``.

Input: a path. Output: ``Config``, or ``ConfigErrors`` holding one line per problem, each
naming the file and the breadcrumb path, e.g.
``config/slos.yaml: slos[1] 'dns-errors': objective: must be > 0 and < 100 (got 101)``.
Each file is read by ``guardian.config.read`` first (a regular file of at most 1 MiB, UTF-8,
aliases, nesting and duplicate keys checked), so no file can hang or flood the loader.
Called by the CLI (``guardian check`` and every command taking ``-c``) and the daemon's reload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from guardian.config import windows as builtin_windows
from guardian.config.model import (
    SLI,
    SLO,
    ApiserverLatencySLI,
    Config,
    CorednsErrorsSLI,
    DaemonSettings,
    LatencySLI,
    PolicySettings,
    PrometheusSettings,
    RatioSLI,
    SlackSettings,
    WindowPair,
)
from guardian.config.read import read_yaml, shown
from guardian.config.spec import (
    API_VERSION,
    EvaluationSpec,
    FileSpec,
    PrometheusSpec,
    SLISpec,
    SLOSpec,
    WindowPairSpec,
)
from guardian.durations import format_duration, parse_duration
from guardian.errors import ConfigError, ConfigErrors


@dataclass(frozen=True)
class _Loaded:
    path: str
    spec: FileSpec


def load_config(path: str | Path) -> Config:
    """Load and validate ``path`` (a YAML file or a directory of them)."""
    files = _files(Path(path))
    errors: list[ConfigError] = []
    loaded: list[_Loaded] = []
    for file in files:
        try:
            loaded.append(_Loaded(str(file), _parse_file(file)))
        except ConfigErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise ConfigErrors(errors)
    return _merge(str(path), loaded)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if not files:
            raise ConfigErrors([ConfigError(f"{path}: no *.yaml files in this directory")])
        return files
    if not path.exists():
        raise ConfigErrors([ConfigError(f"{path}: no such file or directory")])
    return [path]


def _parse_file(file: Path) -> FileSpec:
    raw = read_document(file)
    try:
        return FileSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigErrors(
            [ConfigError(f"{file}: {format_error(err, raw)}") for err in exc.errors()]
        ) from None


def read_document(file: Path) -> dict[str, Any]:
    """One ``guardian/v1`` YAML document as a mapping; ``ConfigErrors`` naming the file else.

    The file is read as ``guardian.config.read`` says: a regular file of at most 1 MiB, UTF-8,
    with aliases, nesting and duplicate keys checked before anything is built.
    """
    raw = read_yaml(file)
    if not isinstance(raw, dict):
        raise ConfigErrors(
            [ConfigError(f"{file}: must be a mapping starting with 'version: {API_VERSION}'")]
        )
    if raw.get("version") != API_VERSION:
        got = shown(raw.get("version"))
        raise ConfigErrors([ConfigError(f"{file}: version: must be {API_VERSION} (got {got})")])
    return raw


def format_error(err: ErrorDetails, raw: Any) -> str:
    """One pydantic error as ``breadcrumb: message``."""
    crumbs = _breadcrumb(err["loc"], raw)
    message = _message(err)
    return f"{crumbs}: {message}" if crumbs else message


def _breadcrumb(loc: tuple[int | str, ...], raw: Any) -> str:
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int) and parts:
            parts[-1] += f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if parts[-1].startswith("slos[") and isinstance(node, dict):
                name = node.get("name")
                if isinstance(name, str):
                    parts[-1] += f" {shown(name, 70)}"
            continue
        if item in ("function-after[_duration(), str]",) or not isinstance(item, str | int):
            continue
        text = str(item)
        parts.append(text if len(text) <= 40 else text[:39] + "…")
        node = node.get(item) if isinstance(node, dict) else None
    return ": ".join(parts)


_EXPECT = {
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
}


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = shown(err.get("input"))
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key; remove it or check its spelling"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "literal_error":
        expected = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        return f"must be one of {expected} (got {got})"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {sign} {bound} (got {got})"
    if kind == "too_short":
        return f"must not be empty (got {got})"
    if kind in _EXPECT:
        return f"{_EXPECT[kind]} (got {got})"
    return f"{err['msg']} (got {got})"


def _merge(root: str, loaded: list[_Loaded]) -> Config:
    errors: list[ConfigError] = []
    prometheus = _single_section(root, loaded, "prometheus", errors)
    evaluation = _single_section(root, loaded, "evaluation", errors)
    policy = _policy(loaded, errors)
    slack = _slack(loaded, errors)
    daemon = _daemon(loaded, errors)
    sets = _window_sets(loaded, errors)
    slos = _slos(loaded, sets, evaluation, errors)
    if errors:
        raise ConfigErrors(errors)
    assert isinstance(prometheus, PrometheusSpec)
    return Config(
        prometheus=_prometheus(prometheus),
        slos=tuple(slos),
        window_sets=sets,
        files=tuple(item.path for item in loaded),
        policy=policy,
        slack=slack,
        daemon=daemon,
    )


def _daemon(loaded: list[_Loaded], errors: list[ConfigError]) -> DaemonSettings:
    found = [(item.path, item.spec.daemon) for item in loaded if item.spec.daemon is not None]
    for path, _ in found[1:]:
        errors.append(ConfigError(f"{path}: daemon: already given in {found[0][0]}; keep one"))
    if not found:
        return DaemonSettings()
    spec = found[0][1]
    assert spec is not None
    return DaemonSettings(
        interval=parse_duration(spec.interval),
        progress_interval=parse_duration(spec.progress_interval),
        listen=spec.listen,
        lease_name=spec.lease.name,
        lease_namespace=spec.lease.namespace,
        lease_duration=parse_duration(spec.lease.duration),
        renew_deadline=parse_duration(spec.lease.renew_deadline),
        retry_period=parse_duration(spec.lease.retry_period),
        log_format=spec.log_format,
    )


def _slack(loaded: list[_Loaded], errors: list[ConfigError]) -> SlackSettings | None:
    found = [(item.path, item.spec.slack) for item in loaded if item.spec.slack is not None]
    for path, _ in found[1:]:
        errors.append(ConfigError(f"{path}: slack: already given in {found[0][0]}; keep one"))
    if not found:
        return None
    spec = found[0][1]
    assert spec is not None
    return SlackSettings(
        channel=spec.channel,
        allowed_channels=tuple(spec.allowed_channels or [spec.channel]),
        operators=tuple(spec.operators),
        mode=spec.mode,
        listen=spec.listen,
        api_url=spec.api_url,
        bot_token_env=spec.bot_token_env,
        bot_token_file=spec.bot_token_file,
        app_token_env=spec.app_token_env,
        app_token_file=spec.app_token_file,
        signing_secret_env=spec.signing_secret_env,
        signing_secret_file=spec.signing_secret_file,
    )


def _policy(loaded: list[_Loaded], errors: list[ConfigError]) -> PolicySettings:
    found = [(item.path, item.spec.policy) for item in loaded if item.spec.policy is not None]
    for path, _ in found[1:]:
        errors.append(ConfigError(f"{path}: policy: already given in {found[0][0]}; keep one"))
    if not found:
        return PolicySettings()
    path, spec = found[0]
    assert spec is not None
    base = Path(path).parent
    return PolicySettings(
        playbook_paths=tuple(str(base / p) for p in spec.playbooks),
        store_url=spec.store.url,
        store_url_env=spec.store.url_env,
        approval_timeout=parse_duration(spec.approval_timeout),
        max_changes=spec.max_changes,
        notify=spec.notify,
        protected_subjects=tuple(spec.protected_subjects),
    )


def _single_section(
    root: str, loaded: list[_Loaded], key: str, errors: list[ConfigError]
) -> PrometheusSpec | EvaluationSpec | None:
    found: list[tuple[str, PrometheusSpec | EvaluationSpec]] = []
    for item in loaded:
        section = getattr(item.spec, key)
        if section is not None:
            found.append((item.path, section))
    for path, _ in found[1:]:
        errors.append(ConfigError(f"{path}: {key}: already given in {found[0][0]}; keep one"))
    if not found and key == "prometheus":
        errors.append(
            ConfigError(f"{root}: prometheus: is required; add 'prometheus: {{url: ...}}'")
        )
    return found[0][1] if found else None


def _window_sets(
    loaded: list[_Loaded], errors: list[ConfigError]
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


def _slos(
    loaded: list[_Loaded],
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


def _prometheus(spec: PrometheusSpec) -> PrometheusSettings:
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

"""Load configuration: YAML file or directory → validated specs → the frozen ``Config``.

Input: a path. Output: ``Config``, or ``ConfigErrors`` holding one line per problem, each
naming the file and the breadcrumb path, e.g.
``config/slos.yaml: slos[1] 'dns-errors': objective: must be > 0 and < 100 (got 101)``.
Each file is read by ``guardian.config.read`` first (a regular file of at most 1 MiB, UTF-8,
aliases, nesting and duplicate keys checked), so no file can hang or flood the loader.
This module finds the files, merges their sections and keeps each given once; the model is
built by ``guardian.config.build`` (``change_guard`` by ``guardian.config.guard_build``) and
pydantic errors become lines in
``guardian.config.messages``. Called by ``guardian.app`` (``wiring``, the commands taking
``-c``, the daemon's reload).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from guardian.config.build import Loaded, build_slos, prometheus_settings, window_sets
from guardian.config.guard_build import change_guard
from guardian.config.messages import format_error
from guardian.config.model import (
    Config,
    DaemonSettings,
    PolicySettings,
    SlackSettings,
)
from guardian.config.read import read_yaml, shown
from guardian.config.spec import (
    API_VERSION,
    DaemonSpec,
    EvaluationSpec,
    FileSpec,
    PolicySpec,
    PrometheusSpec,
    SlackSpec,
)
from guardian.durations import parse_duration
from guardian.errors import ConfigError, ConfigErrors

M = TypeVar("M", bound=BaseModel)


def load_config(path: str | Path) -> Config:
    """Load and validate ``path`` (a YAML file or a directory of them)."""
    files = _files(Path(path))
    errors: list[ConfigError] = []
    loaded: list[Loaded] = []
    for file in files:
        try:
            loaded.append(Loaded(str(file), _parse_file(file)))
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
    return validated(file, FileSpec)


def validated(
    file: Path,
    model: type[M],
    named: Callable[[str, dict[str, Any]], str] = lambda message, _: message,
) -> M:
    """``file``'s document (``read_document``) as ``model``; ``ConfigErrors`` else, one line
    per pydantic error naming the file, each line passed through ``named``. Also called by
    ``guardian.playbooks.load``."""
    raw = read_document(file)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigErrors(
            [ConfigError(f"{file}: {named(format_error(err, raw), raw)}") for err in exc.errors()]
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


def _merge(root: str, loaded: list[Loaded]) -> Config:
    errors: list[ConfigError] = []
    prometheus = _single_section(root, loaded, "prometheus", errors)
    evaluation = _single_section(root, loaded, "evaluation", errors)
    policy = _policy(loaded, errors)
    slack = _slack(loaded, errors)
    daemon = _daemon(loaded, errors)
    sets = window_sets(loaded, errors)
    slos = build_slos(loaded, sets, evaluation, errors)
    guard = _once(loaded, "change_guard", errors)
    guarded = change_guard(guard[0], guard[1], slos, errors) if guard else None
    if errors:
        raise ConfigErrors(errors)
    assert isinstance(prometheus, PrometheusSpec)
    return Config(
        prometheus=prometheus_settings(prometheus),
        slos=tuple(slos),
        window_sets=sets,
        files=tuple(item.path for item in loaded),
        policy=policy,
        slack=slack,
        daemon=daemon,
        change_guard=guarded,
    )


def _once(loaded: list[Loaded], key: str, errors: list[ConfigError]) -> tuple[str, Any] | None:
    """The first file's section ``key`` (its path and spec); each other file giving it too is
    an error."""
    found = [(item.path, getattr(item.spec, key)) for item in loaded]
    found = [(path, section) for path, section in found if section is not None]
    for path, _ in found[1:]:
        errors.append(ConfigError(f"{path}: {key}: already given in {found[0][0]}; keep one"))
    return found[0] if found else None


def _daemon(loaded: list[Loaded], errors: list[ConfigError]) -> DaemonSettings:
    found = _once(loaded, "daemon", errors)
    if found is None:
        return DaemonSettings()
    spec: DaemonSpec = found[1]
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


def _slack(loaded: list[Loaded], errors: list[ConfigError]) -> SlackSettings | None:
    found = _once(loaded, "slack", errors)
    if found is None:
        return None
    spec: SlackSpec = found[1]
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


def _policy(loaded: list[Loaded], errors: list[ConfigError]) -> PolicySettings:
    found = _once(loaded, "policy", errors)
    if found is None:
        return PolicySettings()
    path, spec = found[0], cast(PolicySpec, found[1])
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
    root: str, loaded: list[Loaded], key: str, errors: list[ConfigError]
) -> PrometheusSpec | EvaluationSpec | None:
    found = _once(loaded, key, errors)
    if found is None and key == "prometheus":
        errors.append(
            ConfigError(f"{root}: prometheus: is required; add 'prometheus: {{url: ...}}'")
        )
    section: PrometheusSpec | EvaluationSpec | None = found[1] if found else None
    return section

"""The internal, frozen model every stage works with; durations are seconds, ratios are 0–1.

Built from validated specs by ``guardian.config.build`` (each ``SLO`` with its SLI and
``WindowPair``s, ``PrometheusSettings``; the built-in pairs are ``guardian.config.windows``)
and ``guardian.config.load`` (``Config``, ``DaemonSettings``, ``PolicySettings``,
``SlackSettings``; ``ChangeGuardSettings`` by ``guardian.config.guard_build``); read by every
later stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["page", "ticket"]


@dataclass(frozen=True)
class WindowPair:
    """A long and a short window that must both burn faster than ``factor`` to fire."""

    severity: Severity
    long: int
    """Long window, seconds: decides how much budget must burn before firing."""
    short: int
    """Short window, seconds: makes the alert stop soon after the burn stops."""
    budget_fraction: float | None = None
    """Share of the period's budget the long window may burn; ``None`` when factor is fixed."""
    fixed_factor: float | None = None
    """A factor given directly instead of a budget fraction."""

    def factor(self, period: int) -> float:
        """Burn-rate threshold: ``budget_fraction × period / long`` (SRE Workbook)."""
        if self.fixed_factor is not None:
            return self.fixed_factor
        assert self.budget_fraction is not None
        return self.budget_fraction * period / self.long


@dataclass(frozen=True)
class ApiserverLatencySLI:
    """kubernetes-mixin API-server latency: slow reads (by scope) or writes, 5xx (429) are bad."""

    metric: str
    requests_metric: str
    verbs: Literal["read", "write", "all"]
    resource_threshold: str
    namespace_threshold: str
    cluster_threshold: str
    write_threshold: str
    selector: str
    rejected_are_bad: bool = False
    """Requests answered 429 (shed by API Priority and Fairness) count as bad too."""


@dataclass(frozen=True)
class CorednsErrorsSLI:
    """Share of CoreDNS responses with an error rcode."""

    metric: str
    rcodes: tuple[str, ...]
    selector: str


@dataclass(frozen=True)
class RatioSLI:
    """Free PromQL for errors and total, ``{{window}}`` replaced by a window."""

    errors: str
    total: str


@dataclass(frozen=True)
class LatencySLI:
    """A histogram; requests above the ``le`` bucket are bad."""

    metric: str
    le: str
    selector: str


SLI = ApiserverLatencySLI | CorednsErrorsSLI | RatioSLI | LatencySLI


@dataclass(frozen=True)
class SLO:
    """One objective, ready to evaluate."""

    name: str
    objective: float
    """Percent, e.g. 99.9."""
    period: int
    sli: SLI
    window_set: str
    windows: tuple[WindowPair, ...]
    min_events: int
    """Events needed in the long window before a pair may fire (low-traffic guard)."""
    max_staleness: int
    labels: tuple[tuple[str, str], ...] = ()
    description: str = ""
    source: str = ""
    """File the SLO came from, for messages."""

    @property
    def budget(self) -> float:
        """Allowed error ratio, ``1 - objective``."""
        return 1.0 - self.objective / 100.0


@dataclass(frozen=True)
class PrometheusSettings:
    """Connection to Prometheus or anything speaking its query API."""

    url: str
    timeout: int = 10
    bearer_token_file: str | None = None
    bearer_token_env: str | None = None
    basic_auth_username: str | None = None
    basic_auth_password_file: str | None = None
    tls_ca_file: str | None = None
    tls_insecure_skip_verify: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    source: Literal["raw", "rules"] = "raw"
    parallel_queries: int = 2
    """Window queries in flight at once."""


@dataclass(frozen=True)
class PolicySettings:
    """How burning SLOs become playbook runs, and where runs are kept."""

    playbook_paths: tuple[str, ...] = ()
    """Resolved against the file that named them."""
    store_url: str = "sqlite:///guardian.db"
    store_url_env: str | None = None
    approval_timeout: int = 900
    max_changes: int = 200
    notify: Literal["page", "ticket", "none"] = "ticket"
    protected_subjects: tuple[str, ...] = ()
    """Added to throttle-client's built-in protected subjects (never replaces them)."""


@dataclass(frozen=True)
class SlackSettings:
    """Where approvals go in Slack and how guardian listens (secrets are only referenced)."""

    channel: str
    allowed_channels: tuple[str, ...]
    operators: tuple[str, ...] = ()
    mode: Literal["socket", "http"] = "socket"
    listen: str = "127.0.0.1:8080"
    api_url: str = "https://slack.com/api/"
    bot_token_env: str | None = "SLACK_BOT_TOKEN"
    bot_token_file: str | None = None
    app_token_env: str | None = "SLACK_APP_TOKEN"
    app_token_file: str | None = None
    signing_secret_env: str | None = "SLACK_SIGNING_SECRET"
    signing_secret_file: str | None = None


@dataclass(frozen=True)
class DaemonSettings:
    """How ``guardian run`` schedules its jobs, serves HTTP and elects a leader (seconds)."""

    interval: int = 30
    progress_interval: int = 5
    listen: str = "127.0.0.1:8080"
    lease_name: str = "guardian"
    lease_namespace: str | None = None
    lease_duration: int = 15
    renew_deadline: int = 10
    retry_period: int = 2
    log_format: Literal["auto", "json", "text"] = "auto"


@dataclass(frozen=True)
class ChangeGuardSettings:
    """Change-aware detection (``change_guard``): while a change rolls out, the SLOs it
    selects are also checked on shorter windows with lower factors (seconds, ratios)."""

    slos: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    guard_window: int = 1800
    """A change arms the guard while in flight and this long after it began."""
    windows: tuple[WindowPair, ...] = (WindowPair("page", 600, 120, fixed_factor=2.0),)
    baseline_window: int = 3600
    baseline_ratio: float = 4.0
    """The burn now must be at least this many times the burn before the change."""
    min_events: int | None = None
    """Events a pair's long window needs before it may fire; ``None``: the SLO's own."""
    playbook: str = "halt-change"
    source: str = ""

    def selects(self, slo: SLO) -> bool:
        """True when ``slo`` is named, or carries every label of ``labels`` (when given)."""
        if slo.name in self.slos:
            return True
        own = dict(slo.labels)
        return bool(self.labels) and all(own.get(k) == v for k, v in self.labels)


@dataclass(frozen=True)
class Config:
    """Everything loaded from one file or one directory."""

    prometheus: PrometheusSettings
    slos: tuple[SLO, ...]
    window_sets: dict[str, tuple[WindowPair, ...]] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    policy: PolicySettings = PolicySettings()
    slack: SlackSettings | None = None
    daemon: DaemonSettings = DaemonSettings()
    change_guard: ChangeGuardSettings | None = None
    """``None`` when no file has a ``change_guard`` section: no change-aware detection."""

    def slo(self, name: str) -> SLO:
        """The SLO called ``name``; ``KeyError`` if there is none."""
        for slo in self.slos:
            if slo.name == name:
                return slo
        raise KeyError(name)

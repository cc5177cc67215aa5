"""The versioned user spec (``version: guardian/v1``): what a YAML file may say, nothing more.

Input: one parsed YAML document. Output: a ``FileSpec`` (pydantic, frozen, unknown keys
forbidden); its SLOs and window sets are specified in ``guardian.config.slo_spec``, its
``change_guard`` section in ``guardian.config.guard_spec``. Called by
``guardian.config.load``, which merges the files' sections (``guardian.config.build`` turns
specs into the internal model; ``guardian.config.messages`` formats pydantic's errors into
breadcrumb lines), and by ``guardian schema`` (the CLI prints its JSON Schema). Checks that
need more than one file (duplicate names, references to window sets) live in
``guardian.config.load`` and ``guardian.config.build``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from guardian.config.checks import (
    Headers,
    HttpURL,
    Listen,
    Spec,
    StoreURL,
    Subjects,
    at_most,
)
from guardian.config.guard_spec import ChangeGuardSpec
from guardian.config.read import shown
from guardian.config.slo_spec import SLOSpec, WindowPairSpec
from guardian.durations import parse_duration

API_VERSION = "guardian/v1"


class BasicAuthSpec(Spec):
    """HTTP basic authentication; the password is read from a file, never written inline."""

    username: str
    password_file: str


class PrometheusSpec(Spec):
    """How to reach Prometheus (or Thanos, Mimir, Cortex: anything with its query API)."""

    url: HttpURL = Field(description="Base URL, e.g. http://prometheus.monitoring:9090")
    timeout: Annotated[str, BeforeValidator(at_most("10m"))] = Field(
        "10s", description="Timeout of one query"
    )
    bearer_token_file: str | None = Field(None, description="File holding a bearer token")
    bearer_token_env: str | None = Field(None, description="Environment variable holding it")
    basic_auth: BasicAuthSpec | None = None
    tls_ca_file: str | None = Field(None, description="CA bundle for an https URL")
    tls_insecure_skip_verify: bool = False
    headers: Headers = Field(
        default_factory=dict, description="Extra headers, e.g. X-Scope-OrgID for Mimir"
    )
    source: Literal["raw", "rules"] = Field(
        "raw", description="raw: query the SLI metrics; rules: read `guardian rules` output"
    )
    parallel_queries: int = Field(
        2, ge=1, le=16, description="Window queries sent at once (Prometheus runs each on a core)"
    )

    @model_validator(mode="after")
    def _one_auth(self) -> PrometheusSpec:
        given = [self.bearer_token_file, self.bearer_token_env, self.basic_auth]
        if sum(x is not None for x in given) > 1:
            raise ValueError("use only one of bearer_token_file, bearer_token_env and basic_auth")
        return self


class EvaluationSpec(Spec):
    """Defaults that apply to every SLO unless the SLO says otherwise."""

    max_staleness: Annotated[str, BeforeValidator(at_most("1d"))] = Field(
        "2m", description="Newest sample older than this makes the SLO no_data"
    )
    min_events: int = Field(
        0, ge=0, description="Events needed in the long window before a pair may page"
    )


class StoreSpec(Spec):
    """Where executions, approvals and the audit log live (a SQLAlchemy URL)."""

    url: StoreURL = Field(
        "sqlite:///guardian.db",
        description="sqlite:///path (relative to the working directory) or "
        "postgresql+psycopg://user@host/db; no password here: use url_env",
    )
    url_env: str | None = Field(
        None, description="Environment variable holding the URL instead (it may hold a password)"
    )


class PolicySpec(Spec):
    """How burning SLOs turn into playbook runs."""

    playbooks: list[str] = Field(
        default_factory=list, description="Playbook files or directories, relative to this file"
    )
    store: StoreSpec = StoreSpec()
    approval_timeout: Annotated[str, BeforeValidator(at_most("7d"))] = Field(
        "15m", description="A pending approval expires after this long"
    )
    max_changes: int = Field(
        200, ge=1, description="Blast radius: requests one run may change at most"
    )
    notify: Literal["page", "ticket", "none"] = Field(
        "ticket", description="Lowest severity that notifies (page: only pages)"
    )
    protected_subjects: Subjects = Field(
        default_factory=list,
        description="More subjects throttle-client never throttles, beside the built-in ones "
        "(system:masters, system:nodes, system:kube-*, kube-system service accounts, guardian "
        "itself...): user:NAME, group:NAME or serviceaccount:NAMESPACE/NAME; * matches anything",
    )


class SlackSpec(Spec):
    """Approvals and the /guardian command in Slack. Tokens come from the environment or files."""

    channel: str = Field(description="Channel ID that receives approval messages, e.g. C0123ABCD")
    allowed_channels: list[str] = Field(
        default_factory=list,
        description="Channel IDs where buttons and /guardian are accepted (default: channel)",
    )
    operators: list[str] = Field(
        default_factory=list,
        description="User IDs allowed to run playbooks and resume from Slack (empty: anyone "
        "in an allowed channel); anyone there may pause",
    )
    mode: Literal["socket", "http"] = Field(
        "socket", description="socket: Socket Mode (no ingress); http: POST /slack/events"
    )
    listen: Listen = Field("127.0.0.1:8080", description="host:port of /slack/events in http mode")
    api_url: str = Field("https://slack.com/api/", description="Slack Web API base URL")
    bot_token_env: str | None = "SLACK_BOT_TOKEN"
    bot_token_file: str | None = None
    app_token_env: str | None = "SLACK_APP_TOKEN"
    app_token_file: str | None = None
    signing_secret_env: str | None = "SLACK_SIGNING_SECRET"
    signing_secret_file: str | None = None


class LeaseSpec(Spec):
    """Leader election: only the holder of this Lease decides and acts."""

    name: str = Field("guardian", description="Lease name")
    namespace: str | None = Field(
        None, description="Lease namespace (default: the pod's namespace, else 'default')"
    )
    duration: Annotated[str, BeforeValidator(at_most("10m"))] = Field(
        "15s", description="A lost leader is replaced after this long"
    )
    renew_deadline: Annotated[str, BeforeValidator(at_most("10m"))] = Field(
        "10s", description="A leader gives up after failing so long"
    )
    retry_period: Annotated[str, BeforeValidator(at_most("10m"))] = Field(
        "2s", description="How often candidates try and leaders renew"
    )

    @model_validator(mode="after")
    def _order(self) -> LeaseSpec:
        duration, renew, retry = (
            parse_duration(self.duration),
            parse_duration(self.renew_deadline),
            parse_duration(self.retry_period),
        )
        if not duration > renew > 1.2 * retry >= 1.2:
            raise ValueError(
                "need duration > renew_deadline > 1.2 × retry_period and retry_period >= 1s "
                f"(got {self.duration}, {self.renew_deadline}, {self.retry_period})"
            )
        return self


class DaemonSpec(Spec):
    """`guardian run`: the schedule, the HTTP port and leader election."""

    interval: Annotated[str, BeforeValidator(at_most("1h"))] = Field(
        "30s", description="Evaluate every SLO this often"
    )
    progress_interval: Annotated[str, BeforeValidator(at_most("10m"))] = Field(
        "5s", description="Move open executions and expire approvals this often"
    )
    listen: Listen = Field(
        "127.0.0.1:8080",
        description="host:port of /healthz, /readyz, /metrics (and /slack/events in http mode)",
    )
    lease: LeaseSpec = LeaseSpec()
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: text on a terminal, JSON lines otherwise"
    )


class FileSpec(Spec):
    """One configuration file; a directory of them is merged by the loader."""

    version: Literal["guardian/v1"]
    prometheus: PrometheusSpec | None = None
    evaluation: EvaluationSpec | None = None
    policy: PolicySpec | None = None
    slack: SlackSpec | None = None
    daemon: DaemonSpec | None = None
    change_guard: ChangeGuardSpec | None = None
    window_sets: dict[str, list[WindowPairSpec]] = Field(default_factory=dict)
    slos: list[SLOSpec] = Field(default_factory=list)

    @field_validator("window_sets")
    @classmethod
    def _sets(cls, value: dict[str, list[WindowPairSpec]]) -> dict[str, list[WindowPairSpec]]:
        for name, pairs in value.items():
            if not pairs:
                raise ValueError(f"{shown(name, 40)} has no window pairs")
        return value

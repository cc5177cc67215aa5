"""The versioned user spec (``version: guardian/v1``): what a YAML file may say, nothing more.

Input: one parsed YAML document. Output: a ``FileSpec`` (pydantic, frozen, unknown keys
forbidden). Called by ``guardian.config.load``, which turns specs into the internal model and
formats pydantic's errors into breadcrumb lines. Checks that need more than one file
(duplicate names, references to window sets) live in ``guardian.config.load``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from guardian.config.read import shown
from guardian.durations import parse_duration

API_VERSION = "guardian/v1"

_MATCHER = r'\s*+[a-zA-Z_][a-zA-Z0-9_]*+\s*+(?:=~|!~|!=|=)\s*+"(?:[^"\\]|\\.)*+"\s*+'
_SELECTOR = re.compile(rf"^(?:{_MATCHER})(?:,{_MATCHER})*+,?\s*$")
"""Possessive quantifiers: linear time on any input (a run of spaces cannot backtrack)."""
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An HTTP header name: an RFC 7230 token (no space, colon, line break or quote)."""
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Characters a header value must not hold (a tab is allowed, as RFC 7230 says)."""


def _duration(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a duration like 30s, 5m, 1h or 30d (got {shown(value)})")
    parse_duration(value)
    return value


def at_most(limit: str) -> Callable[[object], str]:
    """A validator for a duration no longer than ``limit`` (e.g. ``"10m"``)."""
    seconds = parse_duration(limit)

    def check(value: object) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be a duration like 30s, 5m, 1h or 30d (got {shown(value)})")
        parse_duration(value, at_most=seconds)
        return value

    return check


def _listen(value: str) -> str:
    """``host:port`` with a port from 1 to 65535."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or len(port) > 5:
        raise ValueError(f"must be host:port like 127.0.0.1:8080 (got {shown(value)})")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port: must be from 1 to 65535 (got {int(port)})")
    return value


def _selector(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(
            f'must be label matchers like cluster="prod", job="apiserver" (got {shown(value)})'
        )
    if value.strip() and not _SELECTOR.match(value):
        raise ValueError(
            f'must be label matchers like cluster="prod", job="apiserver" (got {shown(value)})'
        )
    return value.strip().rstrip(",")


Duration = Annotated[str, BeforeValidator(_duration)]
Selector = Annotated[str, BeforeValidator(_selector)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BasicAuthSpec(_Spec):
    """HTTP basic authentication; the password is read from a file, never written inline."""

    username: str
    password_file: str


class PrometheusSpec(_Spec):
    """How to reach Prometheus (or Thanos, Mimir, Cortex: anything with its query API)."""

    url: str = Field(description="Base URL, e.g. http://prometheus.monitoring:9090")
    timeout: Annotated[str, BeforeValidator(at_most("10m"))] = Field(
        "10s", description="Timeout of one query"
    )
    bearer_token_file: str | None = Field(None, description="File holding a bearer token")
    bearer_token_env: str | None = Field(None, description="Environment variable holding it")
    basic_auth: BasicAuthSpec | None = None
    tls_ca_file: str | None = Field(None, description="CA bundle for an https URL")
    tls_insecure_skip_verify: bool = False
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra headers, e.g. X-Scope-OrgID for Mimir"
    )
    source: Literal["raw", "rules"] = Field(
        "raw", description="raw: query the SLI metrics; rules: read `guardian rules` output"
    )
    parallel_queries: int = Field(
        2, ge=1, le=16, description="Window queries sent at once (Prometheus runs each on a core)"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http:// or https:// URL (got {shown(value)})")
        if "@" in value.split("/")[2]:
            raise ValueError(
                "holds a user or password; use basic_auth with a password_file instead"
            )
        return value.rstrip("/")

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(
                    f"{shown(name, 40)}: not a valid header name; use letters, digits and '-' "
                    "only, like X-Scope-OrgID"
                )
            if name.lower() in ("authorization", "proxy-authorization", "cookie"):
                raise ValueError(
                    f"{shown(name, 40)} holds a credential; use bearer_token_file, "
                    "bearer_token_env or basic_auth instead"
                )
            label = name if len(name) <= 40 else name[:39] + "…"
            if _CONTROL.search(text):  # the value may be a secret: never echoed
                raise ValueError(
                    f"{label}: the value holds a control character (a line break?); remove it"
                )
            if not text.isascii():
                raise ValueError(
                    f"{label}: the value holds a character that is not ASCII; an HTTP header "
                    "carries ASCII only"
                )
        return value

    @model_validator(mode="after")
    def _one_auth(self) -> PrometheusSpec:
        given = [self.bearer_token_file, self.bearer_token_env, self.basic_auth]
        if sum(x is not None for x in given) > 1:
            raise ValueError("use only one of bearer_token_file, bearer_token_env and basic_auth")
        return self


class EvaluationSpec(_Spec):
    """Defaults that apply to every SLO unless the SLO says otherwise."""

    max_staleness: Annotated[str, BeforeValidator(at_most("1d"))] = Field(
        "2m", description="Newest sample older than this makes the SLO no_data"
    )
    min_events: int = Field(
        0, ge=0, description="Events needed in the long window before a pair may page"
    )


class WindowPairSpec(_Spec):
    """One multi-window alert: both windows must burn faster than the factor."""

    severity: Literal["page", "ticket"]
    long: Duration
    short: Duration
    budget_fraction: Annotated[float, Strict()] | None = Field(
        None, description="Share of the period's budget spent in the long window (0.02 = 2%)"
    )
    factor: Annotated[float, Strict()] | None = Field(
        None, description="Fixed burn-rate factor instead"
    )

    @model_validator(mode="after")
    def _fraction_or_factor(self) -> WindowPairSpec:
        if (self.budget_fraction is None) == (self.factor is None):
            raise ValueError("give exactly one of budget_fraction and factor")
        if self.budget_fraction is not None and not 0 < self.budget_fraction <= 1:
            raise ValueError(
                f"budget_fraction: must be > 0 and <= 1 (got {self.budget_fraction:g})"
            )
        if self.factor is not None and not (math.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"factor: must be a finite number > 0 (got {self.factor:g})")
        if parse_duration(self.short) >= parse_duration(self.long):
            raise ValueError(
                f"short: must be shorter than long (got short {self.short}, long {self.long})"
            )
        return self


class ApiserverThresholdsSpec(_Spec):
    """Latency a request may take and still be good, per scope (reads) and for writes."""

    resource: Annotated[str, BeforeValidator(at_most("1h"))] = "1s"
    namespace: Annotated[str, BeforeValidator(at_most("1h"))] = "5s"
    cluster: Annotated[str, BeforeValidator(at_most("1h"))] = "30s"
    write: Annotated[str, BeforeValidator(at_most("1h"))] = "1s"


class ApiserverLatencySpec(_Spec):
    """kubernetes-mixin's API-server SLI: slow or 5xx requests are bad."""

    metric: str = "apiserver_request_sli_duration_seconds"
    requests_metric: str = "apiserver_request_total"
    verbs: Literal["read", "write", "all"] = "read"
    thresholds: ApiserverThresholdsSpec = ApiserverThresholdsSpec()
    selector: Selector = ""


class CorednsErrorsSpec(_Spec):
    """Share of DNS responses whose rcode is an error."""

    metric: str = "coredns_dns_responses_total"
    rcodes: list[str] = Field(default_factory=lambda: ["SERVFAIL", "REFUSED"], min_length=1)
    selector: Selector = ""


class RatioSpec(_Spec):
    """Free PromQL; ``{{window}}`` is replaced by each window (e.g. ``5m``)."""

    errors: str
    total: str

    @field_validator("errors", "total")
    @classmethod
    def _window(cls, value: str) -> str:
        if "{{window}}" not in value.replace(" ", ""):
            raise ValueError(
                "must contain the {{window}} placeholder, e.g. sum(rate(x_total[{{window}}]))"
            )
        return value


class LatencySpec(_Spec):
    """A Prometheus histogram: good requests are the ones under the ``le`` bucket."""

    metric: str = Field(description="Histogram name without _bucket, e.g. http_request_seconds")
    le: str = Field(description='Threshold bucket exactly as exposed, e.g. "0.5"')
    selector: Selector = ""

    @field_validator("le", mode="before")
    @classmethod
    def _le(cls, value: object) -> str:
        text = str(value)
        try:
            finite = math.isfinite(float(text))
        except ValueError:
            finite = False
        if not finite:  # +Inf counts every request as good: the SLO could never burn
            raise ValueError(f'must be a bucket boundary like "0.5" (got {shown(value)})')
        return text


class SLISpec(_Spec):
    """Exactly one kind of SLI."""

    apiserver_latency: ApiserverLatencySpec | None = None
    coredns_errors: CorednsErrorsSpec | None = None
    ratio: RatioSpec | None = None
    latency: LatencySpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SLISpec:
        kinds = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(kinds) != 1:
            names = ", ".join(type(self).model_fields)
            raise ValueError(f"give exactly one SLI kind of {names} (got {len(kinds)})")
        return self


class SLOSpec(_Spec):
    """One service level objective."""

    name: str
    objective: float = Field(description="Target in percent, e.g. 99.9")
    period: Annotated[str, BeforeValidator(at_most("365d"))] = "30d"
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    sli: SLISpec
    windows: str = Field("google-30d", description="A window set name")
    min_events: int | None = Field(None, ge=0)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value) or len(value) > 63:
            raise ValueError(
                f"must be lower-case letters, digits and '-', at most 63 (got {shown(value)})"
            )
        return value

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: float) -> float:
        if not 0 < value < 100:
            raise ValueError(f"must be > 0 and < 100 (got {value:g})")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _LABEL.match(key) or key in ("slo", "window", "severity", "long", "short"):
                raise ValueError(
                    f"{shown(key, 40)} is not a usable label name (reserved: slo, window, "
                    "severity, long, short)"
                )
        return value


class StoreSpec(_Spec):
    """Where executions, approvals and the audit log live (a SQLAlchemy URL)."""

    url: str = Field(
        "sqlite:///guardian.db",
        description="sqlite:///path (relative to the working directory) or "
        "postgresql+psycopg://user@host/db; no password here: use url_env",
    )
    url_env: str | None = Field(
        None, description="Environment variable holding the URL instead (it may hold a password)"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            url = None
        if url is not None and _holds_password(url.password, dict(url.query)):
            raise ValueError(_PASSWORD)
        if url is None or not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value


_PASSWORD = "holds a password; put the URL in an environment variable and name it in url_env"


def _holds_password(password: object, query: dict[str, object]) -> bool:
    """A password in the URL's user part or its query (``?password=``, any spelling)."""
    names = {"password", "passwd", "pwd", "sslpassword"}
    return password is not None or any(k.lower() in names for k in query)


class PolicySpec(_Spec):
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
    protected_subjects: list[str] = Field(
        default_factory=list,
        description="More subjects throttle-client never throttles, beside the built-in ones "
        "(system:masters, system:nodes, system:kube-*, kube-system service accounts, guardian "
        "itself...): user:NAME, group:NAME or serviceaccount:NAMESPACE/NAME; * matches anything",
    )

    @field_validator("protected_subjects")
    @classmethod
    def _protected(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not re.fullmatch(r"(user|group):\S+|serviceaccount:[^/\s]+/\S+", entry):
                raise ValueError(
                    "entries must be user:NAME, group:NAME or serviceaccount:NAMESPACE/NAME "
                    f"(got {entry[:80]!r})"
                )
        return value


class SlackSpec(_Spec):
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
    listen: str = Field("127.0.0.1:8080", description="host:port of /slack/events in http mode")
    api_url: str = Field("https://slack.com/api/", description="Slack Web API base URL")
    bot_token_env: str | None = "SLACK_BOT_TOKEN"
    bot_token_file: str | None = None
    app_token_env: str | None = "SLACK_APP_TOKEN"
    app_token_file: str | None = None
    signing_secret_env: str | None = "SLACK_SIGNING_SECRET"
    signing_secret_file: str | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _listen(value)


class LeaseSpec(_Spec):
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


class DaemonSpec(_Spec):
    """`guardian run`: the schedule, the HTTP port and leader election."""

    interval: Annotated[str, BeforeValidator(at_most("1h"))] = Field(
        "30s", description="Evaluate every SLO this often"
    )
    progress_interval: Annotated[str, BeforeValidator(at_most("10m"))] = Field(
        "5s", description="Move open executions and expire approvals this often"
    )
    listen: str = Field(
        "127.0.0.1:8080",
        description="host:port of /healthz, /readyz, /metrics (and /slack/events in http mode)",
    )
    lease: LeaseSpec = LeaseSpec()
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: text on a terminal, JSON lines otherwise"
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _listen(value)


class FileSpec(_Spec):
    """One configuration file; a directory of them is merged by the loader."""

    version: Literal["guardian/v1"]
    prometheus: PrometheusSpec | None = None
    evaluation: EvaluationSpec | None = None
    policy: PolicySpec | None = None
    slack: SlackSpec | None = None
    daemon: DaemonSpec | None = None
    window_sets: dict[str, list[WindowPairSpec]] = Field(default_factory=dict)
    slos: list[SLOSpec] = Field(default_factory=list)

    @field_validator("window_sets")
    @classmethod
    def _sets(cls, value: dict[str, list[WindowPairSpec]]) -> dict[str, list[WindowPairSpec]]:
        for name, pairs in value.items():
            if not pairs:
                raise ValueError(f"{shown(name, 40)} has no window pairs")
        return value

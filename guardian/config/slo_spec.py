"""The SLO part of the ``guardian/v1`` spec: SLOs, their SLIs and the window pairs of a set.

Input: the ``slos`` and ``window_sets`` entries of one parsed YAML document. Output: ``SLOSpec``
and ``WindowPairSpec`` values (pydantic, frozen, unknown keys forbidden). Part of
``guardian.config.spec.FileSpec``; read by ``guardian.config.build``, which turns them into
the model's ``SLO`` values.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    Strict,
    field_validator,
    model_validator,
)

from guardian.config.checks import Bucket, Duration, LabelNames, Selector, SloName, Spec, at_most
from guardian.config.read import shown
from guardian.durations import parse_duration

QUEUED_METRIC = "apiserver_request_duration_seconds"
"""The API server's request histogram that includes API Priority and Fairness queue wait."""
QUEUED_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60)
"""Its whole-second buckets (Kubernetes' ``metrics.go``; a STABLE metric, fixed buckets)."""


class WindowPairSpec(Spec):
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


class ApiserverThresholdsSpec(Spec):
    """Latency a request may take and still be good, per scope (reads) and for writes."""

    resource: Annotated[str, BeforeValidator(at_most("1h"))] = "1s"
    namespace: Annotated[str, BeforeValidator(at_most("1h"))] = "5s"
    cluster: Annotated[str, BeforeValidator(at_most("1h"))] = "30s"
    write: Annotated[str, BeforeValidator(at_most("1h"))] = "1s"


class ApiserverLatencySpec(Spec):
    """kubernetes-mixin's API-server SLI: slow or 5xx requests are bad (and 429s if asked)."""

    metric: str = "apiserver_request_sli_duration_seconds"
    requests_metric: str = "apiserver_request_total"
    verbs: Literal["read", "write", "all"] = "read"
    thresholds: ApiserverThresholdsSpec = ApiserverThresholdsSpec()
    selector: Selector = ""
    rejected_are_bad: Annotated[bool, Strict()] = Field(
        False,
        description="Count requests rejected with 429 (API Priority and Fairness shedding) as "
        "bad too; the mixin counts them as good",
    )

    @model_validator(mode="after")
    def _buckets(self) -> ApiserverLatencySpec:
        """A threshold that is no bucket matches none: every request would count as bad."""
        if self.metric != QUEUED_METRIC:
            return self
        for scope in ("resource", "namespace", "cluster", "write"):
            value = getattr(self.thresholds, scope)
            if parse_duration(value) not in QUEUED_BUCKETS:
                buckets = ", ".join(f"{b}s" for b in QUEUED_BUCKETS)
                raise ValueError(
                    f"thresholds: {scope}: must be a bucket of {QUEUED_METRIC}, one of "
                    f"{buckets} (got {shown(value)})"
                )
        return self


class CorednsErrorsSpec(Spec):
    """Share of DNS responses whose rcode is an error."""

    metric: str = "coredns_dns_responses_total"
    rcodes: list[str] = Field(default_factory=lambda: ["SERVFAIL", "REFUSED"], min_length=1)
    selector: Selector = ""


class RatioSpec(Spec):
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


class LatencySpec(Spec):
    """A Prometheus histogram: good requests are the ones under the ``le`` bucket."""

    metric: str = Field(description="Histogram name without _bucket, e.g. http_request_seconds")
    le: Bucket = Field(description='Threshold bucket exactly as exposed, e.g. "0.5"')
    selector: Selector = ""


class SLISpec(Spec):
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


class SLOSpec(Spec):
    """One service level objective."""

    name: SloName
    objective: float = Field(description="Target in percent, e.g. 99.9")
    period: Annotated[str, BeforeValidator(at_most("365d"))] = "30d"
    description: str = ""
    labels: LabelNames = Field(default_factory=dict)
    sli: SLISpec
    windows: str = Field("google-30d", description="A window set name")
    min_events: int | None = Field(None, ge=0)

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: float) -> float:
        if not 0 < value < 100:
            raise ValueError(f"must be > 0 and < 100 (got {value:g})")
        return value

"""What the daemon's ``/metrics`` shows.

Input: each evaluation and how long it took (``Metrics.observe``, from the evaluation job),
and, at scrape time, the store's counts and the Kubernetes clients' counters (``Live``).
Output: a ``prometheus_client`` registry of its own. Burn-rate windows are labelled as
Prometheus durations (``long="1h"``, ``short="5m"``), as in the rules guardian writes.
Called by ``guardian.app.daemon.run`` (the jobs) and ``guardian.app.daemon.health`` (the
scrape).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from guardian.clients.kube import Kube
from guardian.clients.store import Store
from guardian.durations import format_duration
from guardian.errors import GuardianError
from guardian.evaluation.results import Evaluation


class Metrics:
    """What ``/metrics`` shows (a registry of its own)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.evaluation_seconds = Histogram(
            "guardian_evaluation_duration_seconds",
            "Time to evaluate every SLO once",
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.evaluations = Counter(
            "guardian_evaluations_total",
            "Evaluations by result (failed: a query went unanswered or was refused)",
            ["result"],
            registry=r,
        )
        self.queries = Counter(
            "guardian_evaluation_queries_total", "PromQL queries sent by evaluations", registry=r
        )
        self.burn = Gauge(
            "guardian_burn_rate",
            "Burn rate per SLO and window pair (window: long or short)",
            ["slo", "severity", "long", "short", "window"],
            registry=r,
        )
        self.status = Gauge(
            "guardian_slo_status", "1 for the SLO's current status", ["slo", "status"], registry=r
        )
        self.decisions = Counter(
            "guardian_decisions_total", "Policy decisions", ["slo", "decision"], registry=r
        )
        self.leader = Gauge("guardian_leader", "1 while this replica leads", registry=r)
        self.reloads = Counter(
            "guardian_config_reloads_total", "Config reloads by result", ["result"], registry=r
        )
        self.misfires = Counter(
            "guardian_job_misfires_total", "Scheduled runs skipped or late", ["job"], registry=r
        )

    def observe(self, evaluation: Evaluation, seconds: float, error: str = "") -> None:
        """Record one evaluation: ``result="ok"`` when every query was answered, ``failed``
        when ``error`` says one was not (Prometheus down, a refused query)."""
        self.evaluation_seconds.observe(seconds)
        self.evaluations.labels("failed" if error else "ok").inc()
        self.queries.inc(evaluation.queries)
        for slo in evaluation.slos:
            for status in ("ok", "ticket", "page", "no_data"):
                self.status.labels(slo.name, status).set(1 if slo.status == status else 0)
            for w in slo.windows:
                long, short = format_duration(w.long), format_duration(w.short)
                for which, value in (("long", w.long_burn), ("short", w.short_burn)):
                    labels = (slo.name, w.severity, long, short, which)
                    self.burn.labels(*labels).set(float("nan") if value is None else value)


class Scraped(Protocol):
    """What ``Live`` reads at scrape time: the daemon's store and Kubernetes clients."""

    @property
    def store(self) -> Store: ...

    @property
    def clients(self) -> Mapping[str | None, Kube]: ...


class Live:
    """Metrics read at scrape time: executions, approvals, Kubernetes calls; a store that
    does not answer leaves out the first two and sets ``guardian_store_up`` to 0 (the
    scrape still succeeds; /readyz says why)."""

    def __init__(self, daemon: Scraped) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        try:
            counted: tuple[dict[str, int], dict[str, int]] | None = self.daemon.store.counts()
        except GuardianError:
            counted = None
        up = GaugeMetricFamily("guardian_store_up", "1 when the store answered this scrape")
        up.add_metric([], 0 if counted is None else 1)
        yield up
        if counted is not None:
            yield from _store_metrics(*counted)
        yield from _kube_metrics(self.daemon.clients)


def _kube_metrics(clients: Mapping[str | None, Kube]) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "guardian_kubernetes_requests", "API requests sent", labels=["context"]
    )
    retries = CounterMetricFamily(
        "guardian_kubernetes_retries", "API requests retried (409/429/5xx)", labels=["context"]
    )
    waited = CounterMetricFamily(
        "guardian_kubernetes_throttle_wait_seconds",
        "Seconds spent waiting on guardian's own token bucket",
        labels=["context"],
    )
    for context, kube in list(clients.items()):
        name = context or "default"
        requests.add_metric([name], kube.requests)
        retries.add_metric([name], kube.retries)
        waited.add_metric([name], kube.bucket.waited)
    yield requests
    yield retries
    yield waited


def _store_metrics(states: dict[str, int], kinds: dict[str, int]) -> Iterator[Metric]:
    executions = GaugeMetricFamily("guardian_executions", "Executions by state", labels=["state"])
    for state, count in sorted(states.items()):
        executions.add_metric([state], count)
    yield executions
    approvals = CounterMetricFamily(
        "guardian_approvals", "Approval decisions in the audit log", labels=["decision"]
    )
    for kind in ("approved", "denied", "refused", "expired"):
        approvals.add_metric([kind], kinds.get(kind, 0))
    yield approvals

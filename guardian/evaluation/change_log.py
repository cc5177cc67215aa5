"""The change log read from kube-state-metrics in Prometheus: no request to the API server.

Input: a ``QuerySource`` (``guardian.clients.prometheus.PrometheusClient`` in production), an
optional label selector and a time range. Output: ``WorkloadChange`` values
(``guardian.evaluation.changes``) for the Deployments, DaemonSets and StatefulSets that were
created, or got a new template generation, within the range, each at its state at the end
of the range. It is the change log of the backtest (``guardian.app.commands.evaluate``, read
by ``guardian.app.decisions``) and the daemon's fallback when the API server's watch has not
synced (``guardian.app.wiring``, through ``guardian.clients.change_sources``). Tests:
tests/test_change_log_ksm.py (the bundled incident data, exact data, the lab's KSM).

What it reads (kube-state-metrics v2 gauges, labelled ``namespace`` and
``deployment|daemonset|statefulset``, and ``cluster`` where the scrape adds it):

* ``kube_X_created``: a workload whose creation time falls within the range is a creation
  (``created=True``, ``started`` = that time);
* ``kube_X_metadata_generation``: a range query of "the generation is higher than its lowest
  sample over the last two steps" matches the steps just after each new generation appeared
  (comparing raw samples, so a generation that lasted less than a step, such as a workload's
  first one, still counts); the first step of the last such run is ``started``, at most one
  step after the sample that showed the new generation (60 s by default, coarser for ranges
  longer than ``MAX_POINTS`` steps), and it counts when it falls within the range;
* at the end of the range: the generation, desired (``kube_deployment_spec_replicas``,
  ``kube_daemonset_status_desired_number_scheduled``, ``kube_statefulset_replicas``) and
  updated (``kube_deployment_status_replicas_updated``,
  ``kube_daemonset_status_updated_number_scheduled``,
  ``kube_statefulset_status_replicas_updated``).

Series are aggregated by ``cluster, namespace, <kind>`` (``max``), so several scrapes of
kube-state-metrics count once. A workload created within the range is a creation even when
its template changed again afterwards. A workload with no series left at the end of the
range (deleted) is not listed: nothing can act on it. kube-state-metrics does not export
a workload's service account nor its previous revision by default: both stay empty, and so
does ``touched``. At most five queries per kind, fifteen in all (two per kind when nothing
changed); a failed or refused query raises the source's error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from guardian.evaluation.changes import ChangeKind, WorkloadChange
from guardian.evaluation.source import QuerySource

MAX_POINTS = 10_000
"""Steps of one range query at most (Prometheus refuses more than 11,000)."""


@dataclass(frozen=True)
class KindMetrics:
    """The kube-state-metrics series of one workload kind."""

    kind: ChangeKind
    label: str
    created: str
    generation: str
    desired: str
    updated: str


METRICS: tuple[KindMetrics, ...] = (
    KindMetrics(
        "DaemonSet",
        "daemonset",
        "kube_daemonset_created",
        "kube_daemonset_metadata_generation",
        "kube_daemonset_status_desired_number_scheduled",
        "kube_daemonset_status_updated_number_scheduled",
    ),
    KindMetrics(
        "Deployment",
        "deployment",
        "kube_deployment_created",
        "kube_deployment_metadata_generation",
        "kube_deployment_spec_replicas",
        "kube_deployment_status_replicas_updated",
    ),
    KindMetrics(
        "StatefulSet",
        "statefulset",
        "kube_statefulset_created",
        "kube_statefulset_metadata_generation",
        "kube_statefulset_replicas",
        "kube_statefulset_status_replicas_updated",
    ),
)

Key = tuple[str, str, str]
"""(cluster, namespace, name) of one workload."""


def selector_matchers(selector: str) -> str:
    """The label matchers of ``selector`` without braces (``cluster="a"`` or ``{cluster="a"}``);
    ``ValueError`` naming the fix when it is not a list of matchers."""
    text = selector.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if any(c in text for c in "{}") or (text and "=" not in text and "~" not in text):
        raise ValueError(
            f"change log selector {selector!r}: give label matchers only, "
            'e.g. cluster="prod-east-1" (no metric name, no braces inside)'
        )
    return text


class PrometheusChangeLog:
    """``ChangeLog`` over kube-state-metrics: ``changes(since, until)`` with bounded queries."""

    def __init__(self, source: QuerySource, selector: str = "", step: int = 60) -> None:
        if step <= 0:
            raise ValueError(f"change log step {step}: must be a positive number of seconds")
        self._source = source
        self._matchers = selector_matchers(selector)
        self._step = step

    def changes(self, since: datetime, until: datetime) -> list[WorkloadChange]:
        """Changes that started in ``[since, until]``, each at its state at ``until``."""
        if until < since:
            return []
        found: list[WorkloadChange] = []
        for metrics in METRICS:
            found.extend(self._kind_changes(metrics, since, until))
        return sorted(found, key=lambda c: (c.started, c.cluster, c.target))

    def _vector(self, metrics: KindMetrics, metric: str, window: int = 0) -> str:
        """``metric`` (its lowest sample over ``window`` seconds when given) per workload."""
        matchers = f"{{{self._matchers}}}" if self._matchers else ""
        selected = f"{metric}{matchers}"
        if window:
            selected = f"min_over_time({selected}[{window}s])"
        return f"max by (cluster, namespace, {metrics.label}) ({selected})"

    def _kind_changes(
        self, metrics: KindMetrics, since: datetime, until: datetime
    ) -> list[WorkloadChange]:
        starts = self._generations(metrics, since, until)
        for key, born in self._creations(metrics, since, until).items():
            starts[key] = (born, True)
        if not starts:
            return []
        generation = self._state(metrics, metrics.generation, until)
        desired = self._state(metrics, metrics.desired, until)
        updated = self._state(metrics, metrics.updated, until)
        changes = []
        for key, (started, created) in starts.items():
            if key not in generation and key not in desired and key not in updated:
                continue  # deleted by ``until``
            cluster, namespace, name = key
            changes.append(
                WorkloadChange(
                    kind=metrics.kind,
                    namespace=namespace,
                    name=name,
                    started=started,
                    created=created,
                    generation=int(generation.get(key, 0)),
                    desired=int(desired.get(key, 0)),
                    updated=int(updated.get(key, 0)),
                    cluster=cluster,
                )
            )
        return changes

    def _key(self, metrics: KindMetrics, labels: Mapping[str, str]) -> Key:
        get = labels.get
        return (get("cluster", ""), get("namespace", ""), get(metrics.label, ""))

    def _creations(
        self, metrics: KindMetrics, since: datetime, until: datetime
    ) -> dict[Key, datetime]:
        promql = f"{self._vector(metrics, metrics.created)} >= {since.timestamp():.3f}"
        created: dict[Key, datetime] = {}
        for sample in self._source.instant(promql, at=until):
            if sample.value <= until.timestamp():
                created[self._key(metrics, sample.labels)] = _moment(sample.value)
        return created

    def _generations(
        self, metrics: KindMetrics, since: datetime, until: datetime
    ) -> dict[Key, tuple[datetime, bool]]:
        span = until.timestamp() - since.timestamp()
        step = max(self._step, self._step * math.ceil(span / self._step / MAX_POINTS))
        first = math.ceil(since.timestamp() / step) * step
        if first > until.timestamp():
            return {}
        now = self._vector(metrics, metrics.generation)
        lowest = self._vector(metrics, metrics.generation, window=2 * step)
        promql = f"{now} > {lowest}"
        bumped: dict[Key, tuple[datetime, bool]] = {}
        for series in self._source.range(promql, _moment(first - 2 * step), until, step):
            started = _last_run_start([t for t, _ in series.points], step)
            if started is not None and started >= since.timestamp():
                bumped[self._key(metrics, series.labels)] = (_moment(started), False)
        return bumped

    def _state(self, metrics: KindMetrics, metric: str, until: datetime) -> dict[Key, float]:
        samples = self._source.instant(self._vector(metrics, metric), at=until)
        return {self._key(metrics, s.labels): s.value for s in samples}


def _last_run_start(steps: list[float], step: int) -> float | None:
    """The first step of the last run of consecutive ``steps`` (``None`` when empty)."""
    ordered = sorted(steps)
    if not ordered:
        return None
    start = ordered[-1]
    for earlier in reversed(ordered[:-1]):
        if start - earlier > step + 0.5:
            break
        start = earlier
    return start


def _moment(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)

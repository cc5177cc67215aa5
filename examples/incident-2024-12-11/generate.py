"""Synthetic control-plane metrics for the 2024-12-11 API-server / DNS incident.

Writes an OpenMetrics text file that ``promtool tsdb create-blocks-from openmetrics`` turns into
TSDB blocks, so the burn-rate rules can be replayed against a realistic incident.

Fleet
    Two large clusters (~5,000 nodes each), ``prod-east-1`` and ``prod-west-2`` (with ~85% of
    the east cluster's traffic). Each exposes:

    * ``apiserver_request_sli_duration_seconds`` (histogram, real Kubernetes buckets) and
      ``apiserver_request_total`` (counter by HTTP code) for twelve verb/resource/scope
      combinations, from cluster-wide LISTs to node lease renewals;
    * ``coredns_dns_responses_total`` by rcode, ~20,000 responses/s per cluster;
    * kube-state-metrics v2 gauges (``job="kube-state-metrics"``, labels ``namespace`` and
      ``deployment|daemonset|statefulset``) of a steady set of workloads (``WORKLOADS``: twelve
      Deployments including CoreDNS, the kube-proxy, CNI and log DaemonSets, two
      StatefulSets) and of the telemetry DaemonSet: ``kube_X_created``,
      ``kube_X_metadata_generation``, ``kube_daemonset_status_{desired,updated}_number_scheduled``,
      ``kube_deployment_spec_replicas``, ``kube_deployment_status_replicas_updated``,
      ``kube_statefulset_replicas``, ``kube_statefulset_status_replicas_updated``.

Model
    Every quantity is a smooth curve sampled once per interval (default one minute):

    * traffic rate = base rate x daily cycle (business-hours peak ~1.5x the night trough)
      x slow AR(1) wander x per-minute jitter; request counts per interval are Poisson;
    * latency is a two-component lognormal mixture per combination: a body around the
      baseline median and a small tail above the SLO threshold (~0.2% of reads slow at
      baseline), with rare short blips of extra slowness;
    * API-server overload ``o`` in [0, 1] drives the incident: it multiplies the body median
      (up to 20x), moves up to 55% of requests into the tail, and adds 429 (priority and
      fairness rejections) and 500/503/504 responses (up to ~20% at full overload);
    * bucket counts come from a multinomial split of each interval's requests over the bucket
      intervals, summed over buckets and time, so every ``_bucket`` series is cumulative in
      ``le`` and monotonic in time, and ``_count`` equals the sum over codes of
      ``apiserver_request_total`` exactly;
    * the CoreDNS SERVFAIL share follows its own curve: caches hide the API outage for a few
      minutes, then failures climb as records expire; retries inflate query volume;
    * ordinary rollouts (``ksm_rollouts``), drawn from their own random stream
      (``default_rng([seed, KSM_STREAM, ...])``) so the API-server and CoreDNS series are exactly
      those of the generator before them (tests/test_change_log_ksm.py
      ``test_the_api_server_and_coredns_series_are_unchanged``): every day several Deployment
      template updates (generation + 1, updated replicas drop to 0 and climb back over
      5-15 min); on normal days one DaemonSet update (20-40 min over the nodes) and one
      StatefulSet update; on 12-11 the Deployment updates end before 15:00 and the
      ``data/redis`` StatefulSet update begun at 14:52 is still rolling at 15:12 (``IN_FLIGHT``).

Timeline (US Pacific, PST = UTC-8)
    * 2024-12-09 00:00 (with ``--days-before 2``) .. 2024-12-11 15:12: normal traffic;
    * 15:12 a telemetry DaemonSet (``observability/telemetry-agent``) is created in both
      clusters (its kube-state-metrics series begin then, desired = the node count); as its
      pods roll out over the nodes (updated follows ``ROLLOUT``), cluster-wide LIST pods / LIST
      nodes grow ~100x;
    * 15:16 slight impact: a few percent of reads slow;
    * 15:40 peak: most LIST/GET slow, many 5xx and 429; from ~15:45 CoreDNS SERVFAIL climbs,
      reaching roughly half of all responses around 16:00-16:30;
    * 16:36 ``prod-east-1`` recovers (agents removed by 16:48: the DaemonSet's desired and
      updated fall to 0 and its series end; API then DNS back within the hour);
    * 17:05 the agents are removed from ``prod-west-2`` (its series end ~17:25);
    * 17:36 API servers substantially recovered in both clusters; DNS in ``prod-west-2`` still
      partly failing;
    * 19:38 everything back to baseline; the file ends at 22:00.

Usage
    python generate.py --out incident.om [--days-before 2] [--interval 60] [--seed 7]
    promtool tsdb create-blocks-from openmetrics incident.om ./data

    promtool re-reads the whole file once per output block; with ``--max-block-duration=24h``
    the default run (848 series, ~716 MB) backfills in ~30 s on a busy 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TextIO, TypeVar

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Knots = tuple[tuple[float, float], ...]
ScalarT = TypeVar("ScalarT", bound=np.generic)

PST = timezone(timedelta(hours=-8), "PST")
INCIDENT_DAY = datetime(2024, 12, 11, tzinfo=PST)
END_HOUR = 22.0

BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60,
)  # fmt: skip
LE_LABELS: tuple[str, ...] = (*(format(b, "g") for b in BUCKETS), "+Inf")
ERROR_CODES: tuple[str, ...] = ("429", "500", "503", "504")
RCODES: tuple[str, ...] = ("NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED")

HISTOGRAM = "apiserver_request_sli_duration_seconds"
REQUESTS = "apiserver_request"
DNS_RESPONSES = "coredns_dns_responses"
HELP = {
    HISTOGRAM: "Response latency distribution (not counting webhook duration and priority & "
    "fairness queue wait times) in seconds for each verb, group, version, resource, "
    "subresource, scope and component.",
    REQUESTS: "Counter of apiserver requests broken out for each verb, dry run value, group, "
    "version, resource, scope, component, and HTTP response code.",
    DNS_RESPONSES: "Counter of response status codes.",
}

BODY_SLOWDOWN = 20.0  # body median multiplier at full overload
BODY_MEDIAN_CAP = 40.0  # seconds
TAIL_MAX = 0.55  # share of requests in the slow tail at full overload
TAIL_SIGMA = 0.6
TAIL_MEDIAN_CAP = 50.0  # seconds; requests time out at 60 s
DURATION_CAP = 60.0
BASE_5XX = {"500": 4e-5, "503": 3e-5, "504": 3e-5}
PEAK_5XX = {"500": 0.05, "503": 0.09, "504": 0.06}
PEAK_429 = 0.10
AGENT_LIST_FACTOR = 99.0  # extra cluster-wide LISTs per unit of agent rollout
RETRY_FACTOR = 0.3  # extra reads from client retries at full overload
DNS_RATE = 20_000.0
DNS_BASE_SHARES = {"NXDOMAIN": 0.199, "SERVFAIL": 5e-4, "REFUSED": 1e-5}
DNS_RETRY_FACTOR = 0.6


@dataclass(frozen=True)
class Endpoint:
    """One verb/resource/scope combination and its baseline behaviour."""

    verb: str
    resource: str
    scope: str
    rate: float  # requests per second at baseline
    median: float  # seconds, baseline body median
    threshold: float  # SLO latency threshold in seconds
    sigma: float = 0.55
    subresource: str = ""
    group: str = ""
    success: str = "200"
    diurnal: bool = True
    agent_list: bool = False  # issued by the telemetry agents during the incident
    tail: float = 3e-3  # baseline share of requests in the slow tail


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("LIST", "pods", "cluster", 5, 1.5, 30, sigma=0.6, agent_list=True),
    Endpoint("LIST", "pods", "namespace", 40, 0.10, 5, sigma=0.6),
    Endpoint("LIST", "nodes", "cluster", 2, 1.2, 30, sigma=0.6, agent_list=True),
    Endpoint("LIST", "configmaps", "namespace", 30, 0.08, 5, sigma=0.6),
    Endpoint("GET", "pods", "resource", 300, 0.020, 1),
    Endpoint("GET", "nodes", "resource", 200, 0.015, 1),
    Endpoint("GET", "configmaps", "resource", 150, 0.012, 1),
    Endpoint("GET", "pods", "resource", 3, 20.0, 60, sigma=1.0, subresource="log", tail=0.0),
    Endpoint("POST", "events", "resource", 120, 0.030, 1, success="201"),
    Endpoint(
        "PUT", "leases", "resource", 900, 0.025, 1, group="coordination.k8s.io", diurnal=False
    ),
    Endpoint("PATCH", "nodes", "resource", 80, 0.035, 1, subresource="status", diurnal=False),
    Endpoint("DELETE", "pods", "resource", 10, 0.040, 1),
)


def knots(spec: str) -> Knots:
    """Parse "HH:MM=value ..." (PST wall clock of the incident day) into (hour, value) knots."""
    points = []
    for item in spec.split():
        clock, value = item.split("=")
        hour, minute = clock.split(":")
        points.append((int(hour) + int(minute) / 60, float(value)))
    return tuple(points)


ROLLOUT = "15:12=0 15:16=0.08 15:25=0.35 15:32=0.65 15:40=1"
OVERLOAD_ONSET = "15:13=0 15:16=0.15 15:25=0.28 15:32=0.42 15:38=0.8 15:42=1"


@dataclass(frozen=True)
class Cluster:
    """A cluster, its traffic scale and its incident curves (knots in PST hours).

    ``agents`` is the share of telemetry agents running, ``overload`` the API-server overload
    and ``servfail`` the extra share of DNS responses that are SERVFAIL.
    """

    name: str
    scale: float
    agents: Knots
    overload: Knots
    servfail: Knots
    nodes: int = 5000  # nodes in the cluster: what a DaemonSet's pods are desired on
    agents_removed: str = "16:36"  # PST: responders start removing the telemetry agents


CLUSTERS: tuple[Cluster, ...] = (
    Cluster(
        name="prod-east-1",
        scale=1.0,
        agents=knots(f"{ROLLOUT} 16:36=1 16:48=0"),
        overload=knots(f"{OVERLOAD_ONSET} 16:36=1 16:50=0.5 17:05=0.15 17:36=0.02 18:00=0"),
        servfail=knots(
            "15:44=0 15:50=0.15 16:00=0.5 16:30=0.55 16:40=0.5 16:55=0.2 17:15=0.03 17:40=0"
        ),
        nodes=5012,
        agents_removed="16:36",
    ),
    Cluster(
        name="prod-west-2",
        scale=0.85,
        agents=knots(f"{ROLLOUT} 17:05=0.95 17:25=0"),
        overload=knots(
            f"{OVERLOAD_ONSET} 16:36=1 17:05=0.95 17:25=0.4 17:36=0.12 18:10=0.03 19:00=0"
        ),
        servfail=knots(
            "15:45=0 15:52=0.15 16:02=0.55 16:30=0.65 17:00=0.6 17:20=0.45 17:36=0.3 "
            "18:15=0.15 19:00=0.05 19:38=0"
        ),
        nodes=4870,
        agents_removed="17:05",
    ),
)


@dataclass(frozen=True)
class Timeline:
    """Sample timestamps and the clock values of each interval's midpoint."""

    timestamps: IntArray  # Unix seconds of the samples
    hours: FloatArray  # hours since 00:00 PST of the incident day
    day_hour: FloatArray  # PST hour of day, 0..24
    interval: int

    @property
    def size(self) -> int:
        return len(self.timestamps)

    def smoothing_width(self, seconds: float) -> int:
        return max(1, round(seconds / self.interval))


@dataclass
class Series:
    """One output series: its sample name, label text and formatted sample values."""

    name: str
    labels: str
    values: list[str] = field(repr=False)
    first: int = 0  # index of the timeline sample the values start at


def build_timeline(days_before: int, interval: int) -> Timeline:
    start = INCIDENT_DAY - timedelta(days=days_before)
    end = INCIDENT_DAY + timedelta(hours=END_HOUR)
    first, last = int(start.timestamp()), int(end.timestamp())
    timestamps = np.arange(first, last + 1, interval, dtype=np.int64)
    midpoints = timestamps.astype(np.float64) - interval / 2
    hours = (midpoints - INCIDENT_DAY.timestamp()) / 3600
    return Timeline(timestamps, hours, np.mod(hours, 24.0), interval)


def smooth(values: FloatArray, width: int) -> FloatArray:
    """Centred moving average with edge padding, turning ramps into smooth-ish curves."""
    if width <= 1:
        return values
    padded = np.pad(values, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def knot_curve(timeline: Timeline, knots: Knots, smoothing_seconds: float = 240) -> FloatArray:
    """Piecewise-linear curve through (hour, value) knots, flat outside them, then smoothed."""
    xs = np.array([k[0] for k in knots])
    ys = np.array([k[1] for k in knots])
    curve = np.interp(timeline.hours, xs, ys, left=ys[0], right=ys[-1])
    return smooth(curve, timeline.smoothing_width(smoothing_seconds))


def daily_cycle(timeline: Timeline) -> FloatArray:
    """Traffic factor peaking at 13:00 PST, ~1.5x the 01:00 trough."""
    return 1.0 + 0.2 * np.cos(2 * np.pi * (timeline.day_hour - 13.0) / 24.0)


def wander(rng: np.random.Generator, size: int, sigma: float, rho: float = 0.98) -> FloatArray:
    """Slow multiplicative AR(1) drift with stationary log-standard-deviation ``sigma``."""
    shocks = rng.normal(0.0, sigma * np.sqrt(1 - rho**2), size)
    log_drift = np.empty(size)
    level = rng.normal(0.0, sigma)
    for i, shock in enumerate(shocks):
        level = rho * level + shock
        log_drift[i] = level
    return np.exp(log_drift)


def jitter(rng: np.random.Generator, size: int, sigma: float) -> FloatArray:
    """Independent per-interval multiplicative noise with median 1."""
    return np.exp(rng.normal(0.0, sigma, size))


def blips(rng: np.random.Generator, timeline: Timeline, per_day: float) -> FloatArray:
    """Multiplier with rare 1-4 minute bursts (x3-x6), as seen in any healthy fleet."""
    factor = np.ones(timeline.size)
    days = timeline.size * timeline.interval / 86_400
    for _ in range(rng.poisson(per_day * days)):
        start = int(rng.integers(0, timeline.size))
        length = timeline.smoothing_width(float(rng.integers(60, 241)))
        factor[start : start + length] *= rng.uniform(3.0, 6.0)
    return factor


def normal_cdf(x: FloatArray) -> FloatArray:
    """Standard normal CDF (Abramowitz-Stegun 7.1.26, |error| < 1.5e-7)."""
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = np.zeros_like(t)
    for coefficient in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly = (poly + coefficient) * t
    erf = 1.0 - poly * np.exp(-z * z)
    cdf: FloatArray = 0.5 * (1.0 + np.sign(x) * erf)
    return cdf


def lognormal_cdf(bounds: FloatArray, median: FloatArray, sigma: float) -> FloatArray:
    """CDF at each bound (columns) of per-interval lognormals (rows)."""
    return normal_cdf((np.log(bounds)[None, :] - np.log(median)[:, None]) / sigma)


def lognormal_mean(median: FloatArray, sigma: float) -> FloatArray:
    mean: FloatArray = np.minimum(median * np.exp(sigma**2 / 2), DURATION_CAP)
    return mean


def split_counts(rng: np.random.Generator, totals: IntArray, probs: FloatArray) -> IntArray:
    """Multinomial split of per-interval totals over categories (columns of ``probs``)."""
    probs = np.clip(probs, 0.0, None)
    probs = probs / probs.sum(axis=1, keepdims=True)
    mass_from = np.cumsum(probs[:, ::-1], axis=1)[:, ::-1]  # mass of categories k and later
    shares = np.clip(probs / np.maximum(mass_from, 1e-300), 0.0, 1.0)
    counts = np.zeros(probs.shape, dtype=np.int64)
    remaining = totals.astype(np.int64).copy()
    for k in range(probs.shape[1] - 1):
        counts[:, k] = rng.binomial(remaining, shares[:, k])
        remaining -= counts[:, k]
    counts[:, -1] = remaining
    return counts


def cumulative(increments: NDArray[ScalarT]) -> NDArray[ScalarT]:
    """Counter values from per-interval increments; the first sample is always 0."""
    values: NDArray[ScalarT] = np.cumsum(increments, axis=0)
    np.subtract(values, values[0], out=values)
    return values


@dataclass(frozen=True)
class ClusterState:
    """Per-cluster drivers shared by all of its API-server series."""

    cluster: Cluster
    cycle: FloatArray
    drift: FloatArray
    agents: FloatArray
    overload: FloatArray
    blips: FloatArray


def cluster_state(rng: np.random.Generator, timeline: Timeline, cluster: Cluster) -> ClusterState:
    overload = knot_curve(timeline, cluster.overload)
    noisy = np.clip(overload * jitter(rng, timeline.size, 0.08), 0.0, 1.0)
    return ClusterState(
        cluster=cluster,
        cycle=daily_cycle(timeline),
        drift=wander(rng, timeline.size, 0.04),
        agents=knot_curve(timeline, cluster.agents, smoothing_seconds=180),
        overload=noisy,
        blips=blips(rng, timeline, per_day=3.0),
    )


def request_rate(rng: np.random.Generator, state: ClusterState, endpoint: Endpoint) -> FloatArray:
    """Requests per second of one endpoint in one cluster."""
    rate = endpoint.rate * state.cluster.scale * state.drift * jitter(rng, len(state.drift), 0.02)
    if endpoint.diurnal:
        rate = rate * state.cycle
    if endpoint.agent_list:
        rate = rate * (1.0 + AGENT_LIST_FACTOR * state.agents)
    if endpoint.verb in ("GET", "LIST"):
        rate = rate * (1.0 + RETRY_FACTOR * state.overload)
    return rate


@dataclass(frozen=True)
class Latency:
    """Per-interval latency mixture: body and slow-tail lognormals."""

    body_median: FloatArray
    tail_median: FloatArray
    tail_share: FloatArray
    sigma: float

    def bucket_probs(self) -> FloatArray:
        bounds = np.array(BUCKETS)
        body = lognormal_cdf(bounds, self.body_median, self.sigma)
        tail = lognormal_cdf(bounds, self.tail_median, TAIL_SIGMA)
        cdf = (1 - self.tail_share)[:, None] * body + self.tail_share[:, None] * tail
        cdf = np.maximum.accumulate(np.clip(cdf, 0.0, 1.0), axis=1)
        edges = np.hstack([np.zeros((len(cdf), 1)), cdf, np.ones((len(cdf), 1))])
        return np.diff(edges, axis=1)

    def mean(self) -> FloatArray:
        body = lognormal_mean(self.body_median, self.sigma)
        tail = lognormal_mean(self.tail_median, TAIL_SIGMA)
        return (1 - self.tail_share) * body + self.tail_share * tail


def latency(rng: np.random.Generator, state: ClusterState, endpoint: Endpoint) -> Latency:
    o = state.overload
    size = len(o)
    body = endpoint.median * state.cycle**0.3 * jitter(rng, size, 0.05)
    body = np.minimum(body * BODY_SLOWDOWN**o, BODY_MEDIAN_CAP)
    base_tail = endpoint.tail * state.blips * jitter(rng, size, 0.35)
    tail_share = np.clip(base_tail + (TAIL_MAX - base_tail) * o**1.3, 0.0, 1.0)
    if endpoint.tail == 0.0:
        tail_share = np.zeros(size)
    tail_median = np.minimum(1.4 * endpoint.threshold * (1 + 1.5 * o), TAIL_MEDIAN_CAP)
    return Latency(body, tail_median, tail_share, endpoint.sigma)


def code_probs(rng: np.random.Generator, state: ClusterState, endpoint: Endpoint) -> FloatArray:
    """Per-interval response-code probabilities, columns (success, *ERROR_CODES)."""
    o = state.overload
    size = len(o)
    weight = 1.5 if endpoint.agent_list else 1.0
    columns = [1e-6 + PEAK_429 * weight * o**1.5]
    for code in ERROR_CODES[1:]:
        base = BASE_5XX[code] * state.blips * jitter(rng, size, 0.5)
        columns.append(base + PEAK_5XX[code] * weight * o**2)
    errors = np.stack(columns, axis=1)
    success = np.clip(1.0 - errors.sum(axis=1), 0.0, 1.0)
    return np.column_stack([success, errors])


def api_label_text(cluster: str, endpoint: Endpoint) -> str:
    return (
        f'cluster="{cluster}",job="apiserver",verb="{endpoint.verb}",'
        f'resource="{endpoint.resource}",subresource="{endpoint.subresource}",'
        f'scope="{endpoint.scope}",component="apiserver",group="{endpoint.group}",version="v1"'
    )


def int_strings(values: IntArray) -> list[str]:
    return [str(v) for v in values.tolist()]


def simulate_endpoint(
    rng: np.random.Generator, timeline: Timeline, state: ClusterState, endpoint: Endpoint
) -> tuple[list[Series], list[Series]]:
    """Histogram series and request-total series of one endpoint in one cluster."""
    rate = request_rate(rng, state, endpoint)
    totals = rng.poisson(rate * timeline.interval).astype(np.int64)
    totals[0] = 0
    lat = latency(rng, state, endpoint)
    buckets = cumulative(np.cumsum(split_counts(rng, totals, lat.bucket_probs()), axis=1))
    codes = cumulative(split_counts(rng, totals, code_probs(rng, state, endpoint)))
    sums = np.round(cumulative(totals * lat.mean()), 3)
    labels = api_label_text(state.cluster.name, endpoint)

    histogram = [
        Series(f"{HISTOGRAM}_bucket", f'{labels},le="{le}"', int_strings(buckets[:, j]))
        for j, le in enumerate(LE_LABELS)
    ]
    histogram.append(Series(f"{HISTOGRAM}_count", labels, int_strings(buckets[:, -1])))
    histogram.append(Series(f"{HISTOGRAM}_sum", labels, [f"{v:.3f}" for v in sums.tolist()]))
    names = (endpoint.success, *ERROR_CODES)
    requests = [
        Series(f"{REQUESTS}_total", f'{labels},code="{code}"', int_strings(codes[:, j]))
        for j, code in enumerate(names)
    ]
    return histogram, requests


def simulate_dns(rng: np.random.Generator, timeline: Timeline, cluster: Cluster) -> list[Series]:
    """CoreDNS response counters by rcode for one cluster."""
    size = timeline.size
    failing = np.clip(knot_curve(timeline, cluster.servfail, 360) * jitter(rng, size, 0.06), 0, 1)
    rate = DNS_RATE * cluster.scale * daily_cycle(timeline) * wander(rng, size, 0.03)
    rate = rate * jitter(rng, size, 0.01) * (1.0 + DNS_RETRY_FACTOR * failing)
    totals = rng.poisson(rate * timeline.interval).astype(np.int64)
    totals[0] = 0

    servfail = DNS_BASE_SHARES["SERVFAIL"] * blips(rng, timeline, 2.0) * jitter(rng, size, 0.3)
    servfail = np.clip(servfail + failing, 0.0, 1.0)
    refused = DNS_BASE_SHARES["REFUSED"] * jitter(rng, size, 0.5)
    answered = np.clip(1.0 - servfail - refused, 0.0, 1.0)
    nxdomain = DNS_BASE_SHARES["NXDOMAIN"] * jitter(rng, size, 0.02) * answered
    probs = np.column_stack([answered - nxdomain, nxdomain, servfail, refused])
    counts = cumulative(split_counts(rng, totals, probs))

    labels = f'cluster="{cluster.name}",job="coredns",server="dns://:53",zone=".",view="",plugin=""'
    return [
        Series(f"{DNS_RESPONSES}_total", f'{labels},rcode="{rcode}"', int_strings(counts[:, j]))
        for j, rcode in enumerate(RCODES)
    ]


# --- kube-state-metrics: the workloads of each cluster and their rollouts ------------------

KSM_STREAM = 13  # kube-state-metrics draws from default_rng([seed, KSM_STREAM, ...]) only
KSM_LABEL = 'job="kube-state-metrics"'
KIND_FAMILIES: dict[str, tuple[str, str, str, str]] = {
    # kind label: (created, generation, desired, updated) families, as kube-state-metrics v2
    "daemonset": (
        "kube_daemonset_created",
        "kube_daemonset_metadata_generation",
        "kube_daemonset_status_desired_number_scheduled",
        "kube_daemonset_status_updated_number_scheduled",
    ),
    "deployment": (
        "kube_deployment_created",
        "kube_deployment_metadata_generation",
        "kube_deployment_spec_replicas",
        "kube_deployment_status_replicas_updated",
    ),
    "statefulset": (
        "kube_statefulset_created",
        "kube_statefulset_metadata_generation",
        "kube_statefulset_replicas",
        "kube_statefulset_status_replicas_updated",
    ),
}
_GENERATION_HELP = "Sequence number representing a specific generation of the desired state."
HELP.update(
    {
        "kube_daemonset_created": "Unix creation timestamp",
        "kube_daemonset_metadata_generation": _GENERATION_HELP,
        "kube_daemonset_status_desired_number_scheduled": "The number of nodes that should be "
        "running the daemon pod.",
        "kube_daemonset_status_updated_number_scheduled": "The total number of nodes that are "
        "running updated daemon pod",
        "kube_deployment_created": "Unix creation timestamp",
        "kube_deployment_metadata_generation": _GENERATION_HELP,
        "kube_deployment_spec_replicas": "Number of desired pods for a deployment.",
        "kube_deployment_status_replicas_updated": "The number of updated replicas per deployment.",
        "kube_statefulset_created": "Unix creation timestamp",
        "kube_statefulset_metadata_generation": _GENERATION_HELP,
        "kube_statefulset_replicas": "Number of desired pods for a StatefulSet.",
        "kube_statefulset_status_replicas_updated": "The number of updated replicas per "
        "StatefulSet.",
    }
)


@dataclass(frozen=True)
class Workload:
    """A Deployment, DaemonSet or StatefulSet; ``replicas`` 0 means one pod per node."""

    kind: str  # the kube-state-metrics label: deployment, daemonset, statefulset
    namespace: str
    name: str
    replicas: int = 0

    def desired(self, cluster: Cluster) -> int:
        return self.replicas if self.replicas else cluster.nodes


WORKLOADS: tuple[Workload, ...] = (
    Workload("deployment", "kube-system", "coredns", 48),
    Workload("deployment", "kube-system", "metrics-server", 2),
    Workload("deployment", "ingress", "ingress-nginx-controller", 30),
    Workload("deployment", "cert-manager", "cert-manager", 3),
    Workload("deployment", "external-dns", "external-dns", 2),
    Workload("deployment", "monitoring", "kube-state-metrics", 2),
    Workload("deployment", "checkout", "web", 36),
    Workload("deployment", "checkout", "cart", 12),
    Workload("deployment", "payments", "api", 24),
    Workload("deployment", "payments", "worker", 16),
    Workload("deployment", "search", "frontend", 20),
    Workload("deployment", "identity", "auth", 10),
    Workload("daemonset", "kube-system", "kube-proxy"),
    Workload("daemonset", "kube-system", "cilium"),
    Workload("daemonset", "logging", "fluent-bit"),
    Workload("statefulset", "monitoring", "prometheus-k8s", 2),
    Workload("statefulset", "data", "redis", 6),
)
TELEMETRY = Workload("daemonset", "observability", "telemetry-agent")
TELEMETRY_CREATED = "15:12"  # PST on the incident day, in every cluster
# The incident day's ordinary rollout still in flight when the telemetry DaemonSet arrives.
IN_FLIGHT = (Workload("statefulset", "data", "redis", 6), "14:52", 34 * 60)


@dataclass(frozen=True)
class Rollout:
    """A template update of a workload: generation + 1 at ``start`` (unix seconds, a sample
    timestamp), updated pods drop to 0 then climb to desired by ``start + seconds``."""

    workload: Workload
    start: int
    seconds: int


def pst_unix(day: datetime, clock: str) -> int:
    """Unix seconds of ``HH:MM`` PST on ``day``."""
    hour, minute = clock.split(":")
    return int((day + timedelta(hours=int(hour), minutes=int(minute))).timestamp())


def on_grid(timeline: Timeline, unix: float) -> int:
    """The first sample timestamp at or after ``unix``."""
    index = min(int(np.searchsorted(timeline.timestamps, unix)), timeline.size - 1)
    return int(timeline.timestamps[index])


def day_rollouts(
    rng: np.random.Generator, timeline: Timeline, day: datetime, incident: bool
) -> list[Rollout]:
    """One day's ordinary rollouts in one cluster: several Deployment updates (5-15 min);
    on normal days also one DaemonSet (20-40 min) and one StatefulSet update; on the
    incident day the Deployment updates end before 15:00 and ``IN_FLIGHT`` is rolling."""
    by_kind = {k: [w for w in WORKLOADS if w.kind == k] for k in KIND_FAMILIES}
    hours = 8.0 + rng.uniform(0.0, 6.5 if incident else 10.0, int(rng.integers(4, 8)))
    picks = rng.choice(len(by_kind["deployment"]), size=len(hours), replace=False)
    specs = [
        (by_kind["deployment"][int(p)], h * 3600, rng.uniform(5, 15) * 60)
        for p, h in zip(picks, hours, strict=True)
    ]
    if incident:
        workload, clock, seconds = IN_FLIGHT
        specs.append((workload, pst_unix(day, clock) - day.timestamp(), seconds))
    else:
        daemonset = by_kind["daemonset"][int(rng.integers(0, len(by_kind["daemonset"])))]
        specs.append((daemonset, rng.uniform(10, 16) * 3600, rng.uniform(20, 40) * 60))
        stateful = by_kind["statefulset"][int(rng.integers(0, len(by_kind["statefulset"])))]
        per_pod = rng.uniform(2.5, 4.0) * 60
        specs.append((stateful, rng.uniform(9, 17) * 3600, stateful.replicas * per_pod))
    return sorted(
        (
            Rollout(w, on_grid(timeline, day.timestamp() + offset), round(s))
            for w, offset, s in specs
        ),
        key=lambda r: r.start,
    )


def ksm_rollouts(timeline: Timeline, seed: int) -> dict[str, list[Rollout]]:
    """Every cluster's ordinary rollouts over the whole file, in start order. Each day of
    each cluster draws from its own stream, so a day's rollouts do not depend on how many
    days the file has (``--days-before``)."""
    first = datetime.fromtimestamp(int(timeline.timestamps[0]), PST)
    days = round((INCIDENT_DAY - first).total_seconds() / 86_400)
    plan: dict[str, list[Rollout]] = {}
    for number, cluster in enumerate(CLUSTERS):
        plan[cluster.name] = []
        for back in range(days, -1, -1):
            rng = np.random.default_rng([seed, KSM_STREAM, number, back])
            day = INCIDENT_DAY - timedelta(days=back)
            plan[cluster.name].extend(day_rollouts(rng, timeline, day, back == 0))
    return plan


def rollout_curves(
    timeline: Timeline, desired: int, rollouts: Sequence[Rollout]
) -> tuple[IntArray, IntArray]:
    """(generation bumps so far, updated pods) of one workload along the timeline."""
    bumps = np.zeros(timeline.size, dtype=np.int64)
    updated = np.full(timeline.size, desired, dtype=np.int64)
    t = timeline.timestamps
    for rollout in rollouts:
        bumps += t >= rollout.start
        rolling = (t >= rollout.start) & (t < rollout.start + rollout.seconds)
        done = (t[rolling] - rollout.start) / rollout.seconds
        updated[rolling] = np.floor(desired * done).astype(np.int64)
    return bumps, updated


def ksm_labels(cluster: Cluster, workload: Workload) -> str:
    return (
        f'cluster="{cluster.name}",{KSM_LABEL},namespace="{workload.namespace}",'
        f'{workload.kind}="{workload.name}"'
    )


def workload_series(
    cluster: Cluster,
    workload: Workload,
    columns: tuple[list[str], list[str], list[str], list[str]],
    first: int = 0,
) -> list[tuple[str, Series]]:
    """(family, series) of one workload from its created/generation/desired/updated values."""
    labels = ksm_labels(cluster, workload)
    names = KIND_FAMILIES[workload.kind]
    return [(n, Series(n, labels, v, first)) for n, v in zip(names, columns, strict=True)]


def telemetry_series(timeline: Timeline, cluster: Cluster) -> list[tuple[str, Series]]:
    """The telemetry DaemonSet: created at 15:12, its updated pods following the agents'
    curve (``ROLLOUT``, the one that drives the overload), desired = the node count until
    the agents are removed, then both fall with the agents; the series end at 0 (deleted)."""
    t = timeline.timestamps
    created = on_grid(timeline, pst_unix(INCIDENT_DAY, TELEMETRY_CREATED))
    running = np.round(cluster.nodes * knot_curve(timeline, cluster.agents, 180)).astype(np.int64)
    removing = t >= pst_unix(INCIDENT_DAY, cluster.agents_removed)
    desired = np.where(removing, running, cluster.nodes)
    updated = np.minimum(desired, running)
    first = int(np.searchsorted(t, created))
    gone = np.flatnonzero(removing & (running == 0))
    last = int(gone[0]) if len(gone) else timeline.size - 1
    size = last + 1 - first
    columns = (
        [str(created)] * size,
        ["1"] * size,
        int_strings(desired[first : last + 1]),
        int_strings(updated[first : last + 1]),
    )
    return workload_series(cluster, TELEMETRY, columns, first)


def simulate_ksm(timeline: Timeline, seed: int) -> list[tuple[str, str, list[Series]]]:
    """kube-state-metrics gauges of every workload in every cluster, by family."""
    plan = ksm_rollouts(timeline, seed)
    rng = np.random.default_rng([seed, KSM_STREAM, 1])
    newest = pst_unix(INCIDENT_DAY - timedelta(days=30), "00:00")  # created long before the file
    oldest = newest - 600 * 86_400
    by_family: dict[str, list[Series]] = {n: [] for names in KIND_FAMILIES.values() for n in names}
    for cluster in CLUSTERS:
        pairs: list[tuple[str, Series]] = []
        for workload in WORKLOADS:
            mine = [r for r in plan[cluster.name] if r.workload == workload]
            desired = workload.desired(cluster)
            bumps, updated = rollout_curves(timeline, desired, mine)
            base = int(rng.integers(2, 300))
            columns = (
                [str(int(rng.integers(oldest, newest)))] * timeline.size,
                int_strings(base + bumps),
                [str(desired)] * timeline.size,
                int_strings(updated),
            )
            pairs.extend(workload_series(cluster, workload, columns))
        pairs.extend(telemetry_series(timeline, cluster))
        for family, series in pairs:
            by_family[family].append(series)
    return [(family, "gauge", series) for family, series in by_family.items()]


def simulate(timeline: Timeline, seed: int) -> list[tuple[str, str, list[Series]]]:
    """All families as (family name, type, series) in output order."""
    rng = np.random.default_rng(seed)
    histogram: list[Series] = []
    requests: list[Series] = []
    dns: list[Series] = []
    for cluster in CLUSTERS:
        state = cluster_state(rng, timeline, cluster)
        for endpoint in ENDPOINTS:
            hist_series, request_series = simulate_endpoint(rng, timeline, state, endpoint)
            histogram.extend(hist_series)
            requests.extend(request_series)
        dns.extend(simulate_dns(rng, timeline, cluster))
    return [
        (HISTOGRAM, "histogram", histogram),
        (REQUESTS, "counter", requests),
        (DNS_RESPONSES, "counter", dns),
        *simulate_ksm(timeline, seed),
    ]


def write_series(out: TextIO, series: Series, suffixes: Sequence[str]) -> int:
    prefix = f"{series.name}{{{series.labels}}} "
    stamps = suffixes[series.first : series.first + len(series.values)]
    chunk = "".join(
        [f"{prefix}{value}{suffix}" for value, suffix in zip(series.values, stamps, strict=True)]
    )
    out.write(chunk)
    return len(chunk)


def write_openmetrics(
    path: Path, timeline: Timeline, families: list[tuple[str, str, list[Series]]]
) -> tuple[int, int]:
    """Write families contiguously, series after series; returns (series, bytes)."""
    suffixes = [f" {ts}\n" for ts in timeline.timestamps.tolist()]
    written = 0
    count = 0
    with path.open("w", encoding="ascii", buffering=1 << 22) as out:
        for family, kind, series_list in families:
            header = f"# HELP {family} {HELP[family]}\n# TYPE {family} {kind}\n"
            out.write(header)
            written += len(header)
            for series in series_list:
                written += write_series(out, series, suffixes)
                count += 1
        out.write("# EOF\n")
        written += len("# EOF\n")
    return count, written


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Write the 2024-12-11 incident as OpenMetrics for promtool backfill."
    )
    parser.add_argument("--out", type=Path, required=True, help="OpenMetrics file to write")
    parser.add_argument(
        "--days-before", type=int, default=2, help="whole days of normal traffic before 12-11"
    )
    parser.add_argument("--interval", type=int, default=60, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    args = parser.parse_args(argv)
    if args.days_before < 0:
        parser.error("--days-before must be >= 0")
    if args.interval <= 0:
        parser.error("--interval must be > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    timeline = build_timeline(args.days_before, args.interval)
    families = simulate(timeline, args.seed)
    series, size = write_openmetrics(args.out, timeline, families)
    elapsed = time.perf_counter() - started
    print(
        f"{args.out}: {series} series, {series * timeline.size} samples, {size} bytes, "
        f"{elapsed:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

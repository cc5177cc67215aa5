"""Known traffic for tests: steady request counters with error bursts of exact ratios."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from guardian.testing.openmetrics import Series


@dataclass(frozen=True)
class Burst:
    """Errors at ``ratio`` of all requests from ``start`` to ``end`` (seconds from t0)."""

    start: float
    end: float
    ratio: float


def timeline(t0: float, duration: float, interval: float) -> list[float]:
    """Sample timestamps from ``t0`` to ``t0 + duration`` inclusive."""
    return [t0 + i * interval for i in range(int(duration / interval) + 1)]


def steady(
    timestamps: Sequence[float],
    per_second: float,
    bursts: Sequence[Burst],
    labels: dict[str, str],
    prefix: str = "app",
) -> list[Series]:
    """``<prefix>_requests_total`` and ``<prefix>_errors_total`` for a steady request rate."""
    t0 = timestamps[0]
    total: list[float] = []
    errors: list[float] = []
    seen = bad = 0.0
    previous = t0
    for t in timestamps:
        count = per_second * (t - previous)
        seen += count
        bad += sum(count * b.ratio for b in bursts if t0 + b.start < t <= t0 + b.end)
        total.append(round(seen, 6))
        errors.append(round(bad, 6))
        previous = t
    return [
        Series(f"{prefix}_requests", labels, total),
        Series(f"{prefix}_errors", labels, errors),
    ]


def ratio_slo(name: str, selector: str, objective: float, windows: str, **extra: object) -> str:
    """A YAML list item for a ratio SLO over the ``steady`` counters."""
    more = "".join(f"\n    {k}: {v}" for k, v in extra.items())
    return f"""
  - name: {name}
    objective: {objective}
    windows: {windows}{more}
    sli:
      ratio:
        errors: sum(rate(app_errors_total{{{selector}}}[{{{{window}}}}]))
        total: sum(rate(app_requests_total{{{selector}}}[{{{{window}}}}]))"""


APISERVER_COMBOS = [
    # verb, resource, subresource, scope, requests per second
    ("LIST", "pods", "", "cluster", 2.0),
    ("LIST", "configmaps", "", "namespace", 10.0),
    ("GET", "pods", "", "resource", 80.0),
    ("GET", "pods", "log", "resource", 1.0),
    ("POST", "events", "", "resource", 30.0),
    ("PUT", "leases", "", "resource", 60.0),
]
_LE = ("1", "5", "30", "+Inf")


def apiserver(
    timestamps: Sequence[float], labels: dict[str, str], seed: int = 1, slow: float = 0.01
) -> list[Series]:
    """API-server SLI histogram buckets and request counters with random but valid counts."""
    import random

    rng = random.Random(seed)
    out: list[Series] = []
    for verb, resource, sub, scope, rate in APISERVER_COMBOS:
        base = {**labels, "verb": verb, "resource": resource, "subresource": sub, "scope": scope}
        buckets = {le: [0.0] for le in _LE}
        codes = {code: [0.0] for code in ("200", "429", "500")}
        for previous, t in itertools.pairwise(timestamps):
            n = rng.randint(int(rate * (t - previous) * 0.8), int(rate * (t - previous) * 1.2))
            over = [rng.randint(0, int(n * slow * k)) for k in (1.0, 0.4, 0.1)]
            if sub == "log":  # streaming: long by nature, and not part of the SLI
                over = [n, n, n]
            counts = {"1": n - over[0], "5": n - over[1], "30": n - over[2], "+Inf": n}
            for le in _LE:
                buckets[le].append(buckets[le][-1] + counts[le])
            fives = rng.randint(0, max(1, n // 500))
            throttled = rng.randint(0, max(1, n // 1000))
            codes["500"].append(codes["500"][-1] + fives)
            codes["429"].append(codes["429"][-1] + throttled)
            codes["200"].append(codes["200"][-1] + n - fives - throttled)
        for le, values in buckets.items():
            out.append(
                Series(
                    "apiserver_request_sli_duration_seconds_bucket",
                    {**base, "le": le},
                    values,
                    "unknown",
                )
            )
        out.append(
            Series("apiserver_request_sli_duration_seconds_count", base, buckets["+Inf"], "unknown")
        )
        for code, values in codes.items():
            out.append(Series("apiserver_request", {**base, "code": code}, values))
    return out


def apiserver_shedding(
    timestamps: Sequence[float], labels: dict[str, str], seed: int = 5, rejected: int = 10
) -> list[Series]:
    """An API server shedding load: ``rejected`` percent of requests answered 429, all fast.

    ``apiserver_request_duration_seconds`` (queue wait included) holds every request under
    1 s, and ``apiserver_request_total`` answers the rest 200, never 5xx: an SLI that counts
    429s as good sees no error at all. Each step's count is a multiple of 100, so over any
    window the 429s are exactly ``rejected`` percent. The streaming ``log`` requests, half of
    them 429 and all slow, belong to no SLI: if they leaked in, the ratio would move.
    """
    import random

    rng = random.Random(seed)
    out: list[Series] = []
    for verb, resource, sub, scope, rate in APISERVER_COMBOS:
        base = {**labels, "verb": verb, "resource": resource, "subresource": sub, "scope": scope}
        fast = [0.0]
        count = [0.0]
        codes = {code: [0.0] for code in ("200", "429")}
        for previous, t in itertools.pairwise(timestamps):
            n = 100 * rng.randint(
                max(1, int(rate * (t - previous) * 0.008)), int(rate * (t - previous) * 0.012) + 1
            )
            throttled = n // 2 if sub == "log" else n * rejected // 100
            count.append(count[-1] + n)
            fast.append(fast[-1] + (0 if sub == "log" else n))
            codes["429"].append(codes["429"][-1] + throttled)
            codes["200"].append(codes["200"][-1] + n - throttled)
        for le in _LE:
            values = count if le == "+Inf" else fast
            out.append(
                Series(
                    "apiserver_request_duration_seconds_bucket",
                    {**base, "le": le},
                    values,
                    "unknown",
                )
            )
        out.append(Series("apiserver_request_duration_seconds_count", base, count, "unknown"))
        for code, values in codes.items():
            out.append(Series("apiserver_request", {**base, "code": code}, values))
    return out


def coredns(timestamps: Sequence[float], labels: dict[str, str], seed: int = 2) -> list[Series]:
    """CoreDNS responses by rcode."""
    import random

    rng = random.Random(seed)
    shares = {"NOERROR": 0.8, "NXDOMAIN": 0.19, "SERVFAIL": 0.002, "REFUSED": 0.0005}
    values = {rcode: [0.0] for rcode in shares}
    for previous, t in itertools.pairwise(timestamps):
        n = 500 * (t - previous)
        for rcode, share in shares.items():
            values[rcode].append(values[rcode][-1] + rng.randint(0, int(2 * n * share) + 1))
    return [
        Series("coredns_dns_responses", {**labels, "rcode": rcode}, v)
        for rcode, v in values.items()
    ]


def histogram(timestamps: Sequence[float], labels: dict[str, str], seed: int = 3) -> list[Series]:
    """``http_request_duration_seconds`` with a 0.5 s bucket."""
    import random

    rng = random.Random(seed)
    fast, count = [0.0], [0.0]
    for previous, t in itertools.pairwise(timestamps):
        n = rng.randint(50, 150) * (t - previous)
        count.append(count[-1] + n)
        fast.append(fast[-1] + n - rng.randint(0, int(n * 0.01)))
    return [
        Series("http_request_duration_seconds_bucket", {**labels, "le": "0.5"}, fast, "unknown"),
        Series("http_request_duration_seconds_count", labels, count, "unknown"),
    ]

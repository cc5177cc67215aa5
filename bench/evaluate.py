"""Benchmark: guardian evaluating 10, 100 and 1,000 SLOs against a real Prometheus.

For each size it reports three ways guardian evaluates, side by side with the rules baseline
and as ratios to it (never as timed assertions):

- ``raw, sequential``: ``evaluate(mode="raw", parallel=1)``, one PromQL query per window over
  the raw metrics, one at a time;
- ``raw, parallel``: the same queries, ``prometheus.parallel_queries`` (2) at a time;
- ``rules``: ``evaluate(mode="rules")`` reading the series recorded by the rules that
  ``guardian rules`` exports, from the Prometheus that evaluates them, at the current time;
- the baseline: that Prometheus evaluating the exported rules, as the sum over their groups
  of ``prometheus_rule_group_last_duration_seconds`` (one evaluation cycle).

Per measurement: wall time per evaluation, queries per evaluation, guardian's own CPU time
(this process; the client sleeps on HTTP while Prometheus works), the rest, spent in
Prometheus, and Prometheus' engine and CPU time read from its ``/metrics``. The engine
metrics count rule evaluations too, so with rules running in the background guardian's
engine time comes from Prometheus' query log instead (its API queries only).

Data: 1,000 services, each with ``bench_requests_total`` and ``bench_errors_total`` (every
25th also a ``bench_request_duration_seconds`` histogram, for a latency SLO): Poisson traffic
with a daily cycle and slow wander, short error blips, a few counter resets; every 20th
service burns (a few percent of errors in the last hour, objective 99.9: it pages) and every
25th burns slowly (a few times its budget for hours: it may open a ticket). 3 days and 1 hour
at a 60 s interval, backfilled once with promtool, ending a few seconds before the run
starts; a live feed (a child process) continues the counters for the Prometheus that
evaluates the rules at the current time. Every SLO uses the ``google-30d`` window set and a
30-day period: 8 distinct windows.

Method, per size (largest first):

1. rules: a fresh copy of the TSDB, Prometheus with the exported rule file, a 30 s
   evaluation interval and the live feed; once every group has been evaluated twice, the sum
   of their last durations is one cycle's cost; then guardian's ``rules`` measurement
   against it (one warm-up, then several measured evaluations, at the current time);
2. raw: another fresh copy, Prometheus without rules or feed (so neither side slows the
   other); sequential then parallel, each one warm-up then several measured evaluations, all
   at the instant of the newest sample (data then stays the same however long the run takes).

An evaluation that returns an error, or any SLO that is ``no_data``, makes the run fail
(exit 1); so does a Prometheus that does not start. Results go to the console and to
``bench/results/evaluate-<UTC time>.json`` and ``bench/results/evaluate-latest.json``.

Usage: ``make bench`` or ``.venv/bin/python bench/evaluate.py [--sizes 10,100,1000]`` from
the project root. See ``bench/README.md`` for how to read the numbers.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import yaml
from rich import box
from rich.console import Console
from rich.table import Table

from guardian.app.cli import main as guardian_cli
from guardian.clients.prometheus import InstantSample, PrometheusClient, RangeSeries
from guardian.config import Config, load_config
from guardian.config.model import PrometheusSettings
from guardian.durations import format_duration
from guardian.errors import GuardianError
from guardian.evaluation.queries import Source, build_queries
from guardian.evaluation.results import Evaluation
from guardian.evaluation.run import evaluate
from guardian.testing.openmetrics import Series, write_counters
from guardian.testing.prometheus import PrometheusServer, backfill, binary, free_port

SERVICES = 1000
SIZES = (1000, 100, 10)
ROUNDS = {10: 20, 100: 10, 1000: 5}
"""Measured evaluations per size and measurement, after one warm-up."""
SEQUENTIAL_ROUNDS = {1000: 3}
"""Fewer for raw sequential evaluations where each takes many seconds."""
INTERVAL = 60
HISTORY = 3 * 86400 + 3600
LAG = 5
"""Seconds between the newest sample and the start of the run."""
LIVE_INTERVAL = 5
"""Seconds between scrapes of the live feed by the Prometheus that evaluates the rules."""
SEED = 20241211
OBJECTIVES = (99.0, 99.5, 99.9)
LATENCY_EVERY, LATENCY_AT = 25, 3
FAST_EVERY, FAST_AT = 20, 1
SLOW_EVERY, SLOW_AT = 25, 7
RESET_EVERY, RESET_AT = 50, 13

CYCLE = 30
"""Rule evaluation interval, seconds: guardian's default evaluation interval."""
RULES_TIMEOUT = 240.0
POLL = 2.0

TARGET_SLOS = 1000
TARGET_QUERIES = 8
TARGET_WALL = 2.0
TARGET_SHARE = 0.25

RESULTS = Path(__file__).resolve().parent / "results"
ENGINE_SLICES = ("queue_time", "prepare_time", "inner_eval", "result_sort")
LOG_TIMINGS = {
    "queue_time": "execQueueTime",
    "prepare_time": "queryPreparationTime",
    "inner_eval": "innerEvalTime",
    "result_sort": "resultSortTime",
}
"""The query log's name of each engine slice."""

console = Console(width=None if sys.stdout.isatty() else 132)
Matrix = npt.NDArray[np.float64]


class BenchFailure(Exception):
    """Something broke: the numbers would mean nothing."""


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Service:
    """One service of the fleet and the SLO written for it."""

    index: int
    name: str
    kind: Literal["ratio", "latency"]
    objective: float
    team: str
    burn: Literal["none", "fast", "slow"]


def fleet(count: int, rng: np.random.Generator) -> list[Service]:
    """``count`` services; burning ones and latency ones at fixed positions."""
    drawn = rng.choice(OBJECTIVES, size=count, p=(0.3, 0.3, 0.4))
    services: list[Service] = []
    for i in range(count):
        kind: Literal["ratio", "latency"] = (
            "latency" if i % LATENCY_EVERY == LATENCY_AT else "ratio"
        )
        burn: Literal["none", "fast", "slow"] = "none"
        objective = float(drawn[i])
        if i % FAST_EVERY == FAST_AT:
            burn, objective = "fast", 99.9
        elif i % SLOW_EVERY == SLOW_AT:
            burn = "slow"
        if kind == "latency":
            objective = min(objective, 99.5)
        name = f"svc-{i:04d}"
        services.append(Service(i, name, kind, objective, f"team-{i % 12:02d}", burn))
    return services


@dataclass(frozen=True)
class Tail:
    """The fleet at its newest sample: where ``LiveFeed`` continues it."""

    services: tuple[Service, ...]
    rates: tuple[float, ...]
    """Requests per second of each service at the newest sample."""
    ratios: tuple[float, ...]
    """Share of bad requests of each service at the newest sample."""
    values: dict[str, float]
    """``name{labels}`` → the counter's newest value."""


def traffic(
    services: Sequence[Service], times: Matrix, rng: np.random.Generator
) -> tuple[list[Series], Tail]:
    """Every series of the fleet at ``times``, as cumulative counters, and where they end."""
    count, n = len(services), len(times)
    rate = np.exp(rng.uniform(np.log(0.5), np.log(200.0), count))
    phase = rng.uniform(0.0, 2 * np.pi, count)
    daily = 1.0 + 0.35 * np.sin(2 * np.pi * times[None, :] / 86400 + phase[:, None])
    expected = rate[:, None] * daily * _wander(count, n, rng) * INTERVAL
    requests = rng.poisson(expected)
    ratio = _bad_ratio(services, times, rng)
    errors = rng.binomial(requests, ratio)
    resets = np.full(count, -1)
    for s in services:
        if s.index % RESET_EVERY == RESET_AT:
            resets[s.index] = int(rng.integers(n // 4, 3 * n // 4))
    total, bad = _cumulative(requests, resets), _cumulative(errors, resets)
    series: list[Series] = []
    for s in services:
        labels = {"service": s.name}
        series.append(Series("bench_requests", labels, total[s.index].tolist()))
        series.append(Series("bench_errors", labels, bad[s.index].tolist()))
    latency = [s.index for s in services if s.kind == "latency"]
    slow = _cumulative(rng.binomial(requests[latency], ratio[latency]), resets[latency])
    for row, index in enumerate(latency):
        labels = {"service": services[index].name}
        fast = (total[index] - slow[row]).tolist()
        everything = total[index].tolist()
        name = "bench_request_duration_seconds"
        series += [
            Series(f"{name}_bucket", {**labels, "le": "0.5"}, fast, "unknown"),
            Series(f"{name}_bucket", {**labels, "le": "+Inf"}, everything, "unknown"),
            Series(f"{name}_count", labels, everything, "unknown"),
        ]
    tail = Tail(
        services=tuple(services),
        rates=tuple((expected[:, -1] / INTERVAL).tolist()),
        ratios=tuple(ratio[:, -1].tolist()),
        values={sample_key(s): float(s.values[-1]) for s in series},
    )
    return series, tail


def sample_key(series: Series) -> str:
    """``name{labels}`` of a series as Prometheus' text format writes it."""
    name = f"{series.name}_total" if series.kind == "counter" else series.name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(series.labels.items())) + "}"


def _wander(count: int, n: int, rng: np.random.Generator) -> Matrix:
    """Slow multiplicative drift of traffic: AR(1) on a log scale, about ±35%."""
    steps = rng.normal(0.0, 0.03, (count, n))
    level = np.zeros((count, n))
    for k in range(1, n):
        level[:, k] = 0.995 * level[:, k - 1] + steps[:, k]
    return np.exp(level)


def _bad_ratio(services: Sequence[Service], times: Matrix, rng: np.random.Generator) -> Matrix:
    """Share of bad events per service and interval: baseline, blips and burns."""
    budget = np.array([1.0 - s.objective / 100.0 for s in services])
    base = budget * rng.uniform(0.02, 0.4, len(services))
    ratio = np.repeat(base[:, None], len(times), axis=1)
    end = float(times[-1])
    for s in services:
        row = ratio[s.index]
        for _ in range(int(rng.poisson(2.0))):
            start = rng.uniform(float(times[0]), end)
            row[(times >= start) & (times < start + rng.uniform(300, 1200))] *= rng.uniform(5, 15)
        if s.burn == "fast":
            row[times > end - rng.uniform(40, 70) * 60] = rng.uniform(0.02, 0.06)
        elif s.burn == "slow":
            row[times > end - rng.uniform(8, 30) * 3600] = budget[s.index] * rng.uniform(2, 5)
    return np.clip(ratio, 0.0, 1.0)


def _cumulative(counts: npt.NDArray[np.int64], resets: npt.NDArray[np.int64]) -> Matrix:
    """Per-interval counts → counters; a reset restarts a counter from zero."""
    values = np.cumsum(counts, axis=1).astype(np.float64)
    for row, at in enumerate(resets):
        if at > 0:
            values[row, at:] -= values[row, at - 1]
    return values


def build_tsdb(root: Path, services: Sequence[Service], end: int) -> tuple[dict[str, Any], Tail]:
    """Write the fleet's history ending at ``end`` and backfill it into ``root/tsdb``."""
    rng = np.random.default_rng(SEED)
    times = end - INTERVAL * np.arange(HISTORY // INTERVAL, -1, -1, dtype=np.float64)
    series, tail = traffic(services, times, rng)
    data = root / "history.om"
    write_counters(data, times.tolist(), series)
    backfill(data, root / "tsdb")
    data.unlink()
    info = {
        "services": len(services),
        "series": len(series),
        "samples": len(series) * len(times),
        "interval_seconds": INTERVAL,
        "history_seconds": HISTORY,
        "newest_sample": datetime.fromtimestamp(end, UTC).isoformat(),
        "live_scrape_interval_seconds": LIVE_INTERVAL,
        "seed": SEED,
    }
    return info, tail


class LiveFeed:
    """The fleet's counters continued past the history, served for Prometheus to scrape.

    Prometheus evaluates rules at the current time: without new samples its 5-minute windows
    would be empty a few minutes after the newest backfilled sample. The feed runs in a child
    process, so its CPU time never counts as guardian's.
    """

    def __init__(self, tail: Tail, since: float) -> None:
        self.tail = tail
        self.since = since
        self.port = free_port()
        self._process: multiprocessing.process.BaseProcess | None = None

    @property
    def target(self) -> str:
        """``host:port`` to scrape."""
        return f"127.0.0.1:{self.port}"

    def scrape_config(self) -> dict[str, object]:
        """A scrape job for the feed; its series keep exactly the backfilled labels."""
        return {
            "job_name": "bench-live",
            "scrape_interval": f"{LIVE_INTERVAL}s",
            "scrape_timeout": f"{LIVE_INTERVAL}s",
            "static_configs": [{"targets": [self.target]}],
            "metric_relabel_configs": [{"action": "labeldrop", "regex": "job|instance"}],
        }

    def __enter__(self) -> LiveFeed:
        context = multiprocessing.get_context("fork")
        ready = context.Event()
        self._process = context.Process(
            target=_serve_feed, args=(self.tail, self.since, self.port, ready), daemon=True
        )
        self._process.start()
        if not ready.wait(30):
            self.__exit__(None, None, None)
            raise BenchFailure("the live feed did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.join(10)
            self._process = None


def _serve_feed(tail: Tail, since: float, port: int, ready: Any) -> None:
    """The feed's process: continue every counter by Poisson draws at each scrape."""
    rng = np.random.default_rng(SEED + 1)
    values = dict(tail.values)
    rates, ratios = np.array(tail.rates), np.array(tail.ratios)
    state = {"since": since}

    def advance() -> bytes:
        now = time.time()
        elapsed, state["since"] = max(now - state["since"], 0.0), now
        requests = rng.poisson(rates * elapsed)
        errors = rng.binomial(requests, ratios)
        slow = rng.binomial(requests, ratios)
        for s in tail.services:
            n, service = float(requests[s.index]), f'service="{s.name}"'
            values[f"bench_requests_total{{{service}}}"] += n
            values[f"bench_errors_total{{{service}}}"] += float(errors[s.index])
            if s.kind == "latency":
                name = "bench_request_duration_seconds"
                values[f'{name}_bucket{{le="0.5",{service}}}'] += n - float(slow[s.index])
                values[f'{name}_bucket{{le="+Inf",{service}}}'] += n
                values[f"{name}_count{{{service}}}"] += n
        return "".join(f"{k} {v:.17g}\n" for k, v in values.items()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = advance()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


# ---------------------------------------------------------------------------------------------
# Configuration and rules


def slo_spec(service: Service) -> dict[str, Any]:
    """The guardian/v1 SLO of one service."""
    selector = f'service="{service.name}"'
    sli: dict[str, Any]
    if service.kind == "latency":
        metric = "bench_request_duration_seconds"
        sli = {"latency": {"metric": metric, "le": "0.5", "selector": selector}}
    else:
        sli = {
            "ratio": {
                "errors": f"sum(rate(bench_errors_total{{{selector}}}[{{{{window}}}}]))",
                "total": f"sum(rate(bench_requests_total{{{selector}}}[{{{{window}}}}]))",
            }
        }
    return {
        "name": service.name,
        "objective": service.objective,
        "period": "30d",
        "windows": "google-30d",
        "labels": {"team": service.team},
        "sli": sli,
    }


def write_config(path: Path, services: Sequence[Service]) -> Config:
    """A config for ``services`` (URL filled in per server) and its loaded form."""
    doc = {
        "version": "guardian/v1",
        "prometheus": {"url": "http://127.0.0.1:9090"},
        "slos": [slo_spec(s) for s in services],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_config(path)


def export_rules(config: Path, out: Path) -> None:
    """``guardian rules -c CONFIG -o OUT``."""
    code = guardian_cli(["rules", "-c", str(config), "-o", str(out)])
    if code != 0:
        raise BenchFailure(f"guardian rules -c {config} exited {code}")


# ---------------------------------------------------------------------------------------------
# Prometheus' own metrics


@dataclass(frozen=True)
class Sample:
    """One line of Prometheus' ``/metrics``."""

    name: str
    labels: dict[str, str]
    value: float


_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(url: str) -> list[Sample]:
    """Prometheus' ``/metrics``, parsed."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
        text = answer.read().decode("utf-8", "replace")
    samples: list[Sample] = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None or line.startswith("#"):
            continue
        labels = dict(_PAIR.findall(match.group(2) or ""))
        samples.append(Sample(match.group(1), labels, float(match.group(3))))
    return samples


def total(samples: Sequence[Sample], name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def engine_seconds(samples: Sequence[Sample]) -> float:
    """Seconds the query engine spent so far, all slices: API queries and rule evaluations."""
    name = "prometheus_engine_query_duration_seconds_sum"
    return sum(total(samples, name, slice=part) for part in ENGINE_SLICES)


def engine_queries(samples: Sequence[Sample]) -> float:
    """Queries the engine has evaluated so far: API queries and rule evaluations."""
    return total(samples, "prometheus_engine_query_duration_seconds_count", slice="inner_eval")


def rule_groups_metrics(samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """Per guardian rule group (by name), its ``prometheus_rule_group_*`` metrics."""
    groups: dict[str, dict[str, float]] = {}
    for s in samples:
        group = s.labels.get("rule_group", "")
        name = group.rpartition(";")[2]
        if name.startswith("guardian-slo-"):
            groups.setdefault(name, {})[s.name] = s.value
    return groups


def enable_query_log(url: str, path: Path) -> None:
    """Make the running Prometheus log every query it evaluates to ``path``.

    Its configuration file (found through ``/api/v1/status/flags``) gains
    ``global.query_log_file`` and is reloaded; unchanged rule groups keep running.
    """
    with urllib.request.urlopen(f"{url}/api/v1/status/flags", timeout=30) as answer:
        config_file = Path(json.load(answer)["data"]["config.file"])
    doc = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    doc.setdefault("global", {})["query_log_file"] = str(path)
    config_file.write_text(yaml.safe_dump(doc), encoding="utf-8")
    reload = urllib.request.Request(f"{url}/-/reload", method="POST")
    with urllib.request.urlopen(reload, timeout=60):
        pass
    if total(scrape(url), "prometheus_engine_query_log_enabled") != 1:
        raise BenchFailure(f"Prometheus did not enable its query log at {path}")


def api_queries(path: Path, offset: int) -> list[dict[str, Any]]:
    """Entries of the query log after ``offset`` that came through the HTTP API (not rules)."""
    if not path.exists():
        return []
    with path.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode("utf-8", "replace").splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    return [e for e in entries if "httpRequest" in e]


def logged_engine_seconds(entry: dict[str, Any]) -> float:
    """Engine time of one query-log entry, the same slices as ``engine_seconds``."""
    timings = entry.get("stats", {}).get("timings", {})
    return sum(float(timings.get(LOG_TIMINGS[part], 0.0)) for part in ENGINE_SLICES)


# ---------------------------------------------------------------------------------------------
# guardian


class TimedSource:
    """The Prometheus client, timing each query."""

    def __init__(self, client: PrometheusClient) -> None:
        self.client = client
        self.calls: list[tuple[str, float]] = []

    def instant(self, promql: str, at: datetime | None = None) -> list[InstantSample]:
        """``PrometheusClient.instant``, timed."""
        start = time.perf_counter()
        try:
            return self.client.instant(promql, at)
        finally:
            self.calls.append((promql, time.perf_counter() - start))

    def range(self, promql: str, start: datetime, end: datetime, step: int) -> list[RangeSeries]:
        """``PrometheusClient.range`` (not used by an evaluation)."""
        return self.client.range(promql, start, end, step)


@dataclass
class GuardianRun:
    """Measured evaluations of one size in one way."""

    name: str
    mode: Source
    parallel: int
    instant: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    windows: dict[str, list[float]] = field(default_factory=dict)
    query_chars: dict[str, int] = field(default_factory=dict)
    engine_seconds: float = 0.0
    engine_source: str = "engine metrics"
    engine_seconds_with_rules: float | None = None
    logged_queries: int | None = None
    http_seconds: float = 0.0
    prometheus_cpu_seconds: float = 0.0
    background_rules: bool = False
    statuses: dict[str, int] = field(default_factory=dict)


def measure_guardian(
    url: str,
    config: Config,
    name: str,
    mode: Source,
    parallel: int,
    at: datetime | None,
    rounds: int,
    query_log: Path | None = None,
) -> GuardianRun:
    """One warm-up and ``rounds`` measured evaluations of every SLO in ``config``.

    With ``query_log`` (Prometheus also evaluates rules), the engine time is the sum over the
    logged API queries; otherwise the engine metrics' delta, all of it guardian's.
    """
    slos = config.slos
    window_of = {q.promql: format_duration(q.window) for q in build_queries(slos, mode)}
    run = GuardianRun(
        name=name,
        mode=mode,
        parallel=parallel,
        instant="newest sample" if at is not None else "now",
        query_chars={w: len(p) for p, w in window_of.items()},
        background_rules=query_log is not None,
    )
    client = PrometheusClient(replace(config.prometheus, url=url))
    source = TimedSource(client)
    try:
        _check(*evaluate(slos, source, at, mode, parallel), len(slos), name)
        source.calls.clear()
        gc.collect()
        logged = query_log.stat().st_size if query_log is not None and query_log.exists() else 0
        before = scrape(url)
        for _ in range(rounds):
            sent = client.queries
            wall, cpu = time.perf_counter(), time.process_time()
            evaluation, error = evaluate(slos, source, at, mode, parallel)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            _check(evaluation, error, len(slos), name)
            run.walls.append(wall)
            run.cpus.append(cpu)
            run.queries.append(evaluation.queries)
            run.sent.append(client.queries - sent)
        after = scrape(url)
        last = evaluation
    finally:
        client.close()
    for promql, seconds in source.calls:
        run.windows.setdefault(window_of.get(promql, "?"), []).append(seconds)
    from_metrics = (engine_seconds(after) - engine_seconds(before)) / rounds
    if query_log is None:
        run.engine_seconds = from_metrics
    else:
        entries = api_queries(query_log, logged)
        run.logged_queries = len(entries)
        run.engine_seconds = sum(logged_engine_seconds(e) for e in entries) / rounds
        run.engine_source = "query log"
        run.engine_seconds_with_rules = from_metrics
    handler = "prometheus_http_request_duration_seconds_sum"
    run.http_seconds = (
        total(after, handler, handler="/api/v1/query")
        - total(before, handler, handler="/api/v1/query")
    ) / rounds
    cpu_name = "process_cpu_seconds_total"
    run.prometheus_cpu_seconds = (total(after, cpu_name) - total(before, cpu_name)) / rounds
    run.statuses = dict(Counter(s.status for s in last.slos))
    return run


def _check(evaluation: Evaluation, error: str, size: int, name: str) -> None:
    if error:
        raise BenchFailure(f"{size} SLOs, {name}: an evaluation failed: {error}")
    blind = [s for s in evaluation.slos if s.status == "no_data"]
    if blind:
        raise BenchFailure(
            f"{size} SLOs, {name}: {len(blind)} SLOs are no_data, "
            f"e.g. {blind[0].name}: {blind[0].reason}"
        )


# ---------------------------------------------------------------------------------------------
# The baseline: Prometheus evaluating the exported rules, and guardian reading what they record


@dataclass(frozen=True)
class RulesRun:
    """One cycle of the exported rules for one size."""

    groups: int
    rules: int
    cycle_seconds: float
    """Sum over the groups of their last evaluation's duration."""
    by_kind: dict[str, float]
    slowest: tuple[str, float]
    cpu_per_cycle: float
    """Prometheus process CPU seconds per evaluation interval while evaluating the rules."""
    engine_queries_per_cycle: float
    """Queries the engine evaluated per interval, with no API query at all: the rules'."""
    engine_seconds_per_cycle: float
    samples_per_cycle: float
    iterations_missed: float
    recorded_slos: int
    waited_seconds: float


def measure_rules(
    tsdb: Path, rules: Path, config: Config, feed: LiveFeed, rounds: int, query_log: Path
) -> tuple[RulesRun, GuardianRun]:
    """Prometheus with ``rules`` until every group has been evaluated twice; then guardian.

    guardian reads the recorded series (``source: rules``) at the current time, from the same
    Prometheus, which keeps evaluating the rules meanwhile.
    """
    slos = len(config.slos)
    expected = 3 * slos
    server = PrometheusServer(
        tsdb,
        rule_files=[rules],
        scrape_configs=[feed.scrape_config()],
        evaluation_interval=f"{CYCLE}s",
    )
    with server:
        started = time.monotonic()
        first: tuple[float, list[Sample]] | None = None
        while True:
            samples = scrape(server.url)
            groups = rule_groups_metrics(samples)
            done = [g.get("prometheus_rule_group_iterations_total", 0.0) for g in groups.values()]
            fewest = min(done, default=0.0)
            if len(groups) == expected and fewest >= 1 and first is None:
                first = (time.monotonic(), samples)
            if len(groups) == expected and fewest >= 2:
                break
            if time.monotonic() - started > RULES_TIMEOUT:
                raise BenchFailure(
                    f"{slos} SLOs: the rules were not evaluated twice within "
                    f"{RULES_TIMEOUT:.0f}s ({len(groups)}/{expected} groups, "
                    f"fewest evaluations {fewest:.0f}): {server.log_tail()}"
                )
            time.sleep(POLL)
        waited = time.monotonic() - started
        assert first is not None
        per_cycle = CYCLE / max(time.monotonic() - first[0], 1e-9)
        cpu = total(samples, "process_cpu_seconds_total") - total(
            first[1], "process_cpu_seconds_total"
        )
        failures = sum(
            g.get("prometheus_rule_evaluation_failures_total", 0) for g in groups.values()
        )
        if failures:
            raise BenchFailure(
                f"{slos} SLOs: {failures:.0f} rule evaluations failed: {server.log_tail()}"
            )
        recorded = _recorded(server.url)
        if recorded == 0:
            raise BenchFailure(
                f"{slos} SLOs: Prometheus recorded no rule results: {server.log_tail()}"
            )
        durations = {
            n: g.get("prometheus_rule_group_last_duration_seconds", 0.0) for n, g in groups.items()
        }
        by_kind: dict[str, float] = {}
        for name, seconds in durations.items():
            kind = name.rpartition("-")[2]
            by_kind[kind] = by_kind.get(kind, 0.0) + seconds
        baseline = RulesRun(
            groups=len(groups),
            rules=int(sum(g.get("prometheus_rule_group_rules", 0.0) for g in groups.values())),
            cycle_seconds=sum(durations.values()),
            by_kind=by_kind,
            slowest=max(durations.items(), key=lambda item: item[1]),
            cpu_per_cycle=cpu * per_cycle,
            engine_queries_per_cycle=(engine_queries(samples) - engine_queries(first[1]))
            * per_cycle,
            engine_seconds_per_cycle=(engine_seconds(samples) - engine_seconds(first[1]))
            * per_cycle,
            samples_per_cycle=sum(
                g.get("prometheus_rule_group_last_evaluation_samples", 0.0) for g in groups.values()
            ),
            iterations_missed=sum(
                g.get("prometheus_rule_group_iterations_missed_total", 0.0) for g in groups.values()
            ),
            recorded_slos=recorded,
            waited_seconds=waited,
        )
        enable_query_log(server.url, query_log)
        measured = measure_guardian(
            server.url,
            config,
            name="rules",
            mode="rules",
            parallel=config.prometheus.parallel_queries,
            at=None,
            rounds=rounds,
            query_log=query_log,
        )
    return baseline, measured


def _recorded(url: str) -> int:
    """SLOs whose 3-day error ratio Prometheus has recorded."""
    client = PrometheusClient(PrometheusSettings(url=url, timeout=60))
    try:
        found = client.instant("count(slo:sli_error:ratio_rate3d)")
    finally:
        client.close()
    return int(found[0].value) if found else 0


def measure_raw(
    tsdb: Path, config: Config, at: datetime, rounds: int, sequential_rounds: int
) -> list[GuardianRun]:
    """guardian on raw metrics, sequential then parallel, from a Prometheus without rules."""
    with PrometheusServer(tsdb) as server:
        sequential = measure_guardian(
            server.url,
            config,
            name="raw, sequential",
            mode="raw",
            parallel=1,
            at=at,
            rounds=sequential_rounds,
        )
        parallel = measure_guardian(
            server.url,
            config,
            name="raw, parallel",
            mode="raw",
            parallel=config.prometheus.parallel_queries,
            at=at,
            rounds=rounds,
        )
    return [sequential, parallel]


# ---------------------------------------------------------------------------------------------
# Report


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, 90th percentile (interpolated) and maximum."""
    p90 = (
        statistics.quantiles(values, n=10, method="inclusive")[8] if len(values) > 1 else values[0]
    )
    return {"median": statistics.median(values), "p90": p90, "max": max(values)}


def measurement(size: int, run: GuardianRun, rules: RulesRun) -> dict[str, Any]:
    """The JSON record of one way of evaluating one size."""
    shares = [c / w for c, w in zip(run.cpus, run.walls, strict=True)]
    in_prometheus = [w - c for c, w in zip(run.cpus, run.walls, strict=True)]
    wall = spread(run.walls)
    record: dict[str, Any] = {
        "name": run.name,
        "mode": run.mode,
        "parallel": run.parallel,
        "instant": run.instant,
        "evaluations": len(run.walls),
        "queries_per_evaluation": max(run.queries),
        "http_requests_per_evaluation": max(run.sent),
        "query_chars": run.query_chars,
        "wall_seconds": wall,
        "guardian_cpu_seconds": {"median": statistics.median(run.cpus), "max": max(run.cpus)},
        "guardian_share": statistics.median(shares),
        "prometheus_seconds": statistics.median(in_prometheus),
        "prometheus_engine_seconds": run.engine_seconds,
        "prometheus_engine_source": run.engine_source,
        "prometheus_http_seconds": run.http_seconds,
        "prometheus_cpu_seconds": run.prometheus_cpu_seconds,
        "background_rule_evaluation": run.background_rules,
        "window_seconds": {w: statistics.median(v) for w, v in run.windows.items()},
        "statuses": run.statuses,
        "ratio_vs_rules": wall["median"] / rules.cycle_seconds if rules.cycle_seconds else None,
        "cpu_ratio_vs_rules": (
            run.prometheus_cpu_seconds / rules.cpu_per_cycle
            if rules.cpu_per_cycle and not run.background_rules
            else None
        ),
    }
    if run.engine_seconds_with_rules is not None:
        record["prometheus_engine_seconds_with_rules"] = run.engine_seconds_with_rules
        record["logged_api_queries"] = run.logged_queries
    if size == TARGET_SLOS:
        share = record["guardian_share"]
        queries = record["queries_per_evaluation"]
        record["targets"] = {
            "queries_per_evaluation": {
                "limit": TARGET_QUERIES,
                "value": queries,
                "pass": queries <= TARGET_QUERIES,
            },
            "wall_seconds_median": {
                "limit": TARGET_WALL,
                "value": wall["median"],
                "pass": wall["median"] < TARGET_WALL,
            },
            "guardian_share": {"limit": TARGET_SHARE, "value": share, "pass": share < TARGET_SHARE},
        }
    return record


def result(
    size: int, services: Sequence[Service], runs: Sequence[GuardianRun], rules: RulesRun
) -> dict[str, Any]:
    """The JSON record of one size: the rules baseline and every measurement beside it."""
    return {
        "slos": size,
        "kinds": dict(Counter(s.kind for s in services)),
        "rules_baseline_seconds": rules.cycle_seconds,
        "rules": {
            "groups": rules.groups,
            "rules": rules.rules,
            "by_group_kind_seconds": rules.by_kind,
            "slowest_group": {"name": rules.slowest[0], "seconds": rules.slowest[1]},
            "prometheus_cpu_seconds_per_cycle": rules.cpu_per_cycle,
            "engine_queries_per_cycle": rules.engine_queries_per_cycle,
            "engine_seconds_per_cycle": rules.engine_seconds_per_cycle,
            "samples_written_per_cycle": rules.samples_per_cycle,
            "iterations_missed": rules.iterations_missed,
            "recorded_slos": rules.recorded_slos,
            "evaluation_interval_seconds": CYCLE,
            "waited_seconds": rules.waited_seconds,
        },
        "measurements": [measurement(size, run, rules) for run in runs],
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    version = subprocess.run(
        [binary("prometheus"), "--version"], capture_output=True, text=True, check=False
    )
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    first = (version.stdout or version.stderr).strip().splitlines()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "prometheus": first[0] if first else "",
    }


OWN_COLUMNS = (
    *("SLOs", "measurement", "queries", "wall", "p90", "max"),
    *("own CPU", "share", "in Prom¹", "engine²"),
)


def show(records: Sequence[dict[str, Any]]) -> None:
    """The console tables: guardian's measurements, the rules, then side by side."""
    ordered = sorted(records, key=lambda r: r["slos"])
    own = _table(
        "guardian, per evaluation (median unless marked)",
        OWN_COLUMNS,
    )
    for r in ordered:
        for m in r["measurements"]:
            wall = m["wall_seconds"]
            engine = _s(m["prometheus_engine_seconds"])
            own.add_row(
                f"{r['slos']:,}",
                m["name"],
                str(m["queries_per_evaluation"]),
                _s(wall["median"]),
                _s(wall["p90"]),
                _s(wall["max"]),
                _s(m["guardian_cpu_seconds"]["median"]),
                f"{m['guardian_share']:.1%}",
                _s(m["prometheus_seconds"]),
                engine + ("³" if m["prometheus_engine_source"] == "query log" else ""),
            )
        own.add_section()
    console.print(own)
    console.print(
        "¹ wall − own CPU   ² Prometheus' query engine time per evaluation, from its /metrics\n"
        "³ from Prometheus' query log, API queries only: the engine metrics also count the rules\n"
    )
    rules = _table(
        f"Prometheus evaluating the exported rules ({CYCLE}s cycle)",
        ("SLOs", "groups", "rules", "cycle⁴", "CPU/cycle", "engine queries/cycle⁵"),
    )
    for r in ordered:
        info = r["rules"]
        rules.add_row(
            f"{r['slos']:,}",
            f"{info['groups']:,}",
            f"{info['rules']:,}",
            _s(r["rules_baseline_seconds"]),
            _s(info["prometheus_cpu_seconds_per_cycle"]),
            f"{info['engine_queries_per_cycle']:,.0f}",
        )
    console.print(rules)
    console.print(
        "⁴ sum of prometheus_rule_group_last_duration_seconds over the SLOs' groups\n"
        "⁵ from prometheus_engine_query_duration_seconds_count, no API query running\n"
    )
    names = [m["name"] for m in ordered[0]["measurements"]]
    beside = _table(
        "guardian's wall time beside one rules cycle (× = guardian / rules)",
        ("SLOs", "rules", *(f"{n}" for n in names), "Prom CPU/eval⁶", "×"),
    )
    for r in ordered:
        walls = [
            f"{_s(m['wall_seconds']['median'])} ({_x(m['ratio_vs_rules'])})"
            for m in r["measurements"]
        ]
        sequential = r["measurements"][0]
        beside.add_row(
            f"{r['slos']:,}",
            _s(r["rules_baseline_seconds"]),
            *walls,
            _s(sequential["prometheus_cpu_seconds"]),
            _x(sequential["cpu_ratio_vs_rules"]),
        )
    console.print(beside)
    console.print(
        f"⁶ Prometheus process CPU per {names[0]} evaluation, beside its CPU per rules cycle\n"
    )
    for r in ordered:
        found = "; ".join(
            m["name"] + ": " + ", ".join(f"{v} {k}" for k, v in sorted(m["statuses"].items()))
            for m in r["measurements"]
        )
        console.print(f"{r['slos']:,} SLOs evaluated as: {found}")
    console.print()
    largest = ordered[-1]
    windows = _table(
        f"per window, {largest['slos']:,} SLOs (median wall per query)",
        ("window", *(f"{m['name']}" for m in largest["measurements"]), "raw chars", "rules chars"),
    )
    by_name = {m["name"]: m for m in largest["measurements"]}
    for window in by_name[names[0]]["window_seconds"]:
        windows.add_row(
            window,
            *(_s(m["window_seconds"].get(window, 0.0)) for m in largest["measurements"]),
            f"{by_name[names[0]]['query_chars'].get(window, 0):,}",
            f"{by_name[names[-1]]['query_chars'].get(window, 0):,}",
        )
    console.print(windows)
    for r in ordered:
        for m in r["measurements"]:
            for name, target in m.get("targets", {}).items():
                mark = "[green]pass[/green]" if target["pass"] else "[red]miss[/red]"
                value = target["value"]
                shown = f"{value:.3g}" if isinstance(value, float) else str(value)
                console.print(
                    f"target, {r['slos']:,} SLOs, {m['name']}, {name}: {shown} "
                    f"(limit {target['limit']}) {mark}"
                )


def _table(title: str, columns: Sequence[str]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for column in columns:
        table.add_column(column, justify="right")
    return table


def _s(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"


def _x(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}×"


def save(report: dict[str, Any]) -> Path:
    """Write the timestamped and the latest JSON; returns the timestamped path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(report, indent=2) + "\n"
    path = RESULTS / f"evaluate-{stamp}.json"
    path.write_text(text, encoding="utf-8")
    (RESULTS / "evaluate-latest.json").write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------


def run(sizes: Sequence[int]) -> dict[str, Any]:
    """The whole benchmark, largest size first; returns the report."""
    began = time.perf_counter()
    started = datetime.now(UTC)
    info = machine()
    console.log(f"{info['prometheus']}; {info['cpus']} CPUs; Python {info['python']}")
    services = fleet(SERVICES, np.random.default_rng(SEED))
    end = int(time.time()) - LAG
    at = datetime.fromtimestamp(end, UTC)
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="guardian-bench-") as tmp:
        root = Path(tmp)
        console.log(f"building {HISTORY // 3600} h of history for {SERVICES:,} services")
        data, tail = build_tsdb(root, services, end)
        gc.collect()
        console.log(f"backfilled {data['series']:,} series, {data['samples']:,} samples")
        with LiveFeed(tail, end) as feed:
            for size in sizes:
                chosen = services[:size]
                config_path = root / f"guardian-{size}.yaml"
                config = write_config(config_path, chosen)
                rules_path = root / f"rules-{size}.yml"
                export_rules(config_path, rules_path)
                rounds = ROUNDS.get(size, 5)
                sequential = SEQUENTIAL_ROUNDS.get(size, rounds)
                console.log(
                    f"{size:,} SLOs: Prometheus evaluating the exported rules, "
                    f"then guardian reading them ({rounds} evaluations)"
                )
                baseline, from_rules = measure_rules(
                    _copy(root, f"rules-{size}"),
                    rules_path,
                    config,
                    feed,
                    rounds,
                    root / f"query-{size}.log",
                )
                console.log(
                    f"{size:,} SLOs: guardian on raw metrics, {sequential} sequential and "
                    f"{rounds} parallel evaluations"
                )
                raw = measure_raw(_copy(root, f"guardian-{size}"), config, at, rounds, sequential)
                records.append(result(size, chosen, [*raw, from_rules], baseline))
                for name in (f"rules-{size}", f"guardian-{size}"):
                    shutil.rmtree(root / name, ignore_errors=True)
    return {
        "benchmark": "evaluate",
        "started_at": started.isoformat(),
        "duration_seconds": time.perf_counter() - began,
        "evaluated_at": at.isoformat(),
        "machine": info,
        "data": data,
        "results": sorted(records, key=lambda r: r["slos"]),
    }


def _copy(root: Path, name: str) -> Path:
    target = root / name
    shutil.copytree(root / "tsdb", target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print, save; 1 when something broke."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=",".join(str(n) for n in sorted(SIZES)),
        help="SLO counts to measure, comma-separated (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        sizes = sorted({int(n) for n in args.sizes.split(",")}, reverse=True)
    except ValueError:
        parser.error(f"--sizes: must be whole numbers separated by commas (got {args.sizes!r})")
    if not all(0 < n <= SERVICES for n in sizes):
        parser.error(f"--sizes: each must be between 1 and {SERVICES}")
    try:
        report = run(sizes)
    except (BenchFailure, GuardianError, RuntimeError, OSError) as exc:
        print(f"bench: failed: {exc}", file=sys.stderr)
        return 1
    show(report["results"])
    path = save(report)
    console.print(f"whole run: {report['duration_seconds']:.0f} s; results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

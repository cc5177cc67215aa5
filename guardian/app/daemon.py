"""``guardian run``: the always-on daemon.

Input: a config file or directory (with its ``daemon:`` section), a kubeconfig or the pod's
service account. Output: APScheduler jobs — evaluation every ``interval`` (coalesced, one
at a time, misfires logged), approval expiry and execution progress, each every
``progress_interval``; leader election on a Kubernetes Lease, so that only the leader
decides and acts while followers keep evaluating for their metrics; one HTTP port with
``/healthz``, ``/readyz``, ``/metrics`` and, in Slack's HTTP mode, ``/slack/events``; logs as
JSON lines (text on a terminal). SIGHUP, or a change in a config or playbook file (a
mounted ConfigMap), reloads after validating; a bad new config is refused with one log
line and the running one stays. SIGTERM lets the step in flight finish (no other starts),
releases the Lease and exits 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from guardian.app.commands import playbooks as commands
from guardian.clients.database_url import masked
from guardian.clients.kube import Kube
from guardian.clients.lease import Leadership
from guardian.clients.prometheus import PrometheusClient
from guardian.clients.slack_http import serve_wsgi
from guardian.clients.store import Store
from guardian.config import Config, load_config
from guardian.config.files import read_bytes
from guardian.errors import EXIT_OK, ConfigErrors, GuardianError
from guardian.evaluation.results import Evaluation
from guardian.evaluation.run import PrometheusSignals
from guardian.executor.runner import Runner
from guardian.pipeline import Cycle
from guardian.planning.trigger import trigger_context
from guardian.playbooks import Playbook

log = logging.getLogger("guardian")

RELOAD_CHECK = 5
"""Seconds between looks at the config and playbook files."""


def add_parsers(sub: Any, config_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``guardian run``."""
    run = sub.add_parser(
        "run",
        help="the daemon: evaluate on a schedule, elect a leader, propose and run playbooks, "
        "serve /healthz /readyz /metrics",
    )
    config_arg(run)
    run.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, else in-cluster)")
    run.add_argument("--context", help="kubeconfig context (default: the current one)")
    run.add_argument("--qps", type=float, default=5.0, help="API requests per second (default 5)")
    run.add_argument("--burst", type=int, default=10, help="token bucket burst (default 10)")
    run.add_argument("--listen", help="host:port for HTTP (default: daemon.listen)")
    run.add_argument(
        "--identity",
        help="this replica's name in the Lease and in leases on executions "
        "(default $POD_NAME, else the host name)",
    )
    run.add_argument(
        "--log-format", choices=("auto", "json", "text"), help="default: daemon.log_format"
    )
    run.set_defaults(handler=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    setup_logging(args.log_format or config.daemon.log_format)
    daemon = Daemon(args, config)
    daemon.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: daemon.reload_soon.set())
    try:
        while not stop.wait(0.5):
            if daemon.reload_soon.is_set():
                daemon.reload_soon.clear()
                daemon.reload("SIGHUP")
    finally:
        daemon.stop()
    return EXIT_OK


# logging ------------------------------------------------------------------------------------


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the execution if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        execution = getattr(record, "execution", None)
        if execution:
            line["execution"] = execution
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line)


def setup_logging(fmt: str) -> None:
    """JSON lines, or text when ``fmt`` is text (or auto on a terminal), on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json" or (fmt == "auto" and not sys.stderr.isatty()):
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("kubernetes", "slack_bolt", "slack_sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for reported in ("apscheduler", "urllib3"):  # guardian logs what matters of these itself
        logging.getLogger(reported).setLevel(logging.ERROR)


# metrics ------------------------------------------------------------------------------------


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
            "guardian_evaluations_total", "Evaluations by result", ["result"], registry=r
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

    def observe(self, evaluation: Evaluation, seconds: float) -> None:
        """Record one evaluation."""
        self.evaluation_seconds.observe(seconds)
        self.evaluations.labels("ok").inc()
        self.queries.inc(evaluation.queries)
        for slo in evaluation.slos:
            for status in ("ok", "ticket", "page", "no_data"):
                self.status.labels(slo.name, status).set(1 if slo.status == status else 0)
            for w in slo.windows:
                for which, value in (("long", w.long_burn), ("short", w.short_burn)):
                    labels = (slo.name, w.severity, str(w.long), str(w.short), which)
                    self.burn.labels(*labels).set(float("nan") if value is None else value)


class _Live:
    """Metrics read at scrape time: executions, approvals, Kubernetes calls; a store that
    does not answer leaves out the first two and sets ``guardian_store_up`` to 0 (the
    scrape still succeeds; /readyz says why)."""

    def __init__(self, daemon: Daemon) -> None:
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
        clients = list(self.daemon.clients.items())
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
        for context, kube in clients:
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


# the daemon ---------------------------------------------------------------------------------


@dataclass
class Parts:
    """What one loaded config builds; swapped whole on reload."""

    config: Config
    books: dict[str, Playbook]
    prometheus: PrometheusClient
    cycle: Cycle
    fingerprint: str


@dataclass
class Daemon:
    """The scheduler, the Lease, the HTTP port and the parts they drive."""

    args: argparse.Namespace
    config: Config
    identity: str = ""
    metrics: Metrics = field(default_factory=Metrics)
    clients: dict[str | None, Kube] = field(default_factory=dict)
    reload_soon: threading.Event = field(default_factory=threading.Event)
    last_evaluation: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.identity = self.args.identity or os.environ.get("POD_NAME") or socket.gethostname()
        settings = self.config.daemon
        self.store: Store = commands.open_store(self.config)
        self.kube = self._kube_for(None)
        books = commands.playbooks_of(self.config)
        self.runner = Runner(
            self.store,
            books,
            self._kube_for,
            PrometheusSignals.of(self.config, PrometheusClient(self.config.prometheus)),
            notifier=commands.notifier(self.config, self.store, books, required=True),
            owner=self.identity,
            approval_timeout=self.config.policy.approval_timeout,
            max_changes=self.config.policy.max_changes,
            protected_subjects=self.config.policy.protected_subjects,
            lease=settings.lease_duration,
        )
        self.parts = self._parts(self.config, books)
        namespace = settings.lease_namespace or os.environ.get("POD_NAMESPACE") or "default"
        self.leadership = Leadership(
            self.kube.api_client,
            settings.lease_name,
            namespace,
            self.identity,
            settings.lease_duration,
            settings.renew_deadline,
            settings.retry_period,
            on_change=lambda leading: self.metrics.leader.set(1 if leading else 0),
        )
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.slack: Any = None
        self._http: WSGIServer | None = None
        self.port = 0
        self.metrics.registry.register(_Live(self))

    # wiring --------------------------------------------------------------------------------

    def _kube_for(self, context: str | None) -> Kube:
        key = context or self.args.context
        if key not in self.clients:
            self.clients[key] = Kube.from_kubeconfig(
                self.args.kubeconfig, key, self.args.qps, self.args.burst
            )
        return self.clients[key]

    def _parts(self, config: Config, books: dict[str, Playbook]) -> Parts:
        prometheus = PrometheusClient(config.prometheus)
        cycle = Cycle(config, books, self.store, self.runner, self.kube, prometheus)
        return Parts(
            config, books, prometheus, cycle, _fingerprint(_watched(self.args.config, config))
        )

    @property
    def leading(self) -> bool:
        """True while this replica holds the Lease."""
        return self.leadership.leading.is_set()

    def start(self) -> None:
        """Start the HTTP port, Slack, the Lease campaign and the jobs."""
        settings = self.config.daemon
        self._start_slack()
        self._start_http(self.args.listen or settings.listen)
        self.leadership.start()
        self.scheduler.add_listener(
            self._job_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR
        )
        common = {"coalesce": True, "max_instances": 1, "next_run_time": datetime.now(UTC)}
        self.scheduler.add_job(
            self.evaluate_job,
            "interval",
            seconds=settings.interval,
            id="evaluate",
            misfire_grace_time=settings.interval,
            **common,
        )
        self.scheduler.add_job(
            self.progress_job,
            "interval",
            seconds=settings.progress_interval,
            id="progress",
            misfire_grace_time=settings.progress_interval,
            **common,
        )
        self.scheduler.add_job(
            self.expiry_job,
            "interval",
            seconds=settings.progress_interval,
            id="expiry",
            misfire_grace_time=settings.progress_interval,
            **common,
        )
        self.scheduler.add_job(
            self.watch_job, "interval", seconds=RELOAD_CHECK, id="watch", **common
        )
        self.scheduler.start()
        log.info(
            "guardian %s: serving http on port %d, lease %s/%s, store %s",
            self.identity,
            self.port,
            self.leadership.namespace,
            self.leadership.name,
            masked(self.store.engine.url),
        )

    def _start_slack(self) -> None:
        settings = self.config.slack
        if settings is None:
            return
        from guardian.app.chatops import ChatOps
        from guardian.clients.slack import SlackApp, SlackClient
        from guardian.planning.suspects import find_suspects

        def evaluate_now() -> Evaluation:
            return self.parts.cycle.evaluate()

        def suspects_now() -> list[dict[str, Any]]:
            found = find_suspects(self.kube, datetime.now(UTC), _minutes(30))
            return [s.to_json() for s in found]

        def context_for(book: Playbook, params: dict[str, str]) -> tuple[dict[str, Any], str]:
            parts = self.parts
            return trigger_context(parts.config, book, self.kube, params, parts.prometheus)

        ops = ChatOps(
            self.runner,
            self.store,
            settings,
            SlackClient.from_settings(settings),
            self.runner.playbooks,
            evaluate_now,
            suspects_now,
            context_for,
            leading=lambda: self.leading,
        )
        self.chat = ops
        self.slack = SlackApp(settings, ops.client, ops.on_click, ops.on_command)
        self.slack.start(serve=False)

    def _start_http(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        slack = self.slack.wsgi() if self.slack is not None and self.config.slack else None
        if self.config.slack is None or self.config.slack.mode != "http":
            slack = None

        def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/slack/events" and slack is not None:
                answer: Iterable[bytes] = slack(environ, start)
                return answer
            if path == "/healthz":
                code, body = self.health()
            elif path == "/readyz":
                code, body = self.readiness()
            elif path == "/metrics":
                data = generate_latest(self.metrics.registry)
                start("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
                return [data]
            else:
                code, body = 404, "not found\n"
            start(f"{code} {'OK' if code == 200 else 'Error'}", [("Content-Type", "text/plain")])
            return [body.encode()]

        self._http = serve_wsgi(host, int(port), app, name="http")
        self.port = self._http.server_port

    # jobs ----------------------------------------------------------------------------------

    def evaluate_job(self) -> None:
        """Evaluate; the leader also decides and proposes."""
        parts = self.parts
        began = time.monotonic()
        try:
            evaluation = parts.cycle.evaluate()
        except Exception:
            self.metrics.evaluations.labels("failed").inc()
            raise
        self.metrics.observe(evaluation, time.monotonic() - began)
        self.last_evaluation = time.monotonic()
        if not self.leading:
            return
        for decision in parts.cycle.act(evaluation):
            self.metrics.decisions.labels(decision.slo, decision.kind).inc()

    def progress_job(self) -> None:
        """Expire approvals and move open executions (the leader only)."""
        if self.leading and not self.runner.stopping.is_set():
            self.runner.advance_all()

    def expiry_job(self) -> None:
        """Expire approvals past their deadline (the leader only; not held up by a long step
        in the progress job)."""
        if self.leading:
            for execution in self.runner.expire_due():
                log.info(
                    "execution %s: approval expired", execution, extra={"execution": execution}
                )

    def watch_job(self) -> None:
        """Reload when a config or playbook file changed (a mounted ConfigMap updates)."""
        if _fingerprint(_watched(self.args.config, self.parts.config)) != self.parts.fingerprint:
            self.reload("files changed")

    def _job_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_ERROR:
            assert isinstance(event, JobExecutionEvent)
            exc = event.exception
            text = exc.message if isinstance(exc, GuardianError) else f"{type(exc).__name__}: {exc}"
            log.error("job %s failed: %s", event.job_id, text)
            return
        self.metrics.misfires.labels(event.job_id).inc()
        level = logging.WARNING if event.job_id == "evaluate" else logging.DEBUG
        what = "missed its time" if event.code == EVENT_JOB_MISSED else "still running, skipped"
        log.log(level, "job %s %s", event.job_id, what)

    # reload, health, stop ------------------------------------------------------------------

    def reload(self, why: str) -> bool:
        """Load and check the config and playbooks again; keep the running ones on error.

        The files are read and checked (regular files, size, aliases, depth, every field)
        before anything running is touched; this runs in the watch job's thread or the main
        thread, never in the HTTP threads, so /healthz answers meanwhile.
        """
        try:
            config = load_config(self.args.config)
            books = commands.playbooks_of(config)
        except Exception as exc:  # whatever the files hold, the running config stays
            self.metrics.reloads.labels("refused").inc()
            if isinstance(exc, GuardianError):
                text = exc.message
            else:
                text = f"{type(exc).__name__}: {str(exc)[:200]}"
            lines = text.splitlines() or [type(exc).__name__]
            first, more = lines[0], len(lines) - 1
            log.error(
                "reload (%s) refused, the running config stays: %s%s",
                why,
                first,
                f" (and {more} more)" if more else "",
            )
            self.parts.fingerprint = _fingerprint(_watched(self.args.config, self.parts.config))
            return False
        if config.policy.store_url != self.config.policy.store_url:
            log.warning("reload: policy.store changed; it takes effect at the next start")
        self.runner.playbooks = books
        self.runner.approval_timeout = config.policy.approval_timeout
        self.runner.max_changes = config.policy.max_changes
        self.runner.protected_subjects = config.policy.protected_subjects
        if getattr(self, "chat", None) is not None:
            self.chat.playbooks = books
        old = self.parts
        self.parts = self._parts(config, books)
        old.prometheus.close()
        self.metrics.reloads.labels("ok").inc()
        log.info("reload (%s): %d SLOs, %d playbooks", why, len(config.slos), len(books))
        return True

    def health(self) -> tuple[int, str]:
        """Alive: the scheduler runs and evaluations are not stuck."""
        limit = max(5 * self.config.daemon.interval, 120)
        since = time.monotonic() - (self.last_evaluation or self.started)
        if not self.scheduler.running:
            return 500, "scheduler stopped\n"
        if since > limit:
            return 500, f"no evaluation finished for {since:.0f}s\n"
        return 200, "ok\n"

    def readiness(self) -> tuple[int, str]:
        """Ready: Prometheus and the store answer, and for the leader the API server too."""
        checks: list[tuple[str, Callable[[], object]]] = [
            ("prometheus", lambda: self.parts.prometheus.instant("vector(1)", datetime.now(UTC))),
            ("store", self.store.ping),
        ]
        if self.leading:
            checks.append(("apiserver", lambda: self.kube.get("/version")))
        lines, ok = [], True
        for name, check in checks:
            try:
                check()
                lines.append(f"{name}: ok")
            except GuardianError as exc:
                ok = False
                lines.append(f"{name}: {exc.message}")
        role = "leader" if self.leading else "follower"
        return (200 if ok else 503), "\n".join([f"{self.identity}: {role}", *lines]) + "\n"

    def stop(self) -> None:
        """Let the step in flight reach a boundary, release the Lease, close everything."""
        log.info("guardian %s: stopping", self.identity)
        self.runner.stopping.set()
        self.scheduler.shutdown(wait=True)
        released = self.leadership.release()
        if self.slack is not None:
            self.slack.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self.parts.prometheus.close()
        self.store.close()
        log.info("guardian %s: stopped%s", self.identity, ", lease released" if released else "")


def _watched(root: str, config: Config) -> list[Path]:
    """The files whose change reloads: the config (every YAML file of its directory) and the
    playbooks."""
    top = Path(root)
    files = sorted(top.glob("*.y*ml")) if top.is_dir() else [top]
    files += [Path(f) for f in config.files]
    for entry in config.policy.playbook_paths:
        path = Path(entry)
        files += (
            sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
        )
    return files


def _fingerprint(files: list[Path]) -> str:
    """A digest of the files' contents, read as the loader reads them: a FIFO, a device or a
    file past the size cap is digested as its one-line refusal, never read."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path).encode())
        try:
            digest.update(read_bytes(path))
        except ConfigErrors as exc:
            digest.update(exc.message.encode())
    return digest.hexdigest()


def _minutes(count: int) -> Any:
    from datetime import timedelta

    return timedelta(minutes=count)

"""The loop of a guardian that keeps running: the jobs, the Lease, Slack and the HTTP port.

Input: a loaded config, the ``Service`` built for it by ``guardian.app.wiring``, and a
``Mode``: ``guardian run`` elects a leader on a Kubernetes Lease, serves the HTTP port and
watches its files; ``guardian slack`` is the same daemon without the Lease, the HTTP port and
the file watch (it always leads, Slack's HTTP mode serves its own endpoint, and there is no
SIGHUP reload). Output: APScheduler jobs — evaluation every interval (coalesced, one at a
time, misfires logged; the leader also decides and proposes), execution progress and
approval expiry, the watch on the config files — and their failures, reported without
stopping the loop. SIGTERM (``stop``) lets the step in flight finish, releases the Lease and
closes everything. Called by ``guardian.app.daemon.commands``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from wsgiref.simple_server import WSGIServer

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler

from guardian.app.daemon.health import http_app
from guardian.app.daemon.metrics import Live, Metrics
from guardian.app.daemon.reload import fingerprint, load_checked, watched
from guardian.app.wiring import Service, chat_ops
from guardian.clients.database_url import masked
from guardian.clients.kube import Kube
from guardian.clients.lease import Leadership
from guardian.clients.slack_http import serve_wsgi
from guardian.clients.store import Store
from guardian.config import Config
from guardian.errors import GuardianError

log = logging.getLogger("guardian.app.daemon.run")
misfires = logging.getLogger("guardian.app.daemon.misfires")
"""Where a job that missed its time or was still running is told (``guardian slack`` mutes it)."""

RELOAD_CHECK = 5
"""Seconds between looks at the config and playbook files."""


def log_failure(job: str, exc: Exception) -> None:
    """How ``guardian run`` reports a job that failed: one log line (with the traceback
    when it is not one of guardian's errors)."""
    if isinstance(exc, GuardianError):
        log.error("job %s failed: %s", job, exc.message)
    else:
        log.error("job %s failed: %s: %s", job, type(exc).__name__, exc, exc_info=exc)


@dataclass(frozen=True)
class Mode:
    """What ``guardian run`` and ``guardian slack`` do differently."""

    lease: bool = True
    """Elect a leader on a Kubernetes Lease (else this process always leads)."""
    listen: str | None = None
    """Where the HTTP port listens (None: no port)."""
    interval: int | None = None
    """Seconds between evaluations and between progress runs (None: the config's)."""
    watch: bool = True
    """Reload when a config or playbook file changes."""
    at_once: bool = True
    """Run the jobs at once on start (else one interval after)."""
    report: Callable[[str, Exception], None] = log_failure
    """Told of a job that failed (the job's id and the exception); the loop goes on."""


@dataclass
class Daemon:
    """The scheduler, the Lease, Slack and the HTTP port, and the service they drive."""

    config: Config
    path: str
    """The ``-c`` path, read again on reload."""
    service: Service
    identity: str
    mode: Mode = field(default_factory=Mode)
    metrics: Metrics = field(default_factory=Metrics)
    reload_soon: threading.Event = field(default_factory=threading.Event)
    last_evaluation: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        settings = self.config.daemon
        self.leadership: Leadership | None = None
        if self.mode.lease:
            self.leadership = Leadership(
                self.service.kube(None).api_client,
                settings.lease_name,
                settings.lease_namespace or os.environ.get("POD_NAMESPACE") or "default",
                self.identity,
                settings.lease_duration,
                settings.renew_deadline,
                settings.retry_period,
                on_change=lambda leading: self.metrics.leader.set(1 if leading else 0),
            )
        self.service.chat = chat_ops(self.service, lambda: self.leading)
        self.fingerprint = fingerprint(watched(self.path, self.config))
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.slack: Any = None
        self._http: WSGIServer | None = None
        self.port = 0
        self.metrics.registry.register(Live(self))

    @property
    def store(self) -> Store:
        """The service's store (read by ``Live`` at scrape time)."""
        return self.service.store

    @property
    def clients(self) -> dict[str | None, Kube]:
        """The service's Kubernetes clients by context (read by ``Live``)."""
        return self.service.kube.clients

    @property
    def leading(self) -> bool:
        """True while this replica holds the Lease (always, without one)."""
        return self.leadership is None or self.leadership.leading.is_set()

    def start(self) -> None:
        """Start Slack, the HTTP port, the Lease campaign and the jobs."""
        self._start_slack()
        if self.mode.listen is not None:
            self._start_http(self.mode.listen)
        if self.leadership is not None:
            self.leadership.start()
        self.scheduler.add_listener(self._misfire, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self._schedule()
        self.scheduler.start()
        if self.leadership is not None:
            log.info(
                "guardian %s: serving http on port %d, lease %s/%s, store %s",
                self.identity,
                self.port,
                self.leadership.namespace,
                self.leadership.name,
                masked(self.store.engine.url),
            )

    def _schedule(self) -> None:
        """Add the jobs: evaluate every interval; progress and expiry every progress
        interval; the file watch (when watching) every ``RELOAD_CHECK`` seconds."""
        settings = self.config.daemon
        every = self.mode.interval or settings.interval
        progress = self.mode.interval or settings.progress_interval
        jobs: list[tuple[str, Callable[[], None], int]] = [
            ("evaluate", self.evaluate_job, every),
            ("progress", self.progress_job, progress),
            ("expiry", self.expiry_job, progress),
        ]
        if self.mode.watch:
            jobs.append(("watch", self.watch_job, RELOAD_CHECK))
        first = datetime.now(UTC) + timedelta(seconds=0 if self.mode.at_once else every)
        for name, job, seconds in jobs:
            grace = {} if name == "watch" else {"misfire_grace_time": seconds}
            self.scheduler.add_job(
                self._guarded(name, job),
                "interval",
                seconds=seconds,
                id=name,
                coalesce=True,
                max_instances=1,
                next_run_time=first,
                **grace,
            )

    def _guarded(self, name: str, job: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                job()
            except Exception as exc:  # the loop outlives one bad run
                self.mode.report(name, exc)

        return run

    def _start_slack(self) -> None:
        ops = self.service.chat
        if ops is None:
            return
        from guardian.clients.slack import SlackApp

        self.slack = SlackApp(ops.settings, ops.client, ops.on_click, ops.on_command)
        self.slack.start(serve=self.mode.listen is None)

    def _start_http(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        mounted = self.slack is not None and self.slack.settings.mode == "http"
        app = http_app(self, self.slack.wsgi() if mounted else None)
        self._http = serve_wsgi(host, int(port), app, name="http")
        self.port = self._http.server_port

    # jobs ----------------------------------------------------------------------------------

    def evaluate_job(self) -> None:
        """Evaluate; the leader also decides and proposes."""
        parts = self.service.parts
        began = time.monotonic()
        try:
            evaluation, error = parts.cycle.evaluate_all()
        except Exception:
            self.metrics.evaluations.labels("failed").inc()
            raise
        self.metrics.observe(evaluation, time.monotonic() - began, error)
        self.last_evaluation = time.monotonic()
        if not self.leading:
            return
        for decision in parts.cycle.act(evaluation):
            self.metrics.decisions.labels(decision.slo, decision.kind).inc()

    def progress_job(self) -> None:
        """Expire approvals and move open executions (the leader only)."""
        runner = self.service.runner
        if self.leading and not runner.stopping.is_set():
            runner.advance_all()

    def expiry_job(self) -> None:
        """Expire approvals past their deadline (the leader only; not held up by a long step
        in the progress job)."""
        if self.leading:
            for execution in self.service.runner.expire_due():
                log.info(
                    "execution %s: approval expired", execution, extra={"execution": execution}
                )

    def watch_job(self) -> None:
        """Reload when a config or playbook file changed (a mounted ConfigMap updates)."""
        if fingerprint(watched(self.path, self.service.parts.config)) != self.fingerprint:
            self.reload("files changed")

    def _misfire(self, event: JobEvent) -> None:
        self.metrics.misfires.labels(event.job_id).inc()
        level = logging.WARNING if event.job_id == "evaluate" else logging.DEBUG
        what = "missed its time" if event.code == EVENT_JOB_MISSED else "still running, skipped"
        misfires.log(level, "job %s %s", event.job_id, what)

    # reload, stop --------------------------------------------------------------------------

    def reload(self, why: str) -> bool:
        """Load and check the config and playbooks again; keep the running ones on error.

        The files are read and checked in full before anything running is touched; this
        runs in the watch job's thread or the main thread, never in the HTTP threads, so
        /healthz answers meanwhile.
        """
        loaded = load_checked(self.path)
        if isinstance(loaded, str):
            self.metrics.reloads.labels("refused").inc()
            log.error("reload (%s) refused, the running config stays: %s", why, loaded)
            self.fingerprint = fingerprint(watched(self.path, self.service.parts.config))
            return False
        config, books = loaded
        if config.policy.store_url != self.config.policy.store_url:
            log.warning("reload: policy.store changed; it takes effect at the next start")
        self.service.reload(config, books)
        self.fingerprint = fingerprint(watched(self.path, config))
        self.metrics.reloads.labels("ok").inc()
        log.info("reload (%s): %d SLOs, %d playbooks", why, len(config.slos), len(books))
        return True

    def stop(self) -> None:
        """Let the step in flight reach a boundary, release the Lease, close everything."""
        log.info("guardian %s: stopping", self.identity)
        self.service.runner.stopping.set()
        self.scheduler.shutdown(wait=True)
        released = self.leadership.release() if self.leadership is not None else False
        if self.slack is not None:
            self.slack.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self.service.close()
        log.info("guardian %s: stopped%s", self.identity, ", lease released" if released else "")

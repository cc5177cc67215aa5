"""The daemon's HTTP port: ``/healthz``, ``/readyz``, ``/metrics`` and, in Slack's HTTP mode,
``/slack/events``.

Input: the daemon (its scheduler, last evaluation, parts, store, Lease, metrics) and Slack's
WSGI app if mounted. Output: ``health`` (alive: the scheduler runs and evaluations are not
stuck), ``readiness`` (Prometheus, the store and, for the leader, the API server answer) and
the WSGI app that serves them. Called by ``guardian.app.daemon.run`` (``Daemon.start``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import generate_latest

from guardian.errors import GuardianError

if TYPE_CHECKING:
    from guardian.app.daemon.run import Daemon

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def health(daemon: Daemon) -> tuple[int, str]:
    """Alive: the scheduler runs and evaluations are not stuck."""
    limit = max(5 * daemon.config.daemon.interval, 120)
    since = time.monotonic() - (daemon.last_evaluation or daemon.started)
    if not daemon.scheduler.running:
        return 500, "scheduler stopped\n"
    if since > limit:
        return 500, f"no evaluation finished for {since:.0f}s\n"
    return 200, "ok\n"


def readiness(daemon: Daemon) -> tuple[int, str]:
    """Ready: Prometheus and the store answer, and for the leader the API server too."""
    service = daemon.service
    checks: list[tuple[str, Callable[[], object]]] = [
        ("prometheus", lambda: service.parts.prometheus.instant("vector(1)", datetime.now(UTC))),
        ("store", service.store.ping),
    ]
    if daemon.leading:
        checks.append(("apiserver", lambda: service.kube(None).get("/version")))
    lines, ok = [], True
    for name, check in checks:
        try:
            check()
            lines.append(f"{name}: ok")
        except GuardianError as exc:
            ok = False
            lines.append(f"{name}: {exc.message}")
    role = "leader" if daemon.leading else "follower"
    return (200 if ok else 503), "\n".join([f"{daemon.identity}: {role}", *lines]) + "\n"


def http_app(daemon: Daemon, slack: WSGIApp | None) -> WSGIApp:
    """The WSGI app of the daemon's port (``slack``: Slack's endpoint, when mounted)."""

    def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/slack/events" and slack is not None:
            return slack(environ, start)
        if path == "/healthz":
            code, body = health(daemon)
        elif path == "/readyz":
            code, body = readiness(daemon)
        elif path == "/metrics":
            data = generate_latest(daemon.metrics.registry)
            start("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
            return [data]
        else:
            code, body = 404, "not found\n"
        start(f"{code} {'OK' if code == 200 else 'Error'}", [("Content-Type", "text/plain")])
        return [body.encode()]

    return app

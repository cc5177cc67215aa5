"""``guardian run`` (the daemon) and ``guardian slack`` (the same daemon in the foreground,
without the Lease, the HTTP port, the file watch and the SIGHUP reload).

Input: parsed arguments. Output: a ``Daemon`` (``guardian.app.daemon.run``) over the service
``guardian.app.wiring`` builds, run until SIGTERM or SIGINT (exit 0); SIGHUP reloads
``guardian run``. ``guardian slack`` prints the line saying where it answers Slack on
stdout, and each failed job as one ``guardian: ...`` line on stderr. Called by
``guardian.app.cli``, which registers the parsers with ``add_run_parser`` and
``add_slack_parser``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

from guardian.app.args import command, kube_args, seconds
from guardian.app.daemon.logs import setup_logging
from guardian.app.daemon.run import Daemon, Mode
from guardian.app.wiring import KubePool, Service
from guardian.config import load_config
from guardian.errors import EXIT_OK, GuardianError, UsageError


def add_run_parser(sub: Any) -> None:
    """Register ``guardian run``."""
    text = (
        "the daemon: evaluate on a schedule, elect a leader, propose and run playbooks, "
        "serve /healthz /readyz /metrics"
    )
    run = command(sub, "run", text, _cmd_run, output=False)
    kube_args(run, fallback="$KUBECONFIG, else in-cluster")
    run.add_argument("--listen", help="host:port for HTTP (default: daemon.listen)")
    run.add_argument(
        "--identity",
        help="this replica's name in the Lease and in leases on executions "
        "(default $POD_NAME, else the host name)",
    )
    run.add_argument(
        "--log-format", choices=("auto", "json", "text"), help="default: daemon.log_format"
    )


def add_slack_parser(sub: Any) -> None:
    """Register ``guardian slack``."""
    text = (
        "the approvals loop: evaluate, propose playbook runs, answer Slack's buttons and "
        "/guardian (Socket Mode or HTTP, per config)"
    )
    slack = command(sub, "slack", text, _cmd_slack, output=False)
    kube_args(slack)
    slack.add_argument("--interval", default="30s", help="evaluation interval (default 30s)")


def _cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    setup_logging(args.log_format or config.daemon.log_format)
    identity = args.identity or os.environ.get("POD_NAME") or socket.gethostname()
    service = Service.build(config, KubePool.of(args), identity, config.daemon.lease_duration)
    mode = Mode(listen=args.listen or config.daemon.listen)
    daemon = Daemon(config, args.config, service, identity, mode)
    _serve(daemon, reload_on_hangup=True)
    return EXIT_OK


def _cmd_slack(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.slack is None:
        raise UsageError(f"{args.config}: slack: is required; add a slack section")
    interval = seconds(args.interval, "--interval")
    identity = f"guardian@{socket.gethostname()}"
    service = Service.build(config, KubePool.of(args), identity, lease=None)
    mode = Mode(lease=False, interval=interval, watch=False, at_once=False, report=_print_failure)
    # stderr carries only guardian's own lines: the scheduler's warnings (a job still
    # running, a missed run) would be bare text next to them; the metrics count misfires.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.getLogger("guardian.app.daemon.misfires").setLevel(logging.ERROR)
    daemon = Daemon(config, args.config, service, identity, mode)
    settings = config.slack
    where = f"http on {settings.listen}" if settings.mode == "http" else "Socket Mode"
    _serve(daemon, f"guardian: answering Slack ({where}), channel {settings.channel}")
    return EXIT_OK


def _serve(daemon: Daemon, started: str = "", reload_on_hangup: bool = False) -> None:
    """Start ``daemon``, print ``started`` (if any), and run until SIGTERM or SIGINT; with
    ``reload_on_hangup``, SIGHUP reloads (in this thread, never in a signal handler)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if reload_on_hangup:
        signal.signal(signal.SIGHUP, lambda *_: daemon.reload_soon.set())
    daemon.start()
    if started:
        print(started, flush=True)
    try:
        while not stop.wait(0.5):
            if daemon.reload_soon.is_set():
                daemon.reload_soon.clear()
                daemon.reload("SIGHUP")
    finally:
        daemon.stop()


_JOBS = {"evaluate": "evaluation", "progress": "advancing", "expiry": "advancing"}
"""The jobs as ``guardian slack`` names them in its error lines."""


def _print_failure(job: str, exc: Exception) -> None:
    """How ``guardian slack`` reports a job that failed: one line on stderr."""
    what = _JOBS.get(job, job)
    if isinstance(exc, GuardianError):
        print(f"guardian: {what}: {exc.message}", file=sys.stderr, flush=True)
    else:
        print(f"guardian: {what} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

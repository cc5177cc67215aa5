"""Console commands for playbooks (``playbook list|show|run``), and the wiring of the real parts.

Input: parsed arguments. Output: text or JSON on stdout and an exit code. Wires the real parts
together (config, playbooks, store, API server, Prometheus, Slack notifier) and hands them to
``guardian.executor.runner``; the wiring (``open_store``, ``playbooks_of``, ``runner_for``,
``notifier``, ``burn_chart``) is also used by ``guardian.app.commands.approvals`` and
``guardian.app.daemon``. Called by ``guardian.app.cli``, which owns the parser.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from guardian.actions import CATALOGUE
from guardian.actions.base import KubeAPI
from guardian.audit.records import Execution
from guardian.clients.prometheus import PrometheusClient
from guardian.clients.store import Store
from guardian.config import Config, load_config
from guardian.errors import EXIT_BURNING, EXIT_OK, ConfigError, UsageError
from guardian.evaluation.run import PrometheusSignals, evaluation_budget, replay
from guardian.executor.runner import Notifier, Runner, Silent, StepCheck
from guardian.planning.trigger import target_of, trigger_context
from guardian.playbooks import Playbook, load_playbooks


def add_parsers(sub: Any, config_arg: Any, format_arg: Any) -> None:
    """Register ``playbook list|show|run`` on ``sub`` (``argparse`` sub-parsers)."""
    playbook = sub.add_parser("playbook", help="list, show or run playbooks")
    books = playbook.add_subparsers(dest="playbook_command", required=True, metavar="COMMAND")
    listing = books.add_parser("list", help="the loaded playbooks")
    config_arg(listing)
    format_arg(listing)
    listing.set_defaults(handler=_cmd_list)
    show = books.add_parser("show", help="one playbook in full")
    show.add_argument("name")
    config_arg(show)
    format_arg(show)
    show.set_defaults(handler=_cmd_show)
    run = books.add_parser(
        "run", help="propose a run (or, with --dry-run, plan and check every step)"
    )
    run.add_argument("name")
    config_arg(run)
    run.add_argument("--set", action="append", default=[], metavar="K=V", help="a params value")
    run.add_argument("--slo", help="the burning SLO (default: the trigger's first SLO)")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="plan every step, check it with dryRun=All, change nothing; exit 1 if any fails",
    )
    run.add_argument("--since", default="30m", help="look-back for suspects (default 30m)")
    kube_args(run)
    actor_arg(run)
    format_arg(run)
    run.set_defaults(handler=_cmd_run)


def kube_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--qps", type=float, default=5.0, help="API requests per second")
    parser.add_argument("--burst", type=int, default=10, help="token bucket burst")


def actor_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as", dest="actor", default=None, help="who you are, for the audit (default $USER)"
    )


def actor(args: argparse.Namespace) -> str:
    return str(args.actor or os.environ.get("USER") or getpass.getuser())


# wiring ------------------------------------------------------------------------------------


def open_store(config: Config) -> Store:
    """The store the config names (``url_env`` wins when set); a store that cannot be
    opened is a one-line ``StoreUnavailable`` (exit 3) naming it with its password masked
    and saying which setting to correct."""
    policy = config.policy
    url, source = policy.store_url, "policy.store.url"
    if policy.store_url_env:
        url, source = os.environ.get(policy.store_url_env, ""), f"${policy.store_url_env}"
        if not url:
            raise UsageError(
                f"policy: store: url_env: environment variable {policy.store_url_env} is not set"
            )
    return Store.open(url, source)


def playbooks_of(config: Config) -> dict[str, Playbook]:
    """The playbooks the config's policy points at."""
    params = {name: action.params for name, action in CATALOGUE.items()}
    return load_playbooks(config.policy.playbook_paths, params, [s.name for s in config.slos])


def runner_for(
    args: argparse.Namespace,
    config: Config,
    store: Store,
    books: dict[str, Playbook],
    owner: str | None = None,
) -> Runner:
    from guardian.clients.kube import Kube

    clients: dict[str | None, KubeAPI] = {}

    def kube_for(context: str | None) -> KubeAPI:
        key = context or args.context
        if key not in clients:
            clients[key] = Kube.from_kubeconfig(args.kubeconfig, key, args.qps, args.burst)
        return clients[key]

    signals = PrometheusSignals.of(config, PrometheusClient(config.prometheus))
    return Runner(
        store,
        books,
        kube_for,
        signals,
        notifier=notifier(config, store, books, required=owner is not None),
        owner=owner or f"console:{actor(args)}@{socket.gethostname()}",
        approval_timeout=config.policy.approval_timeout,
        max_changes=config.policy.max_changes,
        protected_subjects=config.policy.protected_subjects,
    )


def notifier(
    config: Config, store: Store, books: dict[str, Playbook], required: bool = False
) -> Notifier:
    """Slack when the config has a ``slack`` section, else nobody (the console prints).

    The console path must work without Slack: unless ``required`` (a daemon), a bot token
    that cannot be read gives a warning and no Slack messages instead of an error."""
    if config.slack is None:
        return Silent()
    from guardian.approval.blocks import SlackNotifier
    from guardian.clients.slack import SlackClient

    try:
        client = SlackClient.from_settings(config.slack)
    except ConfigError as exc:
        if required:
            raise
        print(f"guardian: warning: no Slack messages: {exc.message}", file=sys.stderr)
        return Silent()
    return SlackNotifier(
        client, config.slack.channel, store, books, lambda slo: burn_chart(config, slo)
    )


def burn_chart(config: Config, slo_name: str) -> bytes | None:
    """A PNG of the SLO's burn rates over the last hour (None when Prometheus cannot say
    within ``evaluation_budget``: the announcement it illustrates is sent during a cycle)."""
    import tempfile
    from pathlib import Path

    from guardian.app.plot import plot_replay

    try:
        slo = config.slo(slo_name)
    except KeyError:
        return None
    client = PrometheusClient(config.prometheus)
    end = datetime.now(UTC)
    try:
        settings = config.prometheus
        budget = evaluation_budget(settings.timeout, config.daemon.interval)
        start = end - timedelta(hours=1)
        result = replay([slo], client, start, end, 60, settings.source, 1, budget)
    finally:
        client.close()
    if result.error or not result.steps:
        return None
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "chart.png"
        plot_replay(result.steps, [], path, title=f"{slo_name}: last hour")
        return path.read_bytes()


def _book(books: dict[str, Playbook], name: str) -> Playbook:
    if name not in books:
        known = ", ".join(sorted(books)) or "none; add policy.playbooks to the config"
        raise UsageError(f"playbook {name!r}: no such playbook (known: {known})")
    return books[name]


def parse_sets(items: list[str]) -> dict[str, str]:
    """``--set K=V`` values as a mapping."""
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set {item}: must be KEY=VALUE")
        values[key.strip()] = value.strip()
    return values


def seconds(text: str) -> int:
    from guardian.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None


# commands ----------------------------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    books = playbooks_of(config)
    rows = [
        {
            "name": b.name,
            "trigger": ", ".join([*b.trigger.slos, *(f"{k}={v}" for k, v in b.trigger.labels)]),
            "severity": b.trigger.severity,
            "steps": [f"{s.name} ({s.action}, {s.approval})" for s in b.steps],
            "description": b.description,
        }
        for b in books.values()
    ]
    if args.output == "json":
        print(json.dumps({"playbooks": rows}, indent=2))
    else:
        for row in rows:
            print(f"{row['name']}: {row['description']}")
            print(f"  trigger: {row['trigger']} at {row['severity']}")
            for step in row["steps"]:
                print(f"  - {step}")
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    book = _book(playbooks_of(config), args.name)
    doc = {
        "name": book.name,
        "description": book.description,
        "source": book.source,
        "trigger": {
            "slos": list(book.trigger.slos),
            "labels": dict(book.trigger.labels),
            "severity": book.trigger.severity,
        },
        "guards": {
            "cooldown_seconds": book.guards.cooldown,
            "max_runs_per_hour": book.guards.max_runs_per_hour,
            "one_per_target": book.guards.one_per_target,
            "require_suspect": book.guards.require_suspect,
            "maintenance_windows": len(book.guards.maintenance_windows),
        },
        "approvers": {"users": list(book.approver_users), "groups": list(book.approver_groups)},
        "steps": [
            {
                "name": s.name,
                "action": s.action,
                "params": s.params,
                "approval": s.approval,
                "timeout_seconds": s.timeout,
                "on_failure": s.on_failure,
                "verify": None
                if s.verify is None
                else {
                    "burn_falls": s.verify.burn_falls,
                    "promql": s.verify.promql,
                    "within_seconds": s.verify.within,
                },
                "context": s.context,
                "when": s.when,
            }
            for s in book.steps
        ],
    }
    if args.output == "json":
        print(json.dumps(doc, indent=2))
    else:
        import yaml

        print(yaml.safe_dump(doc, sort_keys=False), end="")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    books = playbooks_of(config)
    book = _book(books, args.name)
    store = open_store(config)
    try:
        runner = runner_for(args, config, store, books)
        prometheus = PrometheusClient(config.prometheus)
        context, slo = trigger_context(
            config,
            book,
            runner.kube_for(None),
            parse_sets(args.set),
            prometheus,
            args.slo,
            seconds(args.since),
        )
        prometheus.close()
        if args.dry_run:
            checks = runner.dry_run(book.name, context)
            _print_checks(args, book, context, checks)
            return EXIT_BURNING if any(c.problems for c in checks) else EXIT_OK
        if store.setting("paused", "false") == "true":
            raise UsageError("guardian is paused (kill switch): run 'guardian resume' first")
        target = target_of(context)
        execution = runner.propose(book.name, context, actor(args), "console", slo, target)
        execution = runner.advance(execution.id)
        print_execution(args, store, execution)
        return EXIT_OK if execution.state in ("awaiting_approval", "succeeded") else EXIT_BURNING
    finally:
        store.close()


def _print_checks(
    args: argparse.Namespace, book: Playbook, context: dict[str, Any], checks: list[StepCheck]
) -> None:
    if args.output == "json":
        doc = {
            "playbook": book.name,
            "dry_run": True,
            "context": context,
            "steps": [
                {
                    "step": c.step,
                    "action": c.action,
                    "approval": c.approval,
                    "skipped": c.skipped or None,
                    "problems": list(c.problems),
                    "plan": c.plan.to_json() if c.plan else None,
                }
                for c in checks
            ],
        }
        print(json.dumps(doc, indent=2, default=str))
        return
    print(f"playbook {book.name} (dry run: nothing changed)")
    for index, check in enumerate(checks, 1):
        head = f"step {index} {check.step}: {check.action}, approval {check.approval}"
        if check.skipped:
            print(f"{head}: skipped ({check.skipped})")
            continue
        if check.problems:
            print(f"{head}: WOULD FAIL: {'; '.join(check.problems)}")
            continue
        assert check.plan is not None
        print(f"{head}: {check.plan.target}, {len(check.plan.changes)} changes accepted")
        print(check.plan.diff())


def print_execution(args: argparse.Namespace, store: Store, execution: Execution) -> None:
    steps = store.steps(execution.id)
    if getattr(args, "output", "table") == "json":
        doc = {
            "id": execution.id,
            "playbook": execution.playbook,
            "state": execution.state,
            "step": execution.step,
            "message": execution.message,
            "steps": [{"name": s.name, "status": s.status, "result": s.result} for s in steps],
        }
        print(json.dumps(doc, indent=2))
        return
    print(f"execution {execution.id} ({execution.playbook}): {execution.state}")
    for record in steps:
        print(f"  {record.name}: {record.status}")
    if execution.state == "awaiting_approval":
        print(
            f"  approve with: guardian approvals approve {execution.id} "
            f"--step {execution.step + 1} -c {args.config}"
        )
    if execution.message:
        print(f"  {execution.message}")

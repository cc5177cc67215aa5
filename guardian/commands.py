"""Console commands for playbooks and executions: ``playbook``, ``approvals``, ``history``,
``pause`` and ``resume``.

Input: parsed arguments. Output: text or JSON on stdout and an exit code. Wires the real
parts together (config, playbooks, store, API server, Prometheus) and hands them to
``guardian.runner``. Called by ``guardian.cli``, which owns the parser.
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
from guardian.clients.prometheus import PrometheusClient
from guardian.config import Config, load_config
from guardian.cycle import Cycle, target_of, trigger_context
from guardian.errors import EXIT_BURNING, EXIT_OK, ConfigError, GuardianError, UsageError
from guardian.pipeline import PrometheusSignals, evaluation_budget, replay
from guardian.playbooks import Playbook, load_playbooks
from guardian.runner import Notifier, Runner, Silent, StepCheck
from guardian.store import MIN_PREFIX, OPEN_STATES, AmbiguousPrefix, Execution, Store


def add_parsers(sub: Any, config_arg: Any, format_arg: Any) -> None:
    """Register the subcommands on ``sub`` (``argparse`` sub-parsers)."""
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
    _kube_args(run)
    _actor_arg(run)
    format_arg(run)
    run.set_defaults(handler=_cmd_run)

    approvals = sub.add_parser("approvals", help="pending approvals: list, approve, deny")
    verbs = approvals.add_subparsers(dest="approvals_command", required=True, metavar="COMMAND")
    pending = verbs.add_parser("list", help="executions awaiting approval")
    config_arg(pending)
    format_arg(pending)
    pending.set_defaults(handler=_cmd_pending)
    for verb in ("approve", "deny"):
        decide = verbs.add_parser(
            verb,
            help=f"{verb} the step of an execution that awaits approval",
            description=f"{verb.capitalize()} step N of execution ID. The decision binds to "
            "that step: it is refused (and audited) unless N is the step awaiting approval "
            "now, so a second or late command never decides a later step that nobody looked "
            "at. 'guardian approvals list' shows each pending execution with its step.",
        )
        decide.add_argument("id", help="execution ID (a unique prefix will do)")
        decide.add_argument(
            "--step",
            type=_step_number,
            required=True,
            metavar="N",
            help="the step you are deciding, as 'approvals list' shows it (1 is the first)",
        )
        config_arg(decide)
        _kube_args(decide)
        _actor_arg(decide)
        decide.add_argument(
            "--no-run",
            action="store_true",
            help="record the decision only; a running daemon carries the execution on",
        )
        decide.set_defaults(handler=_cmd_decide, verb=verb)

    _add_operator_parsers(sub, config_arg, format_arg)


def _add_operator_parsers(sub: Any, config_arg: Any, format_arg: Any) -> None:
    history = sub.add_parser("history", help="the audit log, oldest first")
    config_arg(history)
    history.add_argument("--execution", help="only this execution")
    history.add_argument("--limit", type=int, default=50)
    format_arg(history)
    history.set_defaults(handler=_cmd_history)

    slack = sub.add_parser(
        "slack",
        help="the approvals loop: evaluate, propose playbook runs, answer Slack's buttons and "
        "/guardian (Socket Mode or HTTP, per config)",
    )
    config_arg(slack)
    _kube_args(slack)
    slack.add_argument("--interval", default="30s", help="evaluation interval (default 30s)")
    slack.set_defaults(handler=_cmd_slack)

    for verb, text in (
        ("pause", "kill switch: propose and run nothing until resume"),
        ("resume", "lift the kill switch"),
    ):
        switch = sub.add_parser(verb, help=text)
        config_arg(switch)
        _actor_arg(switch)
        switch.set_defaults(handler=_cmd_switch, verb=verb)


def _kube_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--qps", type=float, default=5.0, help="API requests per second")
    parser.add_argument("--burst", type=int, default=10, help="token bucket burst")


def _actor_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as", dest="actor", default=None, help="who you are, for the audit (default $USER)"
    )


def _step_number(text: str) -> int:
    """A step number as people see it (1 is the first step)."""
    if not text.isdigit() or not 1 <= int(text) <= 999:
        raise argparse.ArgumentTypeError(f"{text!r} is not a step number (1, 2, ...)")
    return int(text)


def _actor(args: argparse.Namespace) -> str:
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


def _runner(
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
        owner=owner or f"console:{_actor(args)}@{socket.gethostname()}",
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
    from guardian.blocks import SlackNotifier
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

    from guardian.plot import plot_replay

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


def _seconds(text: str) -> int:
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
        runner = _runner(args, config, store, books)
        prometheus = PrometheusClient(config.prometheus)
        context, slo = trigger_context(
            config,
            book,
            runner.kube_for(None),
            parse_sets(args.set),
            prometheus,
            args.slo,
            _seconds(args.since),
        )
        prometheus.close()
        if args.dry_run:
            checks = runner.dry_run(book.name, context)
            _print_checks(args, book, context, checks)
            return EXIT_BURNING if any(c.problems for c in checks) else EXIT_OK
        if store.setting("paused", "false") == "true":
            raise UsageError("guardian is paused (kill switch): run 'guardian resume' first")
        target = target_of(context)
        execution = runner.propose(book.name, context, _actor(args), "console", slo, target)
        execution = runner.advance(execution.id)
        _print_execution(args, store, execution)
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


def _print_execution(args: argparse.Namespace, store: Store, execution: Execution) -> None:
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


def _cmd_pending(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = open_store(config)
    try:
        books = playbooks_of(config)
        rows = []
        for ex in store.executions(["awaiting_approval"]):
            book = books.get(ex.playbook)
            step = book.steps[ex.step].name if book and ex.step < len(book.steps) else "?"
            request = store.request(ex.id, ex.step)
            rows.append(
                {
                    "id": ex.id,
                    "playbook": ex.playbook,
                    "step": ex.step + 1,
                    "step_name": step,
                    "request": request.nonce if request else None,
                    "slo": ex.slo,
                    "target": ex.target,
                    "requested_by": ex.requested_by,
                    "expires_at": ex.expires_at.isoformat() if ex.expires_at else None,
                }
            )
    finally:
        store.close()
    if args.output == "json":
        print(json.dumps({"pending": rows}, indent=2))
    elif not rows:
        print("no execution awaits approval")
    else:
        for row in rows:
            print(
                f"{row['id']}  step {row['step']} ({row['step_name']}) of {row['playbook']}  "
                f"slo {row['slo'] or '-'}  target {row['target'] or '-'}  "
                f"asked by {row['requested_by']}  expires {row['expires_at']}\n"
                f"    decide with: guardian approvals approve|deny {row['id']} "
                f"--step {row['step']}"
            )
    return EXIT_OK


def _cmd_decide(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = open_store(config)
    try:
        runner = _runner(args, config, store, playbooks_of(config))
        decide = runner.approve if args.verb == "approve" else runner.deny
        decision = decide(args.id, _actor(args), "console", step=args.step - 1)
        if not decision.ok:
            raise UsageError(decision.message)
        print(decision.message)
        if args.verb == "approve" and not args.no_run:
            execution = runner.advance(store.find(args.id).id)
            _print_execution(args, store, execution)
            return EXIT_OK if execution.state in (*OPEN_STATES, "succeeded") else EXIT_BURNING
        return EXIT_OK
    finally:
        store.close()


def _cmd_history(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = open_store(config)
    try:
        execution = store.find(args.execution).id if args.execution else None
        rows = store.history(execution, args.limit)
    except AmbiguousPrefix:
        raise UsageError(
            f"--execution {args.execution}: more than one execution starts with it; "
            "give more of the ID"
        ) from None
    except KeyError:
        raise UsageError(
            f"--execution {args.execution}: no such execution "
            f"(give its ID or a unique prefix of {MIN_PREFIX} or more)"
        ) from None
    finally:
        store.close()
    if args.output == "json":
        doc = [
            {
                "seq": r.seq,
                "at": r.at.isoformat(),
                "kind": r.kind,
                "execution": r.execution_id,
                "actor": r.actor,
                "via": r.via,
                "detail": r.detail,
            }
            for r in rows
        ]
        print(json.dumps({"history": doc}, indent=2))
    else:
        for r in rows:
            detail = ", ".join(f"{k}={v}" for k, v in r.detail.items())
            print(
                f"{r.at:%Y-%m-%d %H:%M:%S}  {r.kind:<18} {r.execution_id or '-':<10} "
                f"{r.actor or '-'} via {r.via or '-'}  {detail}"
            )
    return EXIT_OK


def _cmd_switch(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = open_store(config)
    now = datetime.now(UTC)
    try:
        store.set_setting("paused", "true" if args.verb == "pause" else "false", now)
        store.record(args.verb, now, None, _actor(args), "console")
    finally:
        store.close()
    print("guardian paused: nothing is proposed or run" if args.verb == "pause" else "resumed")
    return EXIT_OK


def _cmd_slack(args: argparse.Namespace) -> int:
    import signal
    import threading

    from guardian.chat import ChatOps
    from guardian.clients.slack import SlackApp, SlackClient
    from guardian.suspects import find_suspects

    config = load_config(args.config)
    if config.slack is None:
        raise UsageError(f"{args.config}: slack: is required; add a slack section")
    settings = config.slack
    interval = _seconds(args.interval)
    books = playbooks_of(config)
    store = open_store(config)
    runner = _runner(args, config, store, books, owner=f"guardian@{socket.gethostname()}")
    kube = runner.kube_for(None)
    prometheus = PrometheusClient(config.prometheus)
    cycle = Cycle(config, books, store, runner, kube, prometheus)

    def evaluate_now() -> Any:  # within evaluation_budget, as the loop's own evaluations
        return cycle.evaluate()

    def suspects_now() -> list[dict[str, Any]]:
        found = find_suspects(kube, datetime.now(UTC), timedelta(minutes=30))  # type: ignore[arg-type]
        return [s.to_json() for s in found]

    ops = ChatOps(
        runner,
        store,
        settings,
        SlackClient.from_settings(settings),
        books,
        evaluate_now,
        suspects_now,
        lambda book, params: trigger_context(config, book, kube, params, prometheus),
    )
    app = SlackApp(settings, ops.client, ops.on_click, ops.on_command)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    app.start()
    where = f"http on {settings.listen}" if settings.mode == "http" else "Socket Mode"
    print(f"guardian: answering Slack ({where}), channel {settings.channel}", flush=True)
    try:
        while not stop.wait(interval):
            for what, job in (("evaluation", cycle.tick), ("advancing", runner.advance_all)):
                try:
                    job()
                except GuardianError as exc:
                    print(f"guardian: {what}: {exc.message}", file=sys.stderr, flush=True)
                except Exception as exc:  # the loop outlives one bad cycle
                    print(
                        f"guardian: {what} failed: {type(exc).__name__}: {exc}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        app.stop()
        prometheus.close()
        store.close()
    return EXIT_OK

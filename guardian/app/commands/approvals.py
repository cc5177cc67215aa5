"""Deciding on executions and watching over them: ``approvals``, ``history``, ``slack``,
``pause`` and ``resume``.

Input: parsed arguments. Output: text or JSON on stdout and an exit code; decisions,
switches and the Slack approvals loop (evaluate every interval, answer Slack's buttons and
``/guardian`` until SIGTERM) go through ``guardian.executor.runner`` and the store, wired by
``guardian.app.commands.playbooks``. Called by ``guardian.app.cli``, which owns the parser and calls
``add_parsers`` after ``guardian.app.commands.playbooks.add_parsers``.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from guardian.app.chatops import ChatOps
from guardian.app.commands.playbooks import (
    actor,
    actor_arg,
    kube_args,
    open_store,
    playbooks_of,
    print_execution,
    runner_for,
)
from guardian.app.commands.playbooks import seconds as _seconds
from guardian.audit.records import MIN_PREFIX, OPEN_STATES, AmbiguousPrefix
from guardian.clients.prometheus import PrometheusClient
from guardian.config import Config, load_config
from guardian.config.model import SlackSettings
from guardian.errors import EXIT_BURNING, EXIT_OK, GuardianError, UsageError
from guardian.pipeline import Cycle
from guardian.planning.trigger import trigger_context


def add_parsers(sub: Any, config_arg: Any, format_arg: Any) -> None:
    """Register ``approvals``, ``history``, ``slack``, ``pause`` and ``resume`` on ``sub``."""
    _add_approvals_parser(sub, config_arg, format_arg)
    _add_operator_parsers(sub, config_arg, format_arg)


def _add_approvals_parser(sub: Any, config_arg: Any, format_arg: Any) -> None:
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
        kube_args(decide)
        actor_arg(decide)
        decide.add_argument(
            "--no-run",
            action="store_true",
            help="record the decision only; a running daemon carries the execution on",
        )
        decide.set_defaults(handler=_cmd_decide, verb=verb)


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
    kube_args(slack)
    slack.add_argument("--interval", default="30s", help="evaluation interval (default 30s)")
    slack.set_defaults(handler=_cmd_slack)

    for verb, text in (
        ("pause", "kill switch: propose and run nothing until resume"),
        ("resume", "lift the kill switch"),
    ):
        switch = sub.add_parser(verb, help=text)
        config_arg(switch)
        actor_arg(switch)
        switch.set_defaults(handler=_cmd_switch, verb=verb)


def _step_number(text: str) -> int:
    """A step number as people see it (1 is the first step)."""
    if not text.isdigit() or not 1 <= int(text) <= 999:
        raise argparse.ArgumentTypeError(f"{text!r} is not a step number (1, 2, ...)")
    return int(text)


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
        runner = runner_for(args, config, store, playbooks_of(config))
        decide = runner.approve if args.verb == "approve" else runner.deny
        decision = decide(args.id, actor(args), "console", step=args.step - 1)
        if not decision.ok:
            raise UsageError(decision.message)
        print(decision.message)
        if args.verb == "approve" and not args.no_run:
            execution = runner.advance(store.find(args.id).id)
            print_execution(args, store, execution)
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
        store.record(args.verb, now, None, actor(args), "console")
    finally:
        store.close()
    print("guardian paused: nothing is proposed or run" if args.verb == "pause" else "resumed")
    return EXIT_OK


def _cmd_slack(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.slack is None:
        raise UsageError(f"{args.config}: slack: is required; add a slack section")
    interval = _seconds(args.interval)
    books = playbooks_of(config)
    store = open_store(config)
    runner = runner_for(args, config, store, books, owner=f"guardian@{socket.gethostname()}")
    prometheus = PrometheusClient(config.prometheus)
    cycle = Cycle(config, books, store, runner, runner.kube_for(None), prometheus)
    try:
        _answer_slack(config.slack, _chat_ops(config, cycle, prometheus), cycle, interval)
    finally:
        prometheus.close()
        store.close()
    return EXIT_OK


def _chat_ops(config: Config, cycle: Cycle, prometheus: PrometheusClient) -> ChatOps:
    """What Slack users may ask, answered with the loop's own cycle, runner and clients."""
    from guardian.clients.slack import SlackClient
    from guardian.planning.suspects import find_suspects

    assert config.slack is not None
    kube = cycle.kube

    def evaluate_now() -> Any:  # within evaluation_budget, as the loop's own evaluations
        return cycle.evaluate()

    def suspects_now() -> list[dict[str, Any]]:
        found = find_suspects(kube, datetime.now(UTC), timedelta(minutes=30))  # type: ignore[arg-type]
        return [s.to_json() for s in found]

    return ChatOps(
        cycle.runner,
        cycle.store,
        config.slack,
        SlackClient.from_settings(config.slack),
        cycle.playbooks,
        evaluate_now,
        suspects_now,
        lambda book, params: trigger_context(config, book, kube, params, prometheus),
    )


def _answer_slack(settings: SlackSettings, ops: ChatOps, cycle: Cycle, interval: int) -> None:
    """Answer Slack and evaluate every ``interval`` seconds until SIGTERM or SIGINT."""
    import signal
    import threading

    from guardian.clients.slack import SlackApp

    app = SlackApp(settings, ops.client, ops.on_click, ops.on_command)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    app.start()
    where = f"http on {settings.listen}" if settings.mode == "http" else "Socket Mode"
    print(f"guardian: answering Slack ({where}), channel {settings.channel}", flush=True)
    try:
        while not stop.wait(interval):
            for what, job in (("evaluation", cycle.tick), ("advancing", cycle.runner.advance_all)):
                _survive(what, job)
    finally:
        app.stop()


def _survive(what: str, job: Callable[[], object]) -> None:
    """Run one of the loop's jobs; a failure is one line on stderr, and the loop goes on."""
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

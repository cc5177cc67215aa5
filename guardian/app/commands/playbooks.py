"""``guardian playbook list|show|run``: the loaded playbooks, and runs proposed by hand.

Input: parsed arguments. Output: the playbooks as text, YAML or JSON; a run proposed and
moved as far as it goes without a human (``guardian.executor.runner``, built by
``guardian.app.wiring``), or with ``--dry-run`` every step planned and checked with
dryRun=All; exit 1 when a step would fail or the run did. ``print_execution`` is also used
by ``guardian.app.commands.approvals``. Called by ``guardian.app.cli`` (``add_parsers``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from guardian.app.args import actor, actor_arg, command, format_arg, kube_args, parse_sets, seconds
from guardian.app.wiring import console_runner, open_store, playbooks_of
from guardian.audit.records import Execution
from guardian.audit.switch import KillSwitch
from guardian.clients.apf import ApfClient
from guardian.clients.kube import Kube
from guardian.clients.prometheus import PrometheusClient
from guardian.clients.store import Store
from guardian.config import load_config
from guardian.errors import EXIT_BURNING, EXIT_OK, UsageError
from guardian.executor.runner import StepCheck
from guardian.planning.trigger import target_of, trigger_context
from guardian.playbooks import Playbook


def add_parsers(sub: Any) -> None:
    """Register ``playbook list|show|run`` on ``sub`` (``argparse`` sub-parsers)."""
    playbook = sub.add_parser("playbook", help="list, show or run playbooks")
    books = playbook.add_subparsers(dest="playbook_command", required=True, metavar="COMMAND")
    command(books, "list", "the loaded playbooks", _cmd_list)
    command(books, "show", "one playbook in full", _cmd_show).add_argument("name")
    run = command(
        books,
        "run",
        "propose a run (or, with --dry-run, plan and check every step)",
        _cmd_run,
        output=False,
    )
    run.add_argument("name")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="K=V",
        help="a params value; change=KIND/NS/NAME and offender=NS/SA name the target by hand",
    )
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


def _book(books: dict[str, Playbook], name: str) -> Playbook:
    if name not in books:
        known = ", ".join(sorted(books)) or "none; add policy.playbooks to the config"
        raise UsageError(f"playbook {name!r}: no such playbook (known: {known})")
    return books[name]


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
        runner = console_runner(args, config, store, books)
        prometheus = PrometheusClient(config.prometheus)
        kube = runner.kube_for(None)
        context, slo = trigger_context(
            config,
            book,
            kube,
            parse_sets(args.set),
            prometheus,
            args.slo,
            seconds(args.since, "--since"),
            apf=ApfClient(kube, prometheus) if isinstance(kube, Kube) else None,
        )
        prometheus.close()
        if args.dry_run:
            checks = runner.dry_run(book.name, context)
            _print_checks(args, book, context, checks)
            return EXIT_BURNING if any(c.problems for c in checks) else EXIT_OK
        if KillSwitch(store).engaged():
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
                    "unchecked": c.unchecked or None,
                    "warning": c.warning or None,
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
        if check.unchecked:
            print(f"{head}: not checked ({check.unchecked})")
            continue
        assert check.plan is not None
        print(f"{head}: {check.plan.target}, {len(check.plan.changes)} changes accepted")
        if check.warning:
            print(f"  but {check.warning}")
        print(check.plan.diff())


def print_execution(args: argparse.Namespace, store: Store, execution: Execution) -> None:
    """Where ``execution`` stands and its steps (JSON with ``-o json``), and how to approve
    it when it awaits approval."""
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

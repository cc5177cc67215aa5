"""Deciding on executions and reading the audit: ``approvals list|approve|deny|undo``, ``history``.

Input: parsed arguments. Output: text or JSON on stdout and an exit code; decisions go
through the executor (``guardian.executor.runner``, built by ``guardian.app.wiring``), which
binds each to the step awaiting approval and audits it; an approved execution is then moved
on unless ``--no-run``. ``approvals undo`` undoes every applied step of an execution
(``Runner.undo``): exit 0 when undone, 2 with a one-line reason when refused (tested in
``tests/test_undo_execution.py``). Called by ``guardian.app.cli`` (``add_parsers``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from guardian.app.args import actor, actor_arg, command, format_arg, kube_args, step_number
from guardian.app.commands.playbooks import print_execution
from guardian.app.wiring import console_runner, opened, playbooks_of
from guardian.audit.records import MIN_PREFIX, OPEN_STATES, AmbiguousPrefix
from guardian.errors import EXIT_BURNING, EXIT_OK, UsageError

_DECIDE = (
    "{verb} step N of execution ID. The decision binds to that step: it is refused (and "
    "audited) unless N is the step awaiting approval now, so a second or late command never "
    "decides a later step that nobody looked at. 'guardian approvals list' shows each pending "
    "execution with its step."
)

_UNDO = (
    "Undo every applied step of execution ID, newest first, from what each step's plan "
    "recorded; the execution ends undone and a pending approval of a later step is "
    "cancelled; a step being verified is stopped first (the undo waits up to 30 s for it). "
    "Allowed to an approver of the playbook once a step applied, also while guardian is "
    "paused; once only (a second undo is refused: exit 2). The requester may undo steps that "
    "ran with approval: auto, not approved ones."
)


def add_parsers(sub: Any) -> None:
    """Register ``approvals list|approve|deny|undo`` and ``history`` on ``sub``."""
    approvals = sub.add_parser("approvals", help="pending approvals: list, approve, deny, undo")
    verbs = approvals.add_subparsers(dest="approvals_command", required=True, metavar="COMMAND")
    command(verbs, "list", "executions awaiting approval", _cmd_pending)
    for verb in ("approve", "deny"):
        text = f"{verb} the step of an execution that awaits approval"
        description = _DECIDE.format(verb=verb.capitalize())
        decide = command(verbs, verb, text, _cmd_decide, False, description=description)
        decide.set_defaults(verb=verb)
        decide.add_argument("id", help="execution ID (a unique prefix will do)")
        decide.add_argument(
            "--step",
            type=step_number,
            required=True,
            metavar="N",
            help="the step you are deciding, as 'approvals list' shows it (1 is the first)",
        )
        kube_args(decide)
        actor_arg(decide)
        decide.add_argument(
            "--no-run",
            action="store_true",
            help="record the decision only; a running daemon carries the execution on",
        )
    undo = command(
        verbs,
        "undo",
        "undo every applied step of an execution",
        _cmd_undo,
        False,
        description=_UNDO,
    )
    undo.add_argument("id", help="execution ID (a unique prefix will do)")
    kube_args(undo)
    actor_arg(undo)
    history = command(sub, "history", "the audit log, oldest first", _cmd_history, False)
    history.add_argument("--execution", help="only this execution")
    history.add_argument("--limit", type=int, default=50)
    format_arg(history)


def _cmd_pending(args: argparse.Namespace) -> int:
    with opened(args.config) as (config, store):
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
    with opened(args.config) as (config, store):
        runner = console_runner(args, config, store, playbooks_of(config))
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


def _cmd_undo(args: argparse.Namespace) -> int:
    with opened(args.config) as (config, store):
        runner = console_runner(args, config, store, playbooks_of(config))
        decision = runner.undo(args.id, actor(args), "console")
    if not decision.ok:
        raise UsageError(decision.message)
    print(decision.message)
    return EXIT_OK


def _cmd_history(args: argparse.Namespace) -> int:
    try:
        with opened(args.config) as (_, store):
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

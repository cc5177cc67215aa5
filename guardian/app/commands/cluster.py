"""``guardian suspects`` and ``guardian act``: what reads or changes the cluster by hand.

Input: parsed arguments and a kubeconfig. Output: the recent rollouts ranked as suspects
(``guardian.planning.suspects``), or one mitigation action planned, applied (or checked with
dryRun=All) and verified (``guardian.actions``), as a table or JSON; ``act`` exits 1 when
verification found problems. Called by ``guardian.app.cli`` (``add_parsers``).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from guardian.actions import CATALOGUE
from guardian.app.args import (
    KUBECONFIG_FALLBACK,
    format_arg,
    kube_args,
    moment,
    parse_sets,
    seconds,
)
from guardian.app.report import rfc3339
from guardian.app.wiring import KubePool
from guardian.config import load_config
from guardian.errors import EXIT_BURNING, EXIT_OK, UsageError

_COLUMNS = ("rank", "kind", "namespace/name", "revision", "started", "min before", "touches")


def add_parsers(sub: Any) -> None:
    """Register ``suspects`` and ``act`` on ``sub``."""
    sus = sub.add_parser("suspects", help="recent rollouts, ranked: candidates for pause-rollout")
    sus.add_argument("--since", default="30m", help="look back this far before the burn (30m)")
    sus.add_argument("--at", help="start of the burn, RFC 3339 (default: now)")
    kube_args(sus, KUBECONFIG_FALLBACK, rate=False)
    format_arg(sus)
    sus.set_defaults(handler=_cmd_suspects, qps=5.0, burst=10)

    act = sub.add_parser("act", help="run one mitigation action by hand (plan, apply, verify)")
    act.add_argument("action", choices=sorted(CATALOGUE), help="the action")
    act.add_argument(
        "--set", action="append", default=[], metavar="K=V", help="an action parameter"
    )
    act.add_argument("--dry-run", action="store_true", help="check with dryRun=All, change nothing")
    act.add_argument(
        "--wait",
        default="60s",
        help="how long verify may wait for the change to take effect (default 60s; 0: check once)",
    )
    note = "; for scale-apiserver, the management cluster's"
    kube_args(act, KUBECONFIG_FALLBACK, context_note=note)
    act.add_argument(
        "-c",
        "--config",
        help="config whose policy.protected_subjects and policy.max_changes apply "
        "(default: the built-in protections and at most 200 changes)",
    )
    format_arg(act)
    act.set_defaults(handler=_cmd_act)


def _cmd_suspects(args: argparse.Namespace) -> int:
    from guardian.planning.suspects import find_suspects

    burn = moment(args.at, "--at") if args.at else datetime.now(UTC)
    since = timedelta(seconds=seconds(args.since, "--since"))
    kube = KubePool.of(args)()
    found = find_suspects(kube, burn, since)
    rows = [
        {
            **s.to_json(),
            "started": rfc3339(s.started),
            "minutes_before_burn": round(s.minutes_before(burn), 1),
        }
        for s in found
    ]
    if args.output == "json":
        doc = {"burn": rfc3339(burn), "requests": kube.requests, "suspects": rows}
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    table = Table(title=f"rollouts within {args.since} of {rfc3339(burn)}")
    for column in _COLUMNS:
        table.add_column(column)
    for rank, row in enumerate(rows, 1):
        table.add_row(
            str(rank),
            str(row["kind"]),
            f"{row['namespace']}/{row['name']}",
            str(row["revision"]),
            str(row["started"]),
            str(row["minutes_before_burn"]),
            str(row["touches"]),
        )
    Console(width=140).print(table)
    return EXIT_OK


def _params(args: argparse.Namespace) -> Any:
    """The action's parameters from ``--set``, checked by the action's model."""
    from pydantic import ValidationError

    action = CATALOGUE[args.action]
    try:
        return action.params.model_validate(parse_sets(args.set))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or args.action
        message = str((first.get("ctx") or {}).get("error", first["msg"]))
        raise UsageError(f"--set {where}: {message}") from None


def _cmd_act(args: argparse.Namespace) -> int:
    from guardian.actions import Guardrails, execute
    from guardian.actions.base import verify_until

    action = CATALOGUE[args.action]
    params = _params(args)
    wait = seconds(args.wait, "--wait") if args.wait not in ("0", "0s") else 0
    guardrails = Guardrails()
    if args.config:
        policy = load_config(args.config).policy
        guardrails = Guardrails(policy.protected_subjects, policy.max_changes)
    kube = KubePool.of(args)()
    plan = action.plan(kube, params, guardrails)
    guardrails.check(plan)
    outcome = execute(kube, plan, dry_run=args.dry_run)
    if not args.dry_run:
        outcome.problems = verify_until(lambda: action.verify(kube, plan), wait)
        outcome.verified = not outcome.problems
    doc = {
        **plan.to_json(),
        "dry_run": args.dry_run,
        "applied": outcome.applied,
        "verified": outcome.verified,
        "problems": outcome.problems,
        "requests": kube.requests,
    }
    if args.output == "json":
        print(json.dumps(doc, indent=2))
    else:
        print(f"{args.action} {plan.target}{' (dry run: nothing changed)' if args.dry_run else ''}")
        for note in plan.notes:
            print(f"note: {note}")
        print(plan.diff())
        for line in outcome.applied:
            print(f"{'checked' if args.dry_run else 'applied'}: {line}")
        for problem in outcome.problems:
            print(f"verify: {problem}")
    return EXIT_BURNING if outcome.problems else EXIT_OK

"""The ``guardian`` command: argument parsing, output formats and exit codes.

Exit codes: 0 ok, 1 an SLO pages, 2 bad input (config or arguments), 3 a dependency
(Prometheus, the store) cannot be reached or answers badly, or ``eval`` is blind (every SLO
no_data).
A ``GuardianError`` becomes its message on stderr, one line per problem, never a traceback.
Calls ``guardian.evaluation.run`` for the work.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from guardian import __version__
from guardian.app import daemon
from guardian.app.commands import approvals
from guardian.app.commands import playbooks as commands
from guardian.app.report import (
    backtest_json,
    backtest_table,
    evaluation_json,
    evaluation_table,
    rfc3339,
)
from guardian.clients.prometheus import PrometheusClient
from guardian.config import Config, load_config
from guardian.config.spec import FileSpec
from guardian.durations import parse_duration
from guardian.errors import (
    EXIT_BURNING,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    GuardianError,
    PrometheusUnavailable,
    UsageError,
)
from guardian.evaluation.backtest import episodes
from guardian.evaluation.run import evaluate, evaluation_budget, replay


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except GuardianError as exc:
        for line in exc.message.splitlines():
            print(f"guardian: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guardian",
        description="Multi-window multi-burn-rate SLO alerts for Kubernetes control planes.",
        epilog="Exit codes: 0 ok, 1 an SLO pages, 2 bad input (config, arguments), "
        "3 a dependency unreachable or answering badly (Prometheus, the store), or blind "
        "(every SLO no_data).",
    )
    parser.add_argument("--version", action="version", version=f"guardian {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_evaluation_parsers(sub)
    _add_cluster_parsers(sub)
    commands.add_parsers(sub, _config_arg, _format_arg)
    approvals.add_parsers(sub, _config_arg, _format_arg)
    daemon.add_parsers(sub, _config_arg)
    schema = sub.add_parser("schema", help="print the JSON Schema of guardian/v1 config files")
    schema.set_defaults(handler=_cmd_schema)
    return parser


def _add_evaluation_parsers(sub: Any) -> None:
    """``check``, ``eval``, ``rules`` and ``backtest``: what reads the config and Prometheus."""
    check = sub.add_parser("check", help="validate the configuration")
    _config_arg(check)
    check.set_defaults(handler=_cmd_check)

    ev = sub.add_parser(
        "eval",
        help="evaluate every SLO once",
        description="Evaluate every SLO once. Exit codes: 1 when any SLO pages; otherwise 3 "
        "when a query failed or every SLO is no_data (guardian is blind); 0 when no SLO pages.",
    )
    _config_arg(ev)
    ev.add_argument("--at", help="evaluation time, RFC 3339 (default: now)")
    _format_arg(ev)
    ev.set_defaults(handler=_cmd_eval)

    rules = sub.add_parser("rules", help="export Prometheus recording and alerting rules")
    _config_arg(rules)
    rules.add_argument("-o", "--output", help="write to FILE instead of stdout", metavar="FILE")
    rules.set_defaults(handler=_cmd_rules)

    bt = sub.add_parser("backtest", help="replay the evaluation over history")
    _config_arg(bt)
    bt.add_argument("--from", dest="start", required=True, help="start, RFC 3339")
    bt.add_argument("--to", dest="end", required=True, help="end, RFC 3339")
    bt.add_argument("--step", default="1m", help="evaluation step (default 1m)")
    bt.add_argument("--plot", metavar="FILE.png", help="write a burn-rate chart")
    _format_arg(bt)
    bt.set_defaults(handler=_cmd_backtest)


def _add_cluster_parsers(sub: Any) -> None:
    """``suspects`` and ``act``: what reads or changes the cluster by hand."""
    sus = sub.add_parser("suspects", help="recent rollouts, ranked: candidates for pause-rollout")
    sus.add_argument("--since", default="30m", help="look back this far before the burn (30m)")
    sus.add_argument("--at", help="start of the burn, RFC 3339 (default: now)")
    sus.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, ~/.kube/config)")
    sus.add_argument("--context", help="kubeconfig context (default: the current one)")
    _format_arg(sus)
    sus.set_defaults(handler=_cmd_suspects)

    act = sub.add_parser("act", help="run one mitigation action by hand (plan, apply, verify)")
    act.add_argument("action", choices=sorted(_catalogue()), help="the action")
    act.add_argument(
        "--set", action="append", default=[], metavar="K=V", help="an action parameter"
    )
    act.add_argument("--dry-run", action="store_true", help="check with dryRun=All, change nothing")
    act.add_argument(
        "--wait",
        default="60s",
        help="how long verify may wait for the change to take effect (default 60s; 0: check once)",
    )
    act.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, ~/.kube/config)")
    act.add_argument(
        "--context",
        help="kubeconfig context (default: the current one); for scale-apiserver, the "
        "management cluster's",
    )
    act.add_argument("--qps", type=float, default=5.0, help="API requests per second (default 5)")
    act.add_argument("--burst", type=int, default=10, help="token bucket burst (default 10)")
    act.add_argument(
        "-c",
        "--config",
        help="config whose policy.protected_subjects and policy.max_changes apply "
        "(default: the built-in protections and at most 200 changes)",
    )
    _format_arg(act)
    act.set_defaults(handler=_cmd_act)


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", required=True, help="config file or directory of *.yaml files"
    )


def _format_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="output format"
    )


def _cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    windows = sum(len(s.windows) for s in config.slos)
    books = commands.playbooks_of(config)
    print(
        f"{args.config}: ok ({len(config.slos)} SLOs, {windows} window pairs, "
        f"{len(books)} playbooks, {len(config.files)} files)"
    )
    return EXIT_OK


def _client(config: Config) -> PrometheusClient:
    return PrometheusClient(config.prometheus)


def _cmd_eval(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    at = _time(args.at, "--at") if args.at else None
    client = _client(config)
    settings = config.prometheus
    try:
        evaluation, error = evaluate(
            config.slos,
            client,
            at,
            settings.source,
            settings.parallel_queries,
            evaluation_budget(settings.timeout, config.daemon.interval),
        )
    finally:
        client.close()
    _emit(args.output, evaluation_json(evaluation, error), evaluation_table(evaluation))
    if error:
        print(f"guardian: {error}", file=sys.stderr)
    for slo in evaluation.slos:
        if slo.status == "no_data" and slo.reason != error:
            print(f"guardian: warning: {slo.name}: no_data: {slo.reason}", file=sys.stderr)
        elif slo.status != "no_data" and slo.budget_note and slo.budget_note != error:
            print(
                f"guardian: warning: {slo.name}: budget unknown: {slo.budget_note}",
                file=sys.stderr,
            )
    if evaluation.paging:
        return EXIT_BURNING
    count = len(evaluation.slos)
    if count and all(slo.status == "no_data" for slo in evaluation.slos):
        print(
            f"guardian: blind: every SLO is no_data ({count} of {count}); "
            "no page now means nothing",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    return EXIT_UNAVAILABLE if error else EXIT_OK


def _cmd_rules(args: argparse.Namespace) -> int:
    from guardian.evaluation.rules import rule_groups

    config = load_config(args.config)
    text = yaml.dump(rule_groups(config.slos), Dumper=_BlockDumper, sort_keys=False, width=100)
    header = f"# Generated by guardian {__version__} from {args.config}; do not edit.\n"
    if args.output:
        Path(args.output).write_text(header + text, encoding="utf-8")
    else:
        sys.stdout.write(header + text)
    return EXIT_OK


def _cmd_backtest(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    start, end = _time(args.start, "--from"), _time(args.end, "--to")
    if end <= start:
        raise UsageError("--to: must be after --from")
    step = _duration(args.step, "--step")
    client = _client(config)
    try:
        result = replay(
            config.slos,
            client,
            start,
            end,
            step,
            config.prometheus.source,
            config.prometheus.parallel_queries,
        )
    finally:
        client.close()
    if result.error:
        raise PrometheusUnavailable(result.error)
    found = episodes(result.steps)
    if args.plot:
        from guardian.app.plot import plot_replay

        title = f"guardian backtest, {args.start} to {args.end}, step {args.step}"
        plot_replay(result.steps, found, Path(args.plot), title=title)
    _emit(
        args.output,
        backtest_json(start, end, step, found, result.queries),
        backtest_table(found),
    )
    return EXIT_OK


def _cmd_suspects(args: argparse.Namespace) -> int:
    from guardian.clients.kube import Kube
    from guardian.planning.suspects import find_suspects

    burn = _time(args.at, "--at") if args.at else datetime.now(UTC)
    since = timedelta(seconds=_duration(args.since, "--since"))
    kube = Kube.from_kubeconfig(args.kubeconfig, args.context)
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
        print(
            json.dumps(
                {"burn": rfc3339(burn), "requests": kube.requests, "suspects": rows}, indent=2
            )
        )
        return EXIT_OK
    table = Table(title=f"rollouts within {args.since} of {rfc3339(burn)}")
    for column in (
        "rank",
        "kind",
        "namespace/name",
        "revision",
        "started",
        "min before",
        "touches",
    ):
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


def _catalogue() -> dict[str, Any]:
    from guardian.actions import CATALOGUE

    return dict(CATALOGUE)


def _cmd_act(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from guardian.actions import Guardrails, execute
    from guardian.actions.base import verify_until
    from guardian.clients.kube import Kube

    action = _catalogue()[args.action]
    raw = commands.parse_sets(args.set)
    try:
        params = action.params.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or args.action
        message = str((first.get("ctx") or {}).get("error", first["msg"]))
        raise UsageError(f"--set {where}: {message}") from None
    wait = _duration(args.wait, "--wait") if args.wait not in ("0", "0s") else 0
    guardrails = Guardrails()
    if args.config:
        policy = load_config(args.config).policy
        guardrails = Guardrails(policy.protected_subjects, policy.max_changes)
    kube = Kube.from_kubeconfig(args.kubeconfig, args.context, args.qps, args.burst)
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


def _cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(FileSpec.model_json_schema(), indent=2))
    return EXIT_OK


def _emit(fmt: str, doc: dict[str, Any], table: Any) -> None:
    if fmt == "json":
        print(json.dumps(doc, indent=2))
    else:
        Console(width=140).print(table)


def _time(text: str, flag: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise UsageError(
            f"{flag}: must be an RFC 3339 time like 2024-12-11T23:30:00Z (got {text!r})"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _duration(text: str, flag: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL) as YAML block scalars."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


if __name__ == "__main__":
    sys.exit(main())

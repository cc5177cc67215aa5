"""``guardian check``, ``eval``, ``rules`` and ``backtest``: what reads the config and Prometheus.

Input: parsed arguments. Output: a one-line check of the config; the evaluation of every
SLO (a table or JSON, warnings on stderr; exit 1 when one pages, 3 when a query failed or
guardian is blind); the Prometheus rules as YAML; a replay over history with its episodes
(and a chart) and the policy's decisions at each change (change guard included, the change
log read from kube-state-metrics). The work is ``guardian.evaluation`` (``run``, ``rules``,
``backtest``) and ``guardian.app.decisions``; the tables are ``guardian.app.report``.
Called by ``guardian.app.cli`` (``add_parsers``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from guardian import __version__
from guardian.app.args import command, format_arg, moment, seconds
from guardian.app.decisions import replay_decisions
from guardian.app.report import (
    backtest_json,
    backtest_table,
    evaluation_json,
    evaluation_table,
)
from guardian.app.wiring import playbooks_of
from guardian.clients.prometheus import PrometheusClient
from guardian.config import load_config
from guardian.errors import (
    EXIT_BURNING,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    PrometheusUnavailable,
    UsageError,
)
from guardian.evaluation.backtest import episodes
from guardian.evaluation.changes import ChangeLog
from guardian.evaluation.results import Evaluation
from guardian.evaluation.run import evaluate, evaluation_budget, replay


def add_parsers(sub: Any) -> None:
    """Register ``check``, ``eval``, ``rules`` and ``backtest`` on ``sub``."""
    command(sub, "check", "validate the configuration", _cmd_check, output=False)
    ev = command(
        sub,
        "eval",
        "evaluate every SLO once",
        _cmd_eval,
        output=False,
        description="Evaluate every SLO once. Exit codes: 1 when any SLO pages; otherwise 3 "
        "when a query failed or every SLO is no_data (guardian is blind); 0 when no SLO pages.",
    )
    ev.add_argument("--at", help="evaluation time, RFC 3339 (default: now)")
    format_arg(ev)
    rules = command(
        sub, "rules", "export Prometheus recording and alerting rules", _cmd_rules, output=False
    )
    rules.add_argument("-o", "--output", help="write to FILE instead of stdout", metavar="FILE")
    bt = command(sub, "backtest", "replay the evaluation over history", _cmd_backtest, False)
    bt.add_argument("--from", dest="start", required=True, help="start, RFC 3339")
    bt.add_argument("--to", dest="end", required=True, help="end, RFC 3339")
    bt.add_argument("--step", default="1m", help="evaluation step (default 1m)")
    bt.add_argument("--plot", metavar="FILE.png", help="write a burn-rate chart")
    format_arg(bt)


def emit(fmt: str, doc: dict[str, Any], table: Any) -> None:
    """``doc`` as JSON when ``fmt`` is json, else ``table`` (a rich table) on stdout."""
    if fmt == "json":
        print(json.dumps(doc, indent=2))
    else:
        Console(width=140).print(table)


def _cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    windows = sum(len(s.windows) for s in config.slos)
    books = playbooks_of(config)
    print(
        f"{args.config}: ok ({len(config.slos)} SLOs, {windows} window pairs, "
        f"{len(books)} playbooks, {len(config.files)} files)"
    )
    return EXIT_OK


def _cmd_eval(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    at = moment(args.at, "--at") if args.at else None
    client = PrometheusClient(config.prometheus)
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
    emit(args.output, evaluation_json(evaluation, error), evaluation_table(evaluation))
    if error:
        print(f"guardian: {error}", file=sys.stderr)
    _warn(evaluation, error)
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


def _warn(evaluation: Evaluation, error: str) -> None:
    """A warning on stderr for each SLO without data or budget, unless ``error`` says why."""
    for slo in evaluation.slos:
        if slo.status == "no_data" and slo.reason != error:
            print(f"guardian: warning: {slo.name}: no_data: {slo.reason}", file=sys.stderr)
        elif slo.status != "no_data" and slo.budget_note and slo.budget_note != error:
            print(
                f"guardian: warning: {slo.name}: budget unknown: {slo.budget_note}",
                file=sys.stderr,
            )


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
    start, end = moment(args.start, "--from"), moment(args.end, "--to")
    if end <= start:
        raise UsageError("--to: must be after --from")
    step = seconds(args.step, "--step")
    client = PrometheusClient(config.prometheus)
    try:
        settings = config.prometheus
        result = replay(
            config.slos, client, start, end, step, settings.source, settings.parallel_queries
        )
        if result.error:
            raise PrometheusUnavailable(result.error)
        books = playbooks_of(config)
        log = _change_log(client)
        decisions, error = replay_decisions(config, books, result.steps, client, log)
    finally:
        client.close()
    if error:
        raise PrometheusUnavailable(error)
    found = episodes(result.steps)
    if args.plot:
        from guardian.app.plot import plot_replay

        title = f"guardian backtest, {args.start} to {args.end}, step {args.step}"
        plot_replay(result.steps, found, Path(args.plot), title=title)
    doc = backtest_json(start, end, step, found, result.queries, decisions)
    emit(args.output, doc, backtest_table(found, decisions))
    return EXIT_OK


def _change_log(client: PrometheusClient) -> ChangeLog:
    """The change log from kube-state-metrics in the same Prometheus."""
    from guardian.evaluation.change_log import PrometheusChangeLog

    return PrometheusChangeLog(client)


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL) as YAML block scalars."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)

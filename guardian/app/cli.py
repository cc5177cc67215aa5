"""The ``guardian`` command: the parser, and errors turned into exit codes.

Input: the command line. Output: the exit code of the subcommand that ran: 0 ok, 1 an SLO
pages, 2 bad input (config or arguments), 3 a dependency (Prometheus, the store) cannot be
reached or answers badly, or ``eval`` is blind (every SLO no_data). A ``GuardianError``
becomes its message on stderr, one line per problem, never a traceback. The subcommands
live in ``guardian.app.commands`` and ``guardian.app.daemon.commands``, which register
their own parsers (in the order ``guardian --help`` lists them) and never call back here;
``guardian schema`` (the JSON Schema of the config files) is the one defined here.
Called by the ``guardian`` console script and ``guardian.__main__``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from guardian import __version__
from guardian.app.commands import approvals, cluster, evaluate, playbooks, switch
from guardian.app.daemon import commands as daemon
from guardian.config.spec import FileSpec
from guardian.errors import EXIT_OK, GuardianError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    args = parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except GuardianError as exc:
        for line in exc.message.splitlines():
            print(f"guardian: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return code


def parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    top = argparse.ArgumentParser(
        prog="guardian",
        description="Multi-window multi-burn-rate SLO alerts for Kubernetes control planes.",
        epilog="Exit codes: 0 ok, 1 an SLO pages, 2 bad input (config, arguments), "
        "3 a dependency unreachable or answering badly (Prometheus, the store), or blind "
        "(every SLO no_data).",
    )
    top.add_argument("--version", action="version", version=f"guardian {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    evaluate.add_parsers(sub)
    cluster.add_parsers(sub)
    playbooks.add_parsers(sub)
    approvals.add_parsers(sub)
    daemon.add_slack_parser(sub)
    switch.add_parsers(sub)
    daemon.add_run_parser(sub)
    schema = sub.add_parser("schema", help="print the JSON Schema of guardian/v1 config files")
    schema.set_defaults(handler=_cmd_schema)
    return top


def _cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(FileSpec.model_json_schema(), indent=2))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

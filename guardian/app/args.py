"""The flags several commands share, and the parsers of their values.

Input: an ``argparse`` parser (the flags) or a flag's text (the values). Output: the flags
declared on the parser (``-c/--config``, ``-o/--output``, the Kubernetes client's
``--kubeconfig/--context/--qps/--burst``, ``--as``); values as guardian uses them (times,
durations, ``--set K=V`` pairs, step numbers), or a ``UsageError`` naming the flag given.
Called by every module of ``guardian.app.commands``, by ``guardian.app.daemon.commands``
and by ``guardian.app.wiring`` (``actor``, for ``console_runner``); it calls none of them back.
"""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from guardian.durations import parse_duration
from guardian.errors import UsageError

Handler = Callable[[argparse.Namespace], int]
"""What runs a subcommand: the parsed arguments in, the exit code out."""

KUBECONFIG_FALLBACK = "$KUBECONFIG, ~/.kube/config"
"""Where the kubeconfig comes from without ``--kubeconfig``, as the console commands say it."""


def config_arg(parser: argparse.ArgumentParser) -> None:
    """``-c/--config``, required: the config file or directory."""
    parser.add_argument(
        "-c", "--config", required=True, help="config file or directory of *.yaml files"
    )


def format_arg(parser: argparse.ArgumentParser) -> None:
    """``-o/--output table|json``."""
    parser.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="output format"
    )


def kube_args(
    parser: argparse.ArgumentParser,
    fallback: str = "$KUBECONFIG",
    context_note: str = "",
    rate: bool = True,
) -> None:
    """``--kubeconfig`` and ``--context`` (and, with ``rate``, ``--qps`` and ``--burst``):
    how ``guardian.app.wiring.KubePool`` reaches the API server. ``fallback`` says where the
    kubeconfig comes from without the flag, ``context_note`` adds to ``--context``'s help."""
    parser.add_argument("--kubeconfig", help=f"kubeconfig file (default {fallback})")
    parser.add_argument(
        "--context", help=f"kubeconfig context (default: the current one){context_note}"
    )
    if rate:
        parser.add_argument(
            "--qps", type=float, default=5.0, help="API requests per second (default 5)"
        )
        parser.add_argument("--burst", type=int, default=10, help="token bucket burst (default 10)")


def actor_arg(parser: argparse.ArgumentParser) -> None:
    """``--as``: who is at the console, for the audit."""
    parser.add_argument(
        "--as", dest="actor", default=None, help="who you are, for the audit (default $USER)"
    )


def actor(args: argparse.Namespace) -> str:
    """``--as``, else ``$USER``, else the login name."""
    return str(args.actor or os.environ.get("USER") or getpass.getuser())


def moment(text: str, flag: str) -> datetime:
    """An RFC 3339 time given to ``flag`` (UTC when it names no zone)."""
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise UsageError(
            f"{flag}: must be an RFC 3339 time like 2024-12-11T23:30:00Z (got {text!r})"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def seconds(text: str, flag: str) -> int:
    """A Prometheus duration given to ``flag`` (``30s``, ``1h30m``), in seconds; the error
    names ``flag``."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def parse_sets(items: list[str]) -> dict[str, str]:
    """``--set K=V`` values as a mapping."""
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set {item}: must be KEY=VALUE")
        values[key.strip()] = value.strip()
    return values


def step_number(text: str) -> int:
    """A step number as people see it (1 is the first step)."""
    if not text.isdigit() or not 1 <= int(text) <= 999:
        raise argparse.ArgumentTypeError(f"{text!r} is not a step number (1, 2, ...)")
    return int(text)


def command(
    sub: Any, name: str, text: str, handler: Handler, output: bool = True, **more: Any
) -> argparse.ArgumentParser:
    """A subcommand on ``sub`` (``argparse`` sub-parsers) that reads the config (``-c``) and,
    with ``output``, writes a table or JSON (``-o``); ``handler`` runs it. ``more`` goes to
    ``add_parser`` (``description``...)."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=text, **more)
    config_arg(parser)
    if output:
        format_arg(parser)
    parser.set_defaults(handler=handler)
    return parser

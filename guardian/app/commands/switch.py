"""``guardian pause`` and ``guardian resume``: the kill switch from the console.

Input: parsed arguments. Output: the switch set through ``guardian.audit.switch.KillSwitch``
(which audits who did it, via ``console``) and one line on stdout. Called by
``guardian.app.cli`` (``add_parsers``).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from guardian.app.args import actor, actor_arg, command
from guardian.app.wiring import opened
from guardian.audit.switch import KillSwitch
from guardian.errors import EXIT_OK


def add_parsers(sub: Any) -> None:
    """Register ``pause`` and ``resume`` on ``sub``."""
    for verb, text in (
        ("pause", "kill switch: propose and run nothing until resume"),
        ("resume", "lift the kill switch"),
    ):
        switch = command(sub, verb, text, _cmd_switch, output=False)
        actor_arg(switch)
        switch.set_defaults(verb=verb)


def _cmd_switch(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    with opened(args.config) as (_, store):
        switch = KillSwitch(store)
        if args.verb == "pause":
            switch.pause(actor(args), "console", now)
        else:
            switch.resume(actor(args), "console", now)
    print("guardian paused: nothing is proposed or run" if args.verb == "pause" else "resumed")
    return EXIT_OK

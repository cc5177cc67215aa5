"""Act 2 of ``make demo``: the live run on its own lab, start to finish."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.lab_fixture import ROOT

pytestmark = pytest.mark.lab


def test_the_live_act_pages_throttles_pauses_recovers_and_stops_everything() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "incident-2024-12-11" / "live.py")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-8000:]  # the post-mortem
    timeline = done.stdout.split("timeline (seconds from the fault)")[1]
    events = [
        (float(m.group(1)), m.group(2)) for m in re.finditer(r"^\s+([\d.]+)  (\w+)", timeline, re.M)
    ]
    order = [what for _, what in events]
    assert order == [
        "fault", "PAGE", "proposed", "approved", "throttled", "approved", "paused", "verified",
        "denied", "recovered",
    ]  # fmt: skip
    at = dict((what, when) for when, what in reversed(events))
    assert at["PAGE"] < 120 and at["paused"] < 180, at
    shed = re.search(r"requests shed for everyone else\s+([\d.]+)", done.stdout)
    assert shed is not None and float(shed.group(1)) < 5, "others are no longer shed"
    assert "the lab and guardian are stopped" in done.stdout
    assert "Block Kit JSON" in done.stdout
    leftovers = subprocess.run(
        ["pgrep", "-f", "guardian-live-"], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout == "", "nothing of the demo keeps running"

"""Act 2 of ``make demo``: the live run on its own lab, start to finish, production windows."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.lab_fixture import ROOT

pytestmark = pytest.mark.lab

TARGET = "DaemonSet telemetry/telemetry-agent"


def test_the_live_act_halts_the_change_then_throttles_and_stops_everything() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "incident-2024-12-11" / "live.py")],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-8000:]  # the post-mortem
    # the halt came from the change guard, for the telemetry DaemonSet, without a person
    fired = re.search(r"^guardian: (\S+): propose: change guard: (.*): run halt-change$", out, re.M)
    assert fired is not None, out
    assert fired.group(2).startswith(f"{TARGET} began "), fired.group(2)
    slo = fired.group(1)
    assert f": halt-change for {TARGET} (SLO {slo})" in out
    assert f"step 1 (halt) applied to {TARGET}, approved by guardian (auto)" in out
    assert "note: created" in out and "quarantined" in out
    _talkers(out)
    timeline = out.split("timeline (seconds from the fault)")[1]
    found = re.finditer(r"^\s+([\d.]+)  (\w+):", timeline, re.M)
    events = [(float(m.group(1)), m.group(2)) for m in found]
    at = {what: when for when, what in events}
    assert sorted(at) == sorted(
        ["fault", "fired", "halted", "verified", "approved", "throttled", "fell"]
    ), timeline
    assert at["fault"] < at["fired"] <= at["halted"] <= at["verified"], timeline
    assert at["verified"] < at["approved"] <= at["throttled"] <= at["fell"], timeline
    assert f"fired: change guard on {slo} blames {TARGET}" in timeline
    assert re.search(r"halt applied \d+s after the fault \(goal: 180 s, (met|MISSED)\)", out)
    shed = re.search(r"requests shed for everyone else\s+([\d.]+)", out)
    assert shed is not None and float(shed.group(1)) < 5, "others are no longer shed"
    assert "the lab and guardian are stopped" in out
    assert "Block Kit JSON" in out
    leftovers = subprocess.run(
        ["pgrep", "-f", "guardian-live-"], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout == "", "nothing of the demo keeps running"


def _talkers(out: str) -> None:
    """APF's top talkers, from the execution's context: the agents lead. The context carries
    them only when a step of halt-change reads ``{{ talkers }}``; without that the demo says
    so, and this checks it says so."""
    reads = "{{ talkers }}" in (ROOT / "playbooks" / "halt-change.yaml").read_text()
    if not reads:
        assert "top talkers: none in the execution's context" in out
        return
    table = out.split("top talkers (APF's dump_requests when the run was proposed):\n")[1]
    first = table.splitlines()[0].split()
    assert first[1] == "system:serviceaccount:telemetry:telemetry-agent", table
    assert float(first[0].rstrip("%")) > 50, table

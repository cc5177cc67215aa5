"""Replay the 2024-12-11 control-plane incident through guardian (``make demo``).

1. Generate the bundled incident metrics (``generate.py``) and backfill them into TSDB blocks
   with promtool, cached under ``~/.cache/guardian/incident-2024-12-11/<key>/``;
2. start Prometheus on 127.0.0.1 (a free port) over a copy of those blocks;
3. run ``guardian backtest`` over the incident day (``guardian.yaml`` and the change guard of
   ``change-guard.yaml``), writing a burn-rate chart;
4. print guardian's alerts and decisions (the change guard's halt-change among them) beside
   the responders' timeline, and stop Prometheus.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from guardian.testing.prometheus import PrometheusServer, backfill

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PST = timezone(timedelta(hours=-8), "PST")
DAY = datetime(2024, 12, 11, tzinfo=PST)
FROM = DAY.replace(hour=12)
TO = DAY.replace(hour=22)
MITIGATION = DAY.replace(hour=15, minute=27)

HUMAN = [
    (DAY.replace(hour=15, minute=12), "new telemetry service deployed"),
    (DAY.replace(hour=15, minute=16), "slight impact begins"),
    (MITIGATION, "engineers start mitigating"),
    (DAY.replace(hour=15, minute=40), "peak impact: API latency explodes, then DNS fails"),
    (DAY.replace(hour=16, minute=36), "first cluster recovering"),
    (DAY.replace(hour=17, minute=36), "API substantially recovered"),
    (DAY.replace(hour=19, minute=38), "all recovered"),
]


def main() -> int:
    """Run the demo; returns the exit code."""
    args = _args()
    started = time.monotonic()
    blocks = _blocks(Path(args.cache).expanduser())
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="guardian-demo-") as tmp:
        tsdb = Path(tmp) / "tsdb"
        shutil.copytree(blocks, tsdb)
        with PrometheusServer(tsdb) as prometheus:
            print(f"prometheus: {prometheus.url} (bundled incident data)")
            config = _config(Path(tmp) / "config", prometheus.url)
            report = _backtest(config, out / "incident-2024-12-11.png")
    _print_timeline(report)
    print(f"\nchart: {out / 'incident-2024-12-11.png'}")
    print(f"demo finished in {time.monotonic() - started:.0f}s; Prometheus stopped.")
    return 0


def _config(config: Path, url: str) -> Path:
    """The example's two files, against the Prometheus at ``url`` and the shipped playbooks."""
    config.mkdir()
    text = (HERE / "guardian.yaml").read_text()
    # a replay's range queries take seconds on a busy machine: more room than the 10s default
    local = text.replace("  url: http://127.0.0.1:9090\n", f"  url: {url}\n  timeout: 1m\n")
    assert local != text, "guardian.yaml: prometheus.url is no longer the placeholder"
    (config / "guardian.yaml").write_text(local)
    guard = (HERE / "change-guard.yaml").read_text()
    (config / "change-guard.yaml").write_text(
        guard.replace("../../playbooks", str(ROOT / "playbooks"))
    )
    return config


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="~/.cache/guardian", help="cache directory")
    return parser.parse_args()


def _blocks(cache: Path) -> Path:
    """TSDB blocks of the incident, built once per version of the generator."""
    key = hashlib.sha256((HERE / "generate.py").read_bytes()).hexdigest()[:12]
    target = cache / "incident-2024-12-11" / key / "tsdb"
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".lock").open("w") as lock:  # one builder; the others wait for it
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("incident data: another process is building it; waiting ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").exists():
            print(f"incident data: cached in {target}")
            return target
        return _build_blocks(target)


def _build_blocks(target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="guardian-incident-") as tmp:
        om = Path(tmp) / "incident.om"
        print("incident data: generating metrics of 2024-12-09 .. 2024-12-11 (PST) ...")
        subprocess.run([sys.executable, str(HERE / "generate.py"), "--out", str(om)], check=True)
        print("incident data: backfilling with promtool ...")
        backfill(om, target, max_block_duration="24h")
    (target / ".complete").touch()
    return target


def _backtest(config: Path, plot: Path) -> dict[str, object]:
    cmd = [
        str(Path(sys.executable).parent / "guardian"),
        "backtest",
        "-c",
        str(config),
        "--from",
        FROM.isoformat(),
        "--to",
        TO.isoformat(),
        "--step",
        "1m",
        "--plot",
        str(plot),
        "-o",
        "json",
    ]
    print(
        "$ guardian backtest -c examples/incident-2024-12-11 "
        f"--from {FROM.isoformat()} --to {TO.isoformat()} --step 1m --plot {plot.name} -o json"
    )
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(done.returncode)
    report: dict[str, object] = json.loads(done.stdout)
    return report


def _pst(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(PST)


def _print_timeline(report: dict[str, object]) -> None:
    episodes, decisions = report["episodes"], report["decisions"]
    assert isinstance(episodes, list) and isinstance(decisions, list)
    events: list[tuple[datetime, str, str]] = [(t, what, "") for t, what in HUMAN]
    for e in episodes:
        pair = f"{e['long']}/{e['short']}"
        events.append((_pst(e["start"]), "", f"{e['severity'].upper()} {e['slo']} ({pair})"))
        if e["end"]:
            events.append((_pst(e["end"]), "", f"resolved {e['slo']} {e['severity']} ({pair})"))
    for d in decisions:
        events.append((_pst(d["at"]), "", _decision(d)))
    print(f"\n{'PST':<6} {'responders (public timeline)':<52} guardian (backtest)")
    print(f"{'-' * 5:<6} {'-' * 50:<52} {'-' * 40}")
    for moment, human, machine in sorted(events, key=lambda x: (x[0], x[1] == "")):
        print(f"{moment:%H:%M}  {human:<52} {machine}")
    print()
    _print_halt(decisions)
    pages = [_pst(e["start"]) for e in episodes if e["severity"] == "page"]
    if not pages:
        print("guardian would not have paged in this window.")
        return
    first = min(pages)
    lead = (MITIGATION - first).total_seconds() / 60
    impact = (first - DAY.replace(hour=15, minute=16)).total_seconds() / 60
    when = "before" if lead >= 0 else "after"
    print(
        f"guardian's first page: {first:%H:%M} PST, {impact:.0f} min after impact began and "
        f"{abs(lead):.0f} min {when} engineers started mitigating (15:27)."
    )
    for slo in sorted({e["slo"] for e in episodes}):
        mine = [_pst(e["start"]) for e in episodes if e["slo"] == slo and e["severity"] == "page"]
        if mine:
            print(f"  first page of {slo:<22} {min(mine):%H:%M} PST")


def _decision(d: dict[str, Any]) -> str:
    """A decision of the backtest as one line of the timeline."""
    if d["kind"] != "propose":
        reason = d["reason"] if len(d["reason"]) <= 40 else d["reason"][:39] + "…"
        return f"notify {d['slo']}: {reason}"
    change = d["change"]
    what = f" {change['kind']} {change['namespace']}/{change['name']}" if change else ""
    where = f" in {change['cluster']}" if change and change["cluster"] else ""
    return f"PROPOSE {d['playbook']}{what}{where} ({d['slo']})"


def _print_halt(decisions: list[dict[str, object]]) -> None:
    """When the change guard first proposed halt-change, against the change and mitigation."""
    halts = [
        _pst(str(d["at"]))
        for d in decisions
        if d["kind"] == "propose" and d["playbook"] == "halt-change"
    ]
    if not halts:
        print("the change guard would not have proposed halt-change in this window.")
        return
    first = min(halts)
    deployed = HUMAN[0][0]
    lead = (MITIGATION - first).total_seconds() / 60
    print(
        f"change guard: halt-change first proposed at {first:%H:%M} PST, "
        f"{(first - deployed).total_seconds() / 60:.0f} min after the DaemonSet was deployed "
        f"(15:12) and {lead:.0f} min before engineers started mitigating (15:27)."
    )


if __name__ == "__main__":
    sys.exit(main())

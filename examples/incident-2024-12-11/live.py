"""Act 2 of ``make demo``: guardian halts the 2024-12-11 failure mode live, on the lab.

1. ``lab up`` (a real etcd, kube-apiserver, controllers, KWOK nodes and Prometheus on
   127.0.0.1) in a temporary directory;
2. ``guardian run`` as a daemon (every 5 s) with the shipped SLOs (``config/slos.yaml``,
   copied as it is: 30-day periods, the SRE Workbook's windows, the overload-aware
   ``apiserver-*-overload`` SLOs), the shipped ``change_guard`` (copied from
   ``config/policy.yaml``: 10m/2m at factor 2, baseline 1h x4, guard window 30m) and the
   shipped playbooks (``playbooks/``); no window is compressed;
3. ``lab load`` creates the telemetry DaemonSet whose agents flood the API server with
   cluster-wide LISTs; APF starts rejecting requests (429s);
4. guardian's change guard fires, blames DaemonSet telemetry/telemetry-agent and proposes
   ``halt-change``; its first step (``approval: auto``) quarantines the DaemonSet without a
   human (nodeSelector matching no node: its agents leave every node);
5. the demo prints who floods the API server (the execution's context ``talkers``, from APF),
   approves the second step (throttle the offender) from the console as an on-call engineer
   would from Slack (``guardian approvals approve ... --no-run``), waits for it to be applied,
   prints the timeline in seconds from the fault and stops everything.

Goal: the halt applied within 3 minutes of the fault (printed beside the figure). The times
are those of guardian's own audit rows. Tested by tests/test_demo.py (a lab test).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from guardian.approval.blocks import render
from guardian.audit.records import AuditRow, Execution
from guardian.clients.prometheus import PrometheusClient
from guardian.clients.store import Store
from guardian.config import load_config
from guardian.durations import format_duration
from guardian.evaluation.change_guard import guarded
from guardian.evaluation.instant import evaluate
from guardian.playbooks import load_playbooks

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LAB = ROOT / "lab" / "lab"
GUARDIAN = Path(sys.executable).parent / "guardian"
PLAYBOOK = "halt-change"
TARGET = "DaemonSet telemetry/telemetry-agent"
ONCALL = "sre-oncall"
GOAL = 180
"""Seconds from the fault to the halt applied (issue 13's goal)."""

DEMO = """\
# Written by the demo: where Prometheus and the store are, the daemon's settings.
version: guardian/v1
prometheus: {prometheus}
evaluation: {evaluation}
policy:
  playbooks: [{playbooks}]
  store: {{url: "sqlite:///{store}"}}
  approval_timeout: 15m
daemon:
  interval: 5s
  progress_interval: 1s
  lease: {{name: guardian-demo, namespace: default, duration: 6s, renew_deadline: 4s,
          retry_period: 1s}}
"""


def main() -> int:
    """Run act 2; returns the exit code."""
    args = _args()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="guardian-live-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "GUARDIAN_LAB_DIR": str(root / "lab")}
        env.pop("SLACK_BOT_TOKEN", None)
        print(f"\n=== act 2: live, on the lab ({args.nodes} KWOK nodes) ===")
        _run([str(LAB), "up", "--nodes", str(args.nodes)], env, show=True)
        daemon: subprocess.Popen[bytes] | None = None
        try:
            config = _config(root)
            env["KUBECONFIG"] = str(root / "lab" / "kubeconfig")
            log = root / "guardian.log"
            daemon = subprocess.Popen(
                [str(GUARDIAN), "run", "-c", str(config), "--listen", "127.0.0.1:0",
                 "--identity", "guardian-demo", "--log-format", "json"],
                env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=log.open("w"),
            )  # fmt: skip
            _wait(lambda: "is the leader" in log.read_text(), 60, "guardian leads")
            print(
                "guardian: running as a daemon (every 5 s) with config/slos.yaml, the "
                "change_guard of config/policy.yaml and playbooks/ as shipped"
            )
            code = _act(root, config, env, log, args.load_qps)
        finally:
            try:
                _stop(daemon)
            finally:
                _run([str(LAB), "load", "--stop"], env, check=False)
                _run([str(LAB), "down"], env, check=False)
    print(f"act 2 finished in {time.monotonic() - began:.0f}s; the lab and guardian are stopped.")
    return code


def _stop(daemon: subprocess.Popen[bytes] | None, grace: float = 60) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds: a daemon still verifying a step when it
    is told to stop finishes the verification first (up to the step's ``within``)."""
    if daemon is None or daemon.poll() is not None:
        return
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        print(f"guardian did not stop within {grace:.0f}s of SIGTERM; killed", file=sys.stderr)
        daemon.kill()
        daemon.wait(timeout=30)


def _config(root: Path) -> Path:
    """The daemon's config directory: the shipped SLOs and change guard, copied as they are,
    and the lab's Prometheus, a store and the daemon's settings."""
    config = root / "config"
    config.mkdir()
    (config / "slos.yaml").write_text((ROOT / "config" / "slos.yaml").read_text())
    guard = _section((ROOT / "config" / "policy.yaml").read_text(), "change_guard")
    (config / "change-guard.yaml").write_text(
        "# The change_guard section of config/policy.yaml, as shipped.\n"
        f"version: guardian/v1\n{guard}"
    )
    lab = yaml.safe_load((root / "lab" / "guardian.yaml").read_text())
    (config / "demo.yaml").write_text(
        DEMO.format(
            prometheus=json.dumps(lab["prometheus"]),
            evaluation=json.dumps(lab.get("evaluation") or {}),
            playbooks=ROOT / "playbooks",
            store=root / "guardian.db",
        )
    )
    return config


def _section(text: str, key: str) -> str:
    """The top-level section ``key`` of a YAML file's text, its comments included."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i][:1] not in ("", " ", "#", "\n")),
        len(lines),
    )
    return "".join(lines[start:end])


def _act(root: Path, config: Path, env: dict[str, str], log: Path, qps: float) -> int:
    store = Store.open(f"sqlite:///{root / 'guardian.db'}")
    try:
        print("\n$ lab load   # the telemetry DaemonSet rolls out; its agents LIST everything")
        fault = datetime.now(UTC)
        _run([str(LAB), "load", "--filler-pods", "300", "--per-pod-qps", str(qps)], env)
        events = [(fault, "fault: lab load creates DaemonSet telemetry/telemetry-agent")]
        ex = _halt(store, events)
        _throttle(store, config, env, ex, events)
        _readings(root)
        _timeline(events, store, ex.id)
        return 0
    except SystemExit:
        _post_mortem(store, log)
        raise
    finally:
        store.close()


def _halt(store: Store, events: list[tuple[datetime, str]]) -> Execution:
    """From the change guard's proposal to the halt applied without approval."""
    fired = _wait_for(lambda: _halt_decision(store), 300, "halt-change proposed")
    others = [r for r in _guard_decisions(store) if r.seq != fired.seq]
    for row in [fired, *others]:
        print(f"guardian: {row.detail['slo']}: {row.detail['decision']}: {row.detail['reason']}")
    ex = _wait_for(lambda: _execution(store), 60, "a halt-change execution")
    change = ex.context.get("change") or {}
    print(f"execution {ex.id}: {ex.playbook} for {ex.target} (SLO {ex.slo})")
    halted = _wait_for(lambda: _row(store, ex.id, "applied", 0), 120, "the halt applied")
    _show_halt(store, ex.id)
    _talkers(ex)
    assert isinstance(ex, Execution)
    events.append(
        (fired.at, f"fired: change guard on {fired.detail['slo']} blames {_name(change)}")
    )
    events.append((halted.at, "halted: DaemonSet quarantined by step 1 (approval: auto)"))
    return ex


def _throttle(
    store: Store, config: Path, env: dict[str, str], ex: Execution, events: list[Any]
) -> None:
    """Step 2 approved from the console and applied; then the burn falls."""
    verified = _wait_for(lambda: _row(store, ex.id, "step_succeeded", 0), 600, "the halt verified")
    asked = _wait_for(lambda: _awaiting(store, ex.id, 1), 60, "step 2 awaiting approval")
    _console(config, env, "approve", ex.id, 2)
    approved = _wait_for(lambda: _row(store, ex.id, "approved", 1), 30, "the approval")
    throttled = _wait_for(lambda: _row(store, ex.id, "applied", 1), 120, "the throttle")
    _slack_preview(asked, store)
    fell, why = _wait_for(lambda: _fell(config, ex.slo), 480, "the burn to fall")
    print(f"guardian's evaluation: {ex.slo}: {why}")
    print("the change guard's first decision for each SLO it judged:")
    for row in _guard_decisions(store):
        print(f"  {row.detail['slo']}: {row.detail['decision']}: {row.detail['reason']}")
    events += [
        (verified.at, "verified: step 1's checks hold (quarantined, short-window burn lower)"),
        (approved.at, f"approved: throttle-offender ({ONCALL}, console)"),
        (throttled.at, "throttled: telemetry/telemetry-agent has its own 1-share APF level"),
        (fell, f"fell: {why}"),
    ]


def _fell(config: Path, slo_name: str) -> tuple[datetime, str] | None:
    """When the SLO's burn on the change guard's windows is back under the guard's factor,
    read as the daemon reads it (``guarded``, ``evaluate``): the time and the numbers."""
    loaded = load_config(config)
    guard = loaded.change_guard
    assert guard is not None
    slo = guarded(loaded.slo(slo_name), guard)
    evaluation, _ = evaluate([slo], PrometheusClient(loaded.prometheus), None, "raw")
    result = evaluation.slos[0]
    pair = result.windows[0]
    if result.status == "no_data" or pair.short_burn is None or pair.firing:
        return None
    if pair.short_burn >= pair.factor:
        return None
    short, long = format_duration(pair.short), format_duration(pair.long)
    return datetime.now(UTC), (
        f"{short} burn {pair.short_burn:.2f} under the change guard's factor {pair.factor:g} "
        f"({long} burn {pair.long_burn or 0.0:.2f})"
    )


def _guard_decisions(store: Store) -> list[AuditRow]:
    """The change guard's decisions so far, one per SLO (the first)."""
    rows: dict[str, AuditRow] = {}
    for row in store.history(limit=2000):
        if row.kind == "decision" and "change guard" in str(row.detail.get("reason")):
            rows.setdefault(str(row.detail.get("slo")), row)
    return sorted(rows.values(), key=lambda r: r.seq)


def _name(change: dict[str, Any]) -> str:
    return f"{change.get('kind')} {change.get('namespace')}/{change.get('name')}"


def _halt_decision(store: Store) -> AuditRow | None:
    """The first decision row proposing halt-change."""
    for row in store.history(limit=2000):
        detail = row.detail
        proposes = row.kind == "decision" and detail.get("decision") == "propose"
        if proposes and detail.get("playbook") == PLAYBOOK:
            return row
    return None


def _execution(store: Store) -> Execution | None:
    found = store.executions(playbook=PLAYBOOK)
    return found[-1] if found else None


def _row(store: Store, execution: str, kind: str, step: int) -> AuditRow | None:
    for row in store.history(execution, limit=2000):
        if row.kind == kind and row.detail.get("step") == step:
            return row
    return None


def _awaiting(store: Store, execution: str, step: int) -> Execution | None:
    ex = store.get(execution)
    if ex.state in ("failed", "succeeded", "denied", "expired"):
        raise SystemExit(f"demo: execution {execution} ended {ex.state}: {ex.message}")
    return ex if ex.state == "awaiting_approval" and ex.step == step else None


def _show_halt(store: Store, execution: str) -> None:
    """What step 1 changed, from its plan, and who approved it (nobody: approval: auto)."""
    record = next(s for s in store.steps(execution) if s.step == 0)
    plan = record.plan or {}
    rows = [r for r in store.history(execution) if r.kind == "approved"]
    who = [f"{r.actor} ({r.via})" for r in rows if r.detail.get("step") == 0]
    print(f"guardian: step 1 (halt) applied to {plan.get('target')}, approved by "
          f"{', '.join(who) or 'nobody'}: approval: auto, no human asked")  # fmt: skip
    for note in plan.get("notes") or []:
        print(f"  note: {note}")


def _talkers(ex: Execution) -> None:
    """Who floods the API server, as APF saw it when the run was proposed."""
    talkers = ex.context.get("talkers")
    if not talkers:
        print("top talkers: none in the execution's context (no step of its playbook reads "
              "`talkers`)")  # fmt: skip
        return
    print("top talkers (APF's dump_requests when the run was proposed):")
    for talker in talkers[:5]:
        mark = f"  protected: {talker['why']}" if talker.get("protected") else ""
        print(f"  {talker['share']:6.1%}  {talker['user']:<50} "
              f"{talker['priority_level']}{mark}")  # fmt: skip


def _post_mortem(store: Store, log: Path) -> None:
    """What guardian saw last, printed when a step of the act does not come in time."""
    rows = [r for r in store.history(limit=2000) if r.kind in ("evaluation", "decision")][-12:]
    print("\nguardian's last status changes and decisions:", file=sys.stderr)
    for row in rows:
        detail = row.detail
        what = detail.get("status") or f"{detail.get('decision')} {detail.get('playbook') or ''}"
        print(f"  {row.at:%H:%M:%S}  {detail.get('slo')}: {what}  "
              f"{detail.get('reason', '')}", file=sys.stderr)  # fmt: skip
    for ex in store.executions():
        print(f"  execution {ex.id} {ex.playbook} step {ex.step}: {ex.state} {ex.message}",
              file=sys.stderr)  # fmt: skip
    lines = log.read_text(errors="replace").splitlines()[-15:]
    print("guardian's log, last lines:", *(f"  {line[:300]}" for line in lines), sep="\n",
          file=sys.stderr)  # fmt: skip


def _console(config: Path, env: dict[str, str], verb: str, execution: str, step: int) -> None:
    cmd = [str(GUARDIAN), "approvals", verb, execution, "--step", str(step)]
    cmd += ["-c", str(config), "--as", ONCALL]
    print(f"$ guardian approvals {verb} {execution} --step {step} --as {ONCALL}")
    done = subprocess.run([*cmd, "--no-run"], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"demo: {verb} failed: {done.stderr.strip()}")


def _readings(root: Path) -> None:
    """What the API server does now, from the lab's Prometheus."""
    import requests

    port = json.loads((root / "lab" / "state.json").read_text())["ports"]["prometheus"]
    rejected = "apiserver_flowcontrol_rejected_requests_total"
    dispatched = "apiserver_flowcontrol_dispatched_requests_total"
    throttle = 'priority_level=~"guardian-throttle-.*"'
    others = 'priority_level!~"guardian-throttle-.*"'
    queries = {
        "requests shed for everyone else": f"sum(rate({rejected}{{{others}}}[30s]))",
        "offender requests refused by its own level": f"sum(rate({rejected}{{{throttle}}}[30s]))",
        "offender requests served": f"sum(rate({dispatched}{{{throttle}}}[30s]))",
    }
    print("\nthe API server now (requests per second over 30 s):")
    for label, promql in queries.items():
        answer = requests.get(
            f"http://127.0.0.1:{port}/api/v1/query",
            params={"query": promql + " or vector(0)"},
            timeout=10,
        ).json()["data"]["result"]
        value = float(answer[0]["value"][1]) if answer else 0.0
        print(f"  {label:<50} {value:8.1f}")


def _slack_preview(ex: Execution, store: Store) -> None:
    """The approval message of step 2 (``ex`` as it was while it waited) that guardian posts
    when ``slack:`` is configured, with the plan it applied."""
    books = load_playbooks([ROOT / "playbooks"], _actions())
    record = next(s for s in store.steps(ex.id) if s.step == 1)
    plan = (
        {"target": record.plan["target"], "changes": record.plan["changes"]} if record.plan else {}
    )
    text, blocks = render(
        ex, books[PLAYBOOK], {"plan": plan}, store, "awaiting_approval", as_of=ex.updated_at
    )
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "approval-message.json").write_text(
        json.dumps({"text": text, "blocks": blocks}, indent=2)
    )
    print("\nWith a slack: section, step 2's approval would have been a message with Approve:")
    for block in blocks:
        if block["type"] in ("header", "section"):
            print("  | " + block["text"]["text"].replace("\n", "\n  | "))
    print(f"  (its Block Kit JSON: {out / 'approval-message.json'})")


def _actions() -> dict[str, Any]:
    from guardian.actions import CATALOGUE

    return {name: action.params for name, action in CATALOGUE.items()}


def _timeline(events: list[tuple[datetime, str]], store: Store, execution: str) -> None:
    fault = events[0][0]
    seconds = [((at - fault).total_seconds(), what) for at, what in events]
    print("\ntimeline (seconds from the fault)")
    for when, what in sorted(seconds):
        print(f"  {when:6.1f}  {what}")
    at = {what.split(":")[0]: when for when, what in seconds}
    verdict = "met" if at["halted"] <= GOAL else "MISSED"
    print(
        f"\nhalt applied {at['halted']:.0f}s after the fault (goal: {GOAL} s, {verdict}); the "
        f"change guard fired at {at['fired']:.0f}s; the offender throttled at "
        f"{at['throttled']:.0f}s (after a person approved); the burn fell at {at['fell']:.0f}s."
    )
    final = store.get(execution)
    print(f"execution {execution}: {final.state} ({final.message or 'no message'})")


def _wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(0.5)
    raise SystemExit(f"demo: no {what} within {timeout:.0f}s")


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    _wait_for(lambda: True if check() else None, timeout, what)


def _run(cmd: list[str], env: dict[str, str], check: bool = True, show: bool = False) -> None:
    """Run a lab command; with ``show`` its progress (stderr) is printed as it comes."""
    stderr = None if show else subprocess.PIPE
    done = subprocess.run(
        cmd, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, check=False
    )
    if check and done.returncode != 0:
        said = "see above" if show else done.stderr.strip()[-2000:]
        raise SystemExit(f"demo: {' '.join(cmd[-2:])} failed: {said}")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=6, help="KWOK nodes (default 6)")
    parser.add_argument(
        "--load-qps", type=float, default=60, help="LISTs per second per agent (default 60)"
    )
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())

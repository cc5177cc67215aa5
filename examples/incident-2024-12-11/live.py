"""Act 2 of ``make demo``: guardian stops the 2024-12-11 failure mode live, on the lab.

1. ``lab up`` (a real etcd, kube-apiserver, controllers, KWOK nodes and Prometheus on
   127.0.0.1) in a temporary directory;
2. ``guardian run`` as a daemon with time-compressed windows (2 min / 10 s) and the shipped
   playbooks;
3. ``lab load`` rolls out the telemetry DaemonSet whose agents flood the API server with
   cluster-wide LISTs, and the API server starts shedding requests (APF 429s);
4. guardian pages on ``apiserver-shedding`` and proposes ``control-plane-overload``; the demo
   approves its first two steps from the console (``guardian approvals approve``), as an
   on-call engineer would from Slack, and denies the third once the burn has stopped;
5. the offender is throttled (its own APF priority level) and its rollout paused; shedding
   stops; the timeline is printed in seconds from the fault, and everything is stopped.
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
from pathlib import Path
from typing import Any

from guardian.approval.blocks import render
from guardian.audit.records import Execution
from guardian.clients.store import Store
from guardian.playbooks import load_playbooks

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LAB = ROOT / "lab" / "lab"
GUARDIAN = Path(sys.executable).parent / "guardian"
SLO = "apiserver-shedding"
PLAYBOOK = "control-plane-overload"
ONCALL = "sre-oncall"

CONFIG = """\
# Written by the demo: the SLO, policy and daemon settings for act 2.
version: guardian/v1
slos:
  - name: {slo}
    description: Requests the API server sheds (APF 429s), except the ones guardian throttles.
    objective: 99
    period: 1h
    windows: lab-fast
    labels: {{tier: control-plane}}
    sli:
      ratio:
        errors: >-
          sum(rate(apiserver_flowcontrol_rejected_requests_total{{
          priority_level!~"guardian-throttle-.*"}}[{{{{window}}}}])) or vector(0)
        total: sum(rate(apiserver_request_total{{job="apiserver"}}[{{{{window}}}}]))
policy:
  playbooks: [{playbooks}]
  store: {{url: "sqlite:///{store}"}}
  approval_timeout: 10m
daemon:
  interval: 5s
  progress_interval: 1s
  lease: {{name: guardian-demo, namespace: default, duration: 6s, renew_deadline: 4s,
          retry_period: 1s}}
"""


class Clock:
    """Seconds since the fault started, and the timeline."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.events: list[tuple[float, str]] = []

    def mark(self, what: str) -> float:
        at = time.monotonic() - self.start
        self.events.append((at, what))
        print(f"  +{at:5.1f}s  {what}", flush=True)
        return at


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
                env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
            )  # fmt: skip
            _wait(lambda: "is the leader" in log.read_text(), 60, "guardian leads")
            print("guardian: running as a daemon (evaluates every 5 s, windows 2m/10s)")
            code = _act(root, config, env, log, args.load_qps)
        finally:
            if daemon is not None and daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=120)
            _run([str(LAB), "load", "--stop"], env, check=False)
            _run([str(LAB), "down"], env, check=False)
    print(f"act 2 finished in {time.monotonic() - began:.0f}s; the lab and guardian are stopped.")
    return code


def _act(root: Path, config: Path, env: dict[str, str], log: Path, qps: float) -> int:
    store = Store.open(f"sqlite:///{root / 'guardian.db'}")
    clock = Clock()
    try:
        print("\n$ lab load   # the telemetry DaemonSet rolls out; its agents LIST everything")
        _run([str(LAB), "load", "--filler-pods", "300", "--per-pod-qps", str(qps)], env)
        clock.mark("fault: telemetry-agent DaemonSet rolling out")
        _wait(lambda: _status(store) == "page", 180, "a page")
        clock.mark(f"PAGE {SLO} (guardian's evaluation)")
        ex = _wait_for(lambda: _execution(store, "awaiting_approval", 0), 60, "a proposal")
        clock.mark(f"proposed {PLAYBOOK} (execution {ex.id}); step 1 waits for approval")
        proposed = ex
        _console(config, env, "approve", ex.id, 1)
        clock.mark(f"approved throttle-offender ({ONCALL}, console)")
        _wait(lambda: _applied(store, ex.id, 0), 60, "the throttle")
        clock.mark("throttled: telemetry/telemetry-agent has its own 1-share APF level")
        _wait_for(lambda: _execution(store, "awaiting_approval", 1), 60, "step 2")
        _console(config, env, "approve", ex.id, 2)
        clock.mark(f"approved pause-rollout ({ONCALL}, console)")
        _wait(lambda: _applied(store, ex.id, 1), 60, "the pause")
        clock.mark("paused: the DaemonSet's rollout is frozen (updateStrategy OnDelete)")
        _wait(lambda: _step_done(store, ex.id, 1), 240, "verify: the burn falls")
        clock.mark("verified: the short-window burn rate fell")
        _wait_for(lambda: _execution(store, "awaiting_approval", 2), 60, "step 3")
        _console(config, env, "deny", ex.id, 3)
        clock.mark("denied shed-nodes: the burn has stopped, no need to shed")
        _wait(lambda: _status(store) in ("ok", "ticket"), 300, "the page to resolve")
        clock.mark(f"recovered: {SLO} is {_status(store)}, no longer paging")
        _readings(root)
        _slack_preview(proposed, store, root)
        _timeline(clock, store, ex.id)
        return 0
    except SystemExit:
        _post_mortem(store, log)
        raise
    finally:
        store.close()


def _post_mortem(store: Store, log: Path) -> None:
    """What guardian saw last, printed when a step of the act does not come in time."""
    rows = [r for r in store.history() if r.kind == "evaluation"][-6:]
    print("\nguardian's last status changes:", file=sys.stderr)
    for row in rows:
        detail = row.detail
        print(f"  {row.at:%H:%M:%S}  {detail.get('slo')}: {detail.get('status')}  "
              f"{detail.get('reason', '')}", file=sys.stderr)  # fmt: skip
    lines = log.read_text(errors="replace").splitlines()[-15:]
    print("guardian's log, last lines:", *(f"  {line[:300]}" for line in lines), sep="\n",
          file=sys.stderr)  # fmt: skip


def _config(root: Path) -> Path:
    config = root / "config"
    config.mkdir()
    (config / "lab.yaml").write_text((root / "lab" / "guardian.yaml").read_text())
    (config / "demo.yaml").write_text(
        CONFIG.format(slo=SLO, playbooks=ROOT / "playbooks", store=root / "guardian.db")
    )
    return config


def _status(store: Store) -> str:
    rows = [r for r in store.history() if r.kind == "evaluation" and r.detail.get("slo") == SLO]
    return str(rows[-1].detail["status"]) if rows else ""


def _execution(store: Store, state: str, step: int) -> Execution | None:
    for ex in store.executions([state]):
        if ex.playbook == PLAYBOOK and ex.step == step:
            return ex
    return None


def _applied(store: Store, execution: str, step: int) -> bool:
    return any(s == step for s, _ in store.applied_phases(execution))


def _step_done(store: Store, execution: str, step: int) -> bool:
    return any(
        r.kind == "step_succeeded" and r.detail.get("step") == step
        for r in store.history(execution)
    )


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
        "requests shed for everyone else": f"sum(rate({rejected}{{{others}}}[10s]))",
        "offender requests refused by its own level": f"sum(rate({rejected}{{{throttle}}}[10s]))",
        "offender requests served": f"sum(rate({dispatched}{{{throttle}}}[10s]))",
    }
    time.sleep(10)  # a whole 10 s window after the recovery
    print("\nthe API server 10 s later (requests per second over 10 s):")
    for label, promql in queries.items():
        answer = requests.get(
            f"http://127.0.0.1:{port}/api/v1/query",
            params={"query": promql + " or vector(0)"},
            timeout=10,
        ).json()["data"]["result"]
        value = float(answer[0]["value"][1]) if answer else 0.0
        print(f"  {label:<50} {value:8.1f}")


def _slack_preview(ex: Execution, store: Store, root: Path) -> None:
    """The approval message guardian posts when ``slack:`` is configured."""
    books = load_playbooks([ROOT / "playbooks"], _actions())
    record = next(s for s in store.steps(ex.id) if s.step == 0)
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
    print("\nWith a slack: section, this approval would have been a message with Approve / Deny:")
    for block in blocks:
        if block["type"] in ("header", "section"):
            print("  | " + block["text"]["text"].replace("\n", "\n  | "))
    print(f"  (its Block Kit JSON: {out / 'approval-message.json'})")


def _actions() -> dict[str, Any]:
    from guardian.actions import CATALOGUE

    return {name: action.params for name, action in CATALOGUE.items()}


def _timeline(clock: Clock, store: Store, execution: str) -> None:
    print("\ntimeline (seconds from the fault)")
    for at, what in clock.events:
        print(f"  {at:6.1f}  {what}")
    page = next(at for at, what in clock.events if what.startswith("PAGE"))
    throttled = next(at for at, what in clock.events if what.startswith("throttled"))
    paused = next(at for at, what in clock.events if what.startswith("paused"))
    print(
        f"\npage {page:.0f}s after the fault (goal: 120 s); rollout stopped {paused:.0f}s after "
        f"it (goal: 180 s); the offender throttled at {throttled:.0f}s."
    )
    final = store.get(execution)
    print(f"execution {execution}: {final.state} ({final.message or 'no message'})")


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    _wait_for(lambda: True if check() else None, timeout, what)


def _wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(0.5)
    raise SystemExit(f"demo: no {what} within {timeout:.0f}s")


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

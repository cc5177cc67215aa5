"""Slack approvals against the loopback emulator, acting on the lab's real API server."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from guardian.actions import CATALOGUE
from guardian.app.charts import burn_chart
from guardian.app.chatops import ChatOps
from guardian.approval.blocks import APPROVE, DENY
from guardian.approval.buttons import UNDO
from guardian.approval.notify import SlackNotifier
from guardian.clients.kube import Kube
from guardian.clients.prometheus import PrometheusClient
from guardian.clients.slack import SlackApp, SlackClient
from guardian.clients.store import Store
from guardian.config import load_config
from guardian.config.model import SlackSettings
from guardian.evaluation.run import PrometheusSignals, evaluate
from guardian.executor.runner import Runner
from guardian.pipeline import Cycle
from guardian.planning.trigger import trigger_context
from guardian.playbooks import load_playbooks
from guardian.testing.slack import SlackEmulator
from tests.lab_fixture import ROOT, Lab

pytestmark = pytest.mark.lab

BOT = "xoxb-bot-token-never-logged"
APP = "xapp-app-token-never-logged"
SECRET = "signing-secret-never-logged"
CHANNEL = "C_SRE"
DAEMONSETS = "/apis/apps/v1/namespaces/default/daemonsets"

PLAYBOOK = """\
version: guardian/v1
name: pause-agent
trigger: {slos: [apiserver-rejections]}
approvers: {users: [U_ALICE], groups: [S_SRE]}
steps:
  - name: pause
    action: pause-rollout
    params: {kind: DaemonSet, namespace: default, name: "{{ params.agent }}"}
    verify: {promql: 'up{job="apiserver"} == 1', within: 30s}
"""


@dataclass
class Rig:
    emulator: SlackEmulator
    store: Store
    runner: Runner
    ops: ChatOps
    app: SlackApp
    kube: Kube
    cycle: Cycle

    def message(self) -> Any:
        roots = [m for m in self.emulator.messages.values() if m.thread_ts is None and m.blocks]
        assert len(roots) == 1, roots
        return roots[0]

    def thread(self, ts: str) -> list[str]:
        return [m.text for m in self.emulator.messages.values() if m.thread_ts == ts]


def _agent(kube: Kube, name: str) -> None:
    kube.create(
        DAEMONSETS,
        {
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "a", "image": "registry.invalid/a:1"}]},
                },
            },
        },
    )


def _rig(
    lab: Lab, tmp_path: Path, mode: str, emulator: SlackEmulator, playbook: str = PLAYBOOK
) -> Iterator[Rig]:
    config = load_config(lab.directory / "guardian.yaml")
    books_dir = tmp_path / "playbooks"
    books_dir.mkdir()
    (books_dir / "playbook.yaml").write_text(playbook)
    actions = {name: action.params for name, action in CATALOGUE.items()}
    books = load_playbooks([books_dir], actions, [s.name for s in config.slos])
    settings = SlackSettings(
        channel=CHANNEL,
        allowed_channels=(CHANNEL,),
        operators=("U_ALICE", "U_BOB"),
        mode=mode,  # type: ignore[arg-type]
        listen="127.0.0.1:0",
        api_url=emulator.base_url,
    )
    store = Store.open(f"sqlite:///{tmp_path / 'guardian.db'}")
    kube = Kube.from_kubeconfig(str(lab.directory / "kubeconfig"), qps=50, burst=100)
    client = SlackClient.from_settings(settings)
    prometheus = PrometheusClient(config.prometheus)
    notifier = SlackNotifier(client, CHANNEL, store, books, lambda slo: burn_chart(config, slo))
    runner = Runner(
        store,
        books,
        lambda context: kube,
        PrometheusSignals(config.slos, prometheus),
        notifier,
        owner="slack-test",
    )
    ops = ChatOps(
        runner,
        store,
        settings,
        client,
        books,
        lambda: evaluate(config.slos, prometheus)[0],
        lambda: [],
        lambda book, params: trigger_context(config, book, kube, params, prometheus),
    )
    app = SlackApp(settings, client, ops.on_click, ops.on_command)
    app.start()
    if mode == "socket":
        emulator.wait_connected()
    try:
        yield Rig(
            emulator,
            store,
            runner,
            ops,
            app,
            kube,
            Cycle(config, books, store, runner, kube, prometheus),
        )
    finally:
        app.stop()
        store.close()


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT)
    monkeypatch.setenv("SLACK_APP_TOKEN", APP)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)


@pytest.fixture
def emulator() -> Iterator[SlackEmulator]:
    with SlackEmulator(BOT, APP, SECRET, groups={"S_SRE": ["U_BOB"]}) as running:
        yield running


@pytest.fixture
def socket_rig(lab: Lab, tmp_path: Path, emulator: SlackEmulator, tokens: None) -> Iterator[Rig]:
    yield from _rig(lab, tmp_path, "socket", emulator)


@pytest.fixture
def http_rig(lab: Lab, tmp_path: Path, emulator: SlackEmulator, tokens: None) -> Iterator[Rig]:
    yield from _rig(lab, tmp_path, "http", emulator)


def test_slash_run_approval_message_click_applies_and_updates_the_message(
    socket_rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rig, emu = socket_rig, socket_rig.emulator
    _agent(rig.kube, "agent-slack")
    started = time.monotonic()
    ack = emu.slash("run pause-agent agent=agent-slack", "U_ALICE", CHANNEL)
    assert time.monotonic() - started < 3 and ack["envelope_id"].startswith("env-")
    emu.wait_for(lambda: any(r.get("text", "").startswith("execution ") for r in emu.responses))
    message = rig.message()
    assert message.channel == CHANNEL and "awaiting approval" in message.text
    buttons = next(b for b in message.blocks if b["type"] == "actions")["elements"]
    assert [(b["action_id"], b["style"]) for b in buttons] == [
        (APPROVE, "primary"),
        (DENY, "danger"),
    ]
    value = buttons[0]["value"]
    assert buttons[1]["value"] == value
    execution = value.split(":")[0]
    assert value.startswith(f"{execution}:0:0:") and len(value.split(":")[3]) == 16
    plan = "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
    assert "Step 1 of 1: pause" in plan and "freeze: updateStrategy = OnDelete" in plan
    assert [c for c, _ in emu.calls].count("files.completeUploadExternal") == 1
    [chart] = emu.files.values()
    assert chart.startswith(b"\x89PNG\r\n")

    emu.click(APPROVE, value, "U_MALLORY", CHANNEL, message.ts)
    emu.wait_for(lambda: len(emu.responses) == 2)
    assert emu.responses[-1]["text"] == "U_MALLORY is not an approver of playbook pause-agent"
    assert rig.store.get(execution).state == "awaiting_approval"

    emu.click(APPROVE, value, "U_BOB", CHANNEL, message.ts)  # U_BOB is in group S_SRE
    emu.wait_for(lambda: rig.store.get(execution).state == "succeeded")
    emu.wait_for(lambda: "succeeded" in rig.message().text)
    spec = rig.kube.get(f"{DAEMONSETS}/agent-slack")["spec"]
    assert spec["updateStrategy"] == {"type": "OnDelete"}
    final = rig.message()
    assert not [b for b in final.blocks if b["type"] == "actions"], "buttons gone once decided"
    context = final.blocks[-1]["elements"][0]["text"]
    assert "step pause approved by <@U_BOB>" in context
    emu.wait_for(lambda: rig.thread(final.ts)[-1].startswith("succeeded"))  # after the update
    thread = rig.thread(final.ts)
    assert thread[:2] == ["approved by <@U_BOB>", "applied pause phase 1 of 1"]
    kinds = [(r.kind, r.actor, r.via) for r in rig.store.history(execution)]
    assert ("refused", "U_MALLORY", "slack") in kinds
    assert ("approved", "U_BOB", "slack") in kinds
    assert kinds[-1] == ("succeeded", "guardian", "runner")

    double = emu.click(APPROVE, value, "U_ALICE", CHANNEL, message.ts)
    assert double["envelope_id"]
    emu.wait_for(lambda: len(emu.responses) == 3)
    assert emu.responses[-1]["text"] == (
        f"step 1 of execution {execution} is not awaiting approval: the execution is "
        "succeeded; nothing was decided"
    )

    everything = repr(rig.store.history()) + caplog.text + repr(emu.messages)
    for secret in (BOT, APP, SECRET):
        assert secret not in everything


def test_the_requester_cannot_approve_and_a_foreign_channel_is_refused(socket_rig: Rig) -> None:
    rig, emu = socket_rig, socket_rig.emulator
    _agent(rig.kube, "agent-own")
    emu.slash("run pause-agent agent=agent-own", "U_ALICE", CHANNEL)
    emu.wait_for(lambda: len(emu.responses) == 1)
    execution = rig.store.executions()[0].id
    value = _button(rig)
    emu.click(APPROVE, value, "U_ALICE", CHANNEL)
    emu.wait_for(lambda: len(emu.responses) == 2)
    assert emu.responses[-1]["text"] == (
        f"U_ALICE asked for execution {execution} and cannot also approve it"
    )
    emu.click(APPROVE, value, "U_BOB", "C_RANDOM")
    emu.wait_for(lambda: len(emu.responses) == 3)
    assert emu.responses[-1]["text"] == "guardian does not take commands in channel C_RANDOM"
    refusals = [r.detail["reason"] for r in rig.store.history(execution) if r.kind == "refused"]
    assert len(refusals) == 2
    emu.click(DENY, value, "U_BOB", CHANNEL)
    emu.wait_for(lambda: rig.store.get(execution).state == "denied")
    emu.wait_for(lambda: "denied" in rig.message().text)


def test_slash_commands_answer_and_unknown_input_gets_usage(socket_rig: Rig) -> None:
    emu = socket_rig.emulator

    def quick(text: str, user: str = "U_CAROL") -> str:
        """An answer that comes in the acknowledgement itself, nothing through response_url."""
        count = len(emu.responses)
        ack = emu.slash(text, user, CHANNEL)
        assert ack["payload"]["response_type"] == "ephemeral"
        assert len(emu.responses) == count
        return str(ack["payload"]["text"])

    def later(text: str, user: str = "U_CAROL") -> str:
        count = len(emu.responses)
        ack = emu.slash(text, user, CHANNEL)
        assert "payload" not in ack, "work is acknowledged first, answered after"
        emu.wait_for(lambda: len(emu.responses) == count + 1)
        return str(emu.responses[-1]["text"])

    assert quick("help").startswith("/guardian status")
    assert quick("frobnicate").startswith("unknown command 'frobnicate'\n/guardian status")
    assert quick("playbooks") == "pause-agent: pause"
    assert quick("approve abcdef") == (
        "usage: /guardian approve ID STEP (the step number the message or /guardian status "
        "shows: a decision binds to that step)"
    )
    assert quick("help " + "a" * 5000) == (
        "/guardian text of 5005 characters; at most 2000: nothing was done"
    )
    assert quick("run '<!channel>") == (
        "cannot read that command (No closing quotation); /guardian help lists the commands"
    )
    assert "guardian is active" in later("status")
    assert later("slo apiserver-rejections").startswith("apiserver-rejections: ")
    assert later("run <!channel> x=1", "U_ALICE") == (
        "no playbook '&lt;!channel&gt;'; /guardian playbooks lists them"
    )
    assert quick("pause").startswith("guardian paused")
    assert " pause - U_CAROL via slack" in quick("history")
    assert later("run pause-agent agent=x", "U_ALICE") == (
        "guardian is paused (kill switch): /guardian resume first"
    )
    assert quick("resume") == "U_CAROL may not resume from Slack (not an operator)"
    assert quick("resume", "U_BOB") == "guardian resumed"


def test_http_mode_checks_signatures_and_the_replay_window(http_rig: Rig) -> None:
    rig, emu = http_rig, http_rig.emulator
    _agent(rig.kube, "agent-http")
    url = f"http://127.0.0.1:{rig.app.port}/slack/events"
    ex = rig.runner.propose("pause-agent", {"params": {"agent": "agent-http"}}, "U_ALICE", "t")
    rig.runner.advance(ex.id)
    click = {"payload": _json(emu.click_payload(APPROVE, _button(rig), "U_BOB", CHANNEL))}
    forged, _ = emu.signed_post(url, click, secret="not-the-secret")
    stale, _ = emu.signed_post(url, click, timestamp=int(time.time()) - 6 * 60)
    assert (forged, stale) == (401, 401)
    assert rig.store.get(ex.id).state == "awaiting_approval"
    started = time.monotonic()
    status, _ = emu.signed_post(url, click)
    assert status == 200 and time.monotonic() - started < 3
    emu.wait_for(lambda: rig.store.get(ex.id).state == "succeeded")


TWO_STEPS = """\
version: guardian/v1
name: pause-two
trigger: {slos: [apiserver-rejections]}
approvers: {users: [U_ALICE, U_BOB]}
steps:
  - name: pause-first
    action: pause-rollout
    params: {kind: DaemonSet, namespace: default, name: "{{ params.first }}"}
    verify: {promql: 'up{job="apiserver"} == 1', within: 30s}
  - name: pause-second
    action: pause-rollout
    params: {kind: DaemonSet, namespace: default, name: "{{ params.second }}"}
"""


@pytest.fixture
def two_step_rig(lab: Lab, tmp_path: Path, emulator: SlackEmulator, tokens: None) -> Iterator[Rig]:
    yield from _rig(lab, tmp_path, "http", emulator, TWO_STEPS)


def test_a_replayed_signed_click_after_step_1_does_not_approve_step_2(
    two_step_rig: Rig,
) -> None:
    rig, emu = two_step_rig, two_step_rig.emulator
    _agent(rig.kube, "agent-one")
    _agent(rig.kube, "agent-two")
    url = f"http://127.0.0.1:{rig.app.port}/slack/events"
    context = {"params": {"first": "agent-one", "second": "agent-two"}}
    ex = rig.runner.propose("pause-two", context, "U_CAROL", "slack")
    assert rig.runner.advance(ex.id).state == "awaiting_approval"
    first = _button(rig)
    click = {"payload": _json(emu.click_payload(APPROVE, first, "U_BOB", CHANNEL))}
    stamp = int(time.time())
    assert emu.signed_post(url, click, timestamp=stamp)[0] == 200

    def at_step_2() -> bool:
        now = rig.store.get(ex.id)
        return (now.state, now.step) == ("awaiting_approval", 1)

    emu.wait_for(at_step_2, timeout=90)
    emu.wait_for(lambda: _button(rig) not in ("", first))
    second = _button(rig)
    assert second.startswith(f"{ex.id}:1:0:")

    answered = len(emu.responses)
    assert emu.signed_post(url, click, timestamp=stamp)[0] == 200, "the same signed request"
    emu.wait_for(lambda: len(emu.responses) == answered + 1)
    refusal = (
        f"step 1 of execution {ex.id} is not awaiting approval: the execution is awaiting "
        "approval at step 2; nothing was decided"
    )
    assert emu.responses[-1]["text"] == refusal
    assert at_step_2(), "step 2 still waits for its own approval"
    strategy = rig.kube.get(f"{DAEMONSETS}/agent-two")["spec"]["updateStrategy"]
    assert strategy["type"] == "RollingUpdate", "nothing was applied to step 2's target"
    rows = [(r.kind, r.actor, r.via, r.detail) for r in rig.store.history(ex.id)]
    assert rows[-1][:3] == ("refused", "U_BOB", "slack")
    assert rows[-1][3]["reason"] == refusal and rows[-1][3]["step"] == 0
    approvals = [(r.actor, r.detail["step_name"]) for r in rig.store.history(ex.id)
                 if r.kind == "approved"]  # fmt: skip
    assert approvals == [("U_BOB", "pause-first")]

    legacy = {"payload": _json(emu.click_payload(APPROVE, ex.id, "U_BOB", CHANNEL))}
    assert emu.signed_post(url, legacy)[0] == 200
    emu.wait_for(lambda: len(emu.responses) == answered + 2)
    assert emu.responses[-1]["text"].startswith("this button names no step")
    assert at_step_2()
    assert rig.store.history(ex.id)[-1].kind == "refused"

    click = {"payload": _json(emu.click_payload(APPROVE, second, "U_ALICE", CHANNEL))}
    assert emu.signed_post(url, click)[0] == 200
    emu.wait_for(lambda: rig.store.get(ex.id).state == "succeeded", timeout=90)
    strategy = rig.kube.get(f"{DAEMONSETS}/agent-two")["spec"]["updateStrategy"]
    assert strategy == {"type": "OnDelete"}
    context_line = rig.message().blocks[-1]["elements"][0]["text"]
    assert "step pause-first approved by <@U_BOB>" in context_line
    assert "step pause-second approved by <@U_ALICE>" in context_line


STORM = """\
version: guardian/v1
name: stop-the-storm
trigger: {slos: [apiserver-rejections]}
guards: {require_suspect: true, cooldown: 10m}
approvers: {groups: [S_SRE]}
steps:
  - name: quarantine
    action: pause-rollout
    params:
      kind: "{{ suspects[0].kind }}"
      namespace: "{{ suspects[0].namespace }}"
      name: "{{ suspects[0].name }}"
      quarantine: true
    verify: {burn_falls: true, within: 90s}
"""


@pytest.fixture
def storm_rig(lab: Lab, tmp_path: Path, emulator: SlackEmulator, tokens: None) -> Iterator[Rig]:
    yield from _rig(lab, tmp_path, "http", emulator, STORM)


def test_a_burn_becomes_an_approval_and_a_signed_click_stops_the_storm(
    lab: Lab, storm_rig: Rig
) -> None:
    rig, emu = storm_rig, storm_rig.emulator
    env = {**os.environ, "GUARDIAN_LAB_DIR": str(lab.directory)}
    load = [str(ROOT / "lab" / "lab"), "load"]
    began = time.monotonic()
    started = subprocess.run(
        [*load, "--filler-pods", "300"], env=env, capture_output=True, text=True, check=False
    )
    assert started.returncode == 0, started.stderr
    try:

        def proposed() -> bool:
            rig.cycle.tick()
            return bool(rig.store.executions())

        emu.wait_for(proposed, timeout=180, interval=3)
        rig.cycle.tick()  # still burning: one open incident per SLO, no second run
        [execution] = rig.store.executions()
        assert (execution.playbook, execution.slo) == ("stop-the-storm", "apiserver-rejections")
        assert execution.target == "DaemonSet telemetry/telemetry-agent"
        assert (execution.requested_by, execution.state) == ("guardian", "awaiting_approval")
        message = rig.message()
        text = "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
        assert "*apiserver-rejections* burns:" in text and "FIRING" in text
        assert "1. DaemonSet telemetry/telemetry-agent" in text
        assert "quarantine: nodeSelector guardian.io/quarantine=true matches no node" in text

        asked = time.monotonic() - began
        print(
            "approval message as posted:", _json({"text": message.text, "blocks": message.blocks})
        )
        url = f"http://127.0.0.1:{rig.app.port}/slack/events"
        click = {"payload": _json(emu.click_payload(APPROVE, _button(rig), "U_BOB", CHANNEL))}
        status, _ = emu.signed_post(url, click)
        assert status == 200
        clicked = time.monotonic() - began
        emu.wait_for(lambda: rig.store.get(execution.id).state == "succeeded", timeout=120)
        done = time.monotonic() - began
        print(
            f"burn to approval message {asked:.1f}s; signed click at {clicked:.1f}s; "
            f"applied and verified at {done:.1f}s (seconds from lab load)"
        )
        selector = rig.kube.get("/apis/apps/v1/namespaces/telemetry/daemonsets/telemetry-agent")[
            "spec"
        ]["template"]["spec"]["nodeSelector"]
        assert selector["guardian.io/quarantine"] == "true"
        emu.wait_for(lambda: "succeeded" in rig.message().text)
        kinds = [(r.kind, r.actor, r.via) for r in rig.store.history()]
        assert ("evaluation", "guardian", "policy") in kinds
        assert ("decision", "guardian", "policy") in kinds
        mine = [(r.kind, r.actor, r.via) for r in rig.store.history(execution.id)]
        assert mine == [
            ("proposed", "guardian", "policy"),
            ("awaiting_approval", "guardian", "runner"),
            ("approved", "U_BOB", "slack"),
            ("planned", "guardian", "runner"),
            ("applied", "guardian", "runner"),
            ("step_succeeded", "guardian", "runner"),
            ("succeeded", "guardian", "runner"),
        ]
        decisions = [
            r.detail["decision"]
            for r in rig.store.history()
            if r.kind == "decision" and r.detail["slo"] == "apiserver-rejections"
        ]
        assert decisions[-2:] == ["propose", "ignore"], "then one open incident per SLO"
    finally:
        subprocess.run([*load, "--stop"], env=env, capture_output=True, check=True)


def test_slack_down_while_pending_leaves_the_console_path_working(socket_rig: Rig) -> None:
    rig, emu = socket_rig, socket_rig.emulator
    _agent(rig.kube, "agent-down")
    emu.down = True
    ex = rig.runner.propose("pause-agent", {"params": {"agent": "agent-down"}}, "U_CAROL", "t")
    assert rig.runner.advance(ex.id).state == "awaiting_approval"
    failed = [r for r in rig.store.history(ex.id) if r.kind == "notify_failed"]
    assert failed and failed[0].detail["error"].startswith("Slack ")
    assert rig.runner.approve(ex.id, "U_ALICE", "console", step=0).ok
    assert rig.runner.advance(ex.id).state == "succeeded"
    spec = rig.kube.get(f"{DAEMONSETS}/agent-down")["spec"]
    assert spec["updateStrategy"] == {"type": "OnDelete"}
    emu.down = False


HALT_THEN_FREEZE = """\
version: guardian/v1
name: halt-agent
trigger: {slos: [apiserver-rejections]}
approvers: {users: [U_ALICE], groups: [S_SRE]}
steps:
  - name: halt
    action: halt-change
    params: {kind: DaemonSet, namespace: default, name: "{{ params.agent }}", guard_window: 1800}
    approval: auto
  - name: freeze
    action: pause-rollout
    params: {kind: DaemonSet, namespace: default, name: "{{ params.agent }}"}
"""


@pytest.fixture
def halt_rig(lab: Lab, tmp_path: Path, emulator: SlackEmulator, tokens: None) -> Iterator[Rig]:
    yield from _rig(lab, tmp_path, "socket", emulator, HALT_THEN_FREEZE)


def test_an_auto_halt_says_so_and_a_click_on_undo_restores_the_daemonset(halt_rig: Rig) -> None:
    rig, emu = halt_rig, halt_rig.emulator
    _agent(rig.kube, "agent-undo")
    emu.slash("run halt-agent agent=agent-undo", "U_ALICE", CHANNEL)
    emu.wait_for(lambda: any(r.get("text", "").startswith("execution ") for r in emu.responses))
    execution = rig.store.executions()[0].id
    assert rig.store.get(execution).state == "awaiting_approval"
    path = f"{DAEMONSETS}/agent-undo"
    assert "nodeSelector" in rig.kube.get(path)["spec"]["template"]["spec"], "quarantined"
    emu.wait_for(lambda: "awaiting approval" in rig.message().text)
    message = rig.message()
    sections = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
    assert (
        "Halted DaemonSet default/agent-undo: applied without approval (approval: auto); "
        "Undo restores it"
    ) in sections
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == [APPROVE, DENY, UNDO]
    undo = actions["elements"][2]["value"]

    responses = len(emu.responses)
    emu.click(UNDO, undo, "U_MALLORY", CHANNEL, message.ts)
    emu.wait_for(lambda: len(emu.responses) == responses + 1)
    assert emu.responses[-1]["text"] == "U_MALLORY may not undo from Slack (not an operator)"
    assert rig.store.get(execution).state == "awaiting_approval"

    emu.click(UNDO, undo, "U_BOB", CHANNEL, message.ts)  # an operator, in group S_SRE
    emu.wait_for(lambda: rig.store.get(execution).state == "undone")
    assert "nodeSelector" not in rig.kube.get(path)["spec"]["template"]["spec"]
    emu.wait_for(lambda: "undone" in rig.message().text)
    emu.wait_for(lambda: "undone by <@U_BOB>: 1 changes restored" in rig.thread(message.ts))
    assert not [b for b in rig.message().blocks if b["type"] == "actions"]
    kinds = [(r.kind, r.actor, r.via) for r in rig.store.history(execution)]
    assert ("undone", "U_BOB", "slack") in kinds


def _button(rig: Rig) -> str:
    """The value of the Approve button on the execution's message as it stands now."""
    actions = [b for b in rig.message().blocks if b["type"] == "actions"]
    return str(actions[0]["elements"][0]["value"]) if actions else ""


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def test_guardian_slack_answers_through_socket_mode_and_stops_on_sigterm(
    lab: Lab, tmp_path: Path, emulator: SlackEmulator
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "guardian.yaml").write_text((lab.directory / "guardian.yaml").read_text())
    (config / "policy.yaml").write_text(
        "version: guardian/v1\n"
        f"policy: {{playbooks: [../playbooks], store: {{url: 'sqlite:///{tmp_path}/g.db'}}}}\n"
        f"slack: {{channel: {CHANNEL}, api_url: '{emulator.base_url}'}}\n"
    )
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "pause.yaml").write_text(PLAYBOOK)
    env = {
        **os.environ,
        "KUBECONFIG": str(lab.directory / "kubeconfig"),
        "SLACK_BOT_TOKEN": BOT,
        "SLACK_APP_TOKEN": APP,
    }
    daemon = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "guardian"), "slack", "-c", str(config), "--interval", "2s"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        emulator.wait_connected(timeout=30)
        ack = emulator.slash("playbooks", "U_CAROL", CHANNEL)
        assert ack["payload"]["text"] == "pause-agent: pause"
        store = Store.open(f"sqlite:///{tmp_path}/g.db")
        emulator.wait_for(lambda: any(r.kind == "evaluation" for r in store.history()), timeout=30)
    finally:
        daemon.terminate()
        out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert f"answering Slack (Socket Mode), channel {CHANNEL}" in out
    assert BOT not in out + err and APP not in out + err

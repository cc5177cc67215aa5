"""A person's undo of an execution (``Runner.undo``), on SQLite and PostgreSQL.

The runner applies steps to a fake API server here (two Deployments whose ``spec.paused``
follows the patches sent), so the tests see what was restored; the lab test at the end
(``test_an_auto_halt_of_a_daemonset_is_undone_on_the_lab``) does it on a real API server.
The Slack path goes through the loopback emulator in Socket Mode, as Slack would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from guardian.actions import CATALOGUE
from guardian.actions.base import JSON
from guardian.app import cli
from guardian.app.chatops import ChatOps
from guardian.approval.blocks import APPROVE, render
from guardian.approval.buttons import UNDO
from guardian.approval.notify import SlackNotifier
from guardian.audit.switch import KillSwitch
from guardian.clients.kube import Kube
from guardian.clients.slack import SlackApp, SlackClient
from guardian.clients.store import Store
from guardian.config.model import SlackSettings
from guardian.errors import DataUnavailable
from guardian.executor.runner import Decision, Runner
from guardian.playbooks import Playbook, load_playbooks
from guardian.testing.slack import SlackEmulator
from tests.lab_fixture import Lab, eventually
from tests.signals import NoSignals
from tests.store_fixture import store_config

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CHANNEL = "C_SRE"
API = "/apis/apps/v1/namespaces/web/deployments/api"
WORKER = "/apis/apps/v1/namespaces/web/deployments/worker"

BOOK = """\
version: guardian/v1
name: halt-then-pause
trigger: {labels: {tier: control-plane}}
approvers: {users: [U_BOB], groups: [S_SRE]}
steps:
  - name: halt
    action: pause-rollout
    params: {kind: Deployment, namespace: web, name: api}
    approval: auto
  - name: pause-worker
    action: pause-rollout
    params: {kind: Deployment, namespace: web, name: worker}
"""

APPROVED = """\
version: guardian/v1
name: pause-approved
trigger: {labels: {tier: control-plane}}
approvers: {users: [U_ALICE, U_BOB]}
steps:
  - name: pause
    action: pause-rollout
    params: {kind: Deployment, namespace: web, name: api}
"""


class FakeKube:
    """Two Deployments whose ``spec.paused`` follows the merge patches sent to them."""

    def __init__(self) -> None:
        self.paused = {API: False, WORKER: False}
        self.patches: list[tuple[str, bool]] = []
        self.down = False
        self.lagging = False
        """True: every Deployment reads back unpaused, so a verification waits (60 s)."""

    def get(self, path: str, query: dict[str, str] | None = None) -> JSON:
        paused = False if self.lagging else self.paused[path]
        return {"metadata": {"name": path.rsplit("/", 1)[1]}, "spec": {"paused": paused}}

    def exists(self, path: str) -> bool:
        return path in self.paused

    def list(self, path: str, query: dict[str, str] | None = None, page: int = 500) -> Any:
        return iter(())

    def create(self, path: str, body: JSON, dry_run: bool = False) -> JSON:
        return body

    def patch(self, path: str, body: Any, kind: str = "merge", dry_run: bool = False) -> JSON:
        if self.down:
            raise DataUnavailable("API server unreachable: ConnectionRefusedError")
        if not dry_run:
            self.paused[path] = bool(body["spec"]["paused"])
            self.patches.append((path, self.paused[path]))
        return {}

    def delete(self, path: str, dry_run: bool = False) -> JSON:
        return {}


def _books(tmp_path: Path) -> dict[str, Playbook]:
    directory = tmp_path / "playbooks"
    directory.mkdir(exist_ok=True)
    (directory / "book.yaml").write_text(BOOK)
    (directory / "approved.yaml").write_text(APPROVED)
    return load_playbooks([directory], {n: a.params for n, a in CATALOGUE.items()})


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def runner(store: Store, tmp_path: Path, kube: FakeKube) -> Runner:
    return Runner(store, _books(tmp_path), lambda context: kube, NoSignals(), clock=lambda: NOW)


def _halted(runner: Runner, requested_by: str = "U_ALICE") -> str:
    """An execution whose auto step 1 paused ``api``; step 2 awaits approval."""
    ex = runner.propose("halt-then-pause", {}, requested_by, "slack")
    assert runner.advance(ex.id).state == "awaiting_approval"
    return ex.id


def _undone_rows(store: Store, execution: str) -> list[Any]:
    return [r for r in store.history(execution) if r.kind == "undone"]


def test_the_requester_undoes_an_auto_step_and_the_pending_approval_is_cancelled(
    store: Store, runner: Runner, kube: FakeKube
) -> None:
    execution = _halted(runner, "U_BOB")
    assert kube.paused == {API: True, WORKER: False}
    nonce = store.request(execution, 1)
    assert nonce is not None

    done = runner.undo(execution[:6], "U_BOB", "console")  # the requester: no two-person rule
    assert done == Decision(
        True,
        f"execution {execution} undone by U_BOB (console): 1 changes restored; "
        "the approval of step 2 (pause-worker) is cancelled",
    )
    assert kube.paused == {API: False, WORKER: False}
    after = store.get(execution)
    assert (after.state, after.expires_at) == ("undone", None)
    [row] = _undone_rows(store, execution)
    assert (row.actor, row.via, row.at) == ("U_BOB", "console", NOW)
    assert row.detail == {
        "changes": ["resume: spec.paused = false"],
        "steps": ["halt"],
        "cancelled": {"step": 1, "request": nonce.nonce},
    }
    late = runner.approve(execution, "U_CAROL", "slack", ("S_SRE",), step=1, nonce=nonce.nonce)
    assert not late.ok and "the execution is undone" in late.message
    assert kube.paused[WORKER] is False


def test_a_second_undo_finds_it_done_and_a_stranger_is_refused_and_audited(
    store: Store, runner: Runner, kube: FakeKube
) -> None:
    execution = _halted(runner)
    stranger = runner.undo(execution, "U_MALLORY", "slack")
    assert stranger == Decision(
        False,
        f"U_MALLORY may not undo execution {execution}: not an approver of playbook "
        "halt-then-pause",
    )
    assert store.get(execution).state == "awaiting_approval" and kube.paused[API] is True
    assert runner.undo(execution, "U_CAROL", "slack", groups=("S_SRE",)).ok
    again = runner.undo(execution, "U_BOB", "console")
    assert again == Decision(False, f"execution {execution} is already undone; nothing was done")
    assert len(_undone_rows(store, execution)) == 1
    assert kube.patches == [(API, True), (API, False)], "undone once"
    refused = [
        (r.actor, r.detail["action"]) for r in store.history(execution) if r.kind == "refused"
    ]
    assert refused == [("U_MALLORY", "undo"), ("U_BOB", "undo")]


def test_simultaneous_undos_restore_once(store: Store, runner: Runner, kube: FakeKube) -> None:
    execution = _halted(runner)
    start = threading.Barrier(4)
    decisions: list[Decision] = []

    def undo(user: str) -> None:
        start.wait()
        decisions.append(runner.undo(execution, user, "slack", groups=("S_SRE",)))

    threads = [threading.Thread(target=undo, args=(u,)) for u in ("U_BOB", "U_CAROL") * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(d.ok for d in decisions) == [False, False, False, True]
    assert len(_undone_rows(store, execution)) == 1
    assert kube.patches == [(API, True), (API, False)]


def test_nothing_applied_is_refused_and_the_two_person_rule_holds_for_approved_steps(
    store: Store, runner: Runner, kube: FakeKube
) -> None:
    ex = runner.propose("pause-approved", {}, "U_ALICE", "console")
    assert runner.advance(ex.id).state == "awaiting_approval"
    nothing = runner.undo(ex.id, "U_BOB", "console")
    assert nothing.message == f"nothing of execution {ex.id} was applied; nothing to undo"
    assert runner.approve(ex.id, "U_BOB", "console", step=0).ok
    assert runner.advance(ex.id).state == "succeeded" and kube.paused[API] is True
    own = runner.undo(ex.id, "U_ALICE", "console")
    assert own.message == (
        f"U_ALICE asked for execution {ex.id} and cannot also undo its approved steps"
    )
    assert runner.undo(ex.id, "U_BOB", "console").ok
    assert kube.paused[API] is False and store.get(ex.id).state == "undone"


def test_an_undo_while_the_runner_verifies_stops_the_step_then_undoes_it(
    store: Store, runner: Runner, kube: FakeKube
) -> None:
    kube.lagging = True
    ex = runner.propose("halt-then-pause", {}, "U_ALICE", "slack")
    moving = threading.Thread(target=runner.advance, args=(ex.id,))
    moving.start()
    eventually(lambda: bool(kube.patches), 30, "the auto step applied")
    assert store.get(ex.id).state == "running"
    decision = runner.undo(ex.id, "U_BOB", "slack")
    moving.join(30)
    assert not moving.is_alive()
    assert decision.ok, decision.message
    assert kube.patches == [(API, True), (API, False)]
    assert store.get(ex.id).state == "undone"
    rows = [(r.kind, r.actor, r.detail.get("problem")) for r in store.history(ex.id)]
    assert ("step_failed", "guardian", "stopped: U_BOB asked to undo the execution") in rows
    assert rows[-1] == ("undone", "U_BOB", None)
    assert store.setting("undo:" + ex.id) == "", "the request to stop is cleared"


def test_an_undo_the_api_server_refuses_is_audited_and_can_be_done_again(
    store: Store, runner: Runner, kube: FakeKube
) -> None:
    execution = _halted(runner)
    kube.down = True
    failed = runner.undo(execution, "U_BOB", "console")
    assert failed == Decision(
        False,
        f"undo of execution {execution} failed: API server unreachable: ConnectionRefusedError; "
        "it stays awaiting approval: undo again once the cause is fixed",
    )
    row = store.history(execution)[-1]
    assert (row.kind, row.actor, row.detail) == (
        "undo_failed",
        "U_BOB",
        {"error": "API server unreachable: ConnectionRefusedError"},
    )
    assert store.get(execution).state == "awaiting_approval" and kube.paused[API] is True
    kube.down = False
    assert runner.undo(execution, "U_BOB", "console").ok
    assert kube.paused[API] is False


def test_undo_works_while_paused_and_is_refused_for_an_unknown_id(
    store: Store, runner: Runner, kube: FakeKube
) -> None:
    execution = _halted(runner)
    KillSwitch(store).pause("U_BOB", "console", NOW)
    assert runner.undo(execution, "U_BOB", "console").ok
    assert kube.paused[API] is False
    unknown = runner.undo("zzzzzz", "U_BOB", "console")
    assert unknown.message == "no execution 'zzzzzz' (give its ID or a unique prefix of 4 or more)"
    row = store.history()[-1]
    assert (row.kind, row.execution_id, row.detail["action"]) == ("refused", None, "undo")


def test_the_message_offers_undo_only_once_an_auto_step_applied(
    store: Store, runner: Runner, tmp_path: Path
) -> None:
    books = _books(tmp_path)
    ex = runner.propose("halt-then-pause", {}, "U_ALICE", "slack")
    _, before = render(store.get(ex.id), books[ex.playbook], {}, store, "proposed")
    assert not [b for b in before if b["type"] == "actions"]
    assert "without approval" not in repr(before)
    runner.advance(ex.id)
    _, blocks = render(store.get(ex.id), books[ex.playbook], {}, store, "awaiting_approval")
    said = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert (
        "Step 1 (halt, pause-rollout) on Deployment web/api: applied without approval "
        "(approval: auto); Undo restores it"
    ) in said
    [actions] = [b for b in blocks if b["type"] == "actions"]
    ids = [(e["action_id"], e["text"]["text"]) for e in actions["elements"]]
    assert ids == [(APPROVE, "Approve"), ("guardian_deny", "Deny"), (UNDO, "Undo")]
    assert actions["elements"][2]["value"] == f"{ex.id}:1:0:applied1"


def test_the_console_undo_command(
    tmp_path: Path,
    store_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = Store.open(store_url)
    ex = store.create("halt-then-pause", "", "", "succeeded", "U_ALICE", "console", {}, NOW)
    store.close()
    monkeypatch.setenv("GUARDIAN_STORE_URL", store_url)
    config = str(store_config(tmp_path / "config"))
    assert cli.main(["approvals", "undo", ex.id, "-c", config, "--as", "bob"]) == 2
    assert capsys.readouterr().err == (
        f"guardian: nothing of execution {ex.id} was applied; nothing to undo\n"
    )
    assert cli.main(["approvals", "undo", "zzzz", "-c", config, "--as", "bob"]) == 2
    assert capsys.readouterr().err == (
        "guardian: no execution 'zzzz' (give its ID or a unique prefix of 4 or more)\n"
    )


# Slack, through the emulator in Socket Mode ---------------------------------------------------


@pytest.fixture
def slack(
    store: Store, runner: Runner, emulator: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SlackEmulator]:
    monkeypatch.setenv("SLACK_BOT_TOKEN", emulator.bot_token)
    monkeypatch.setenv("SLACK_APP_TOKEN", emulator.app_token)
    settings = SlackSettings(
        channel=CHANNEL,
        allowed_channels=(CHANNEL,),
        operators=("U_ALICE", "U_BOB", "U_CAROL"),
        api_url=emulator.base_url,
    )
    client = SlackClient(WebClient(token=emulator.bot_token, base_url=emulator.base_url))
    runner.notifier = SlackNotifier(client, CHANNEL, store, runner.playbooks)

    def no_context(book: Playbook, params: dict[str, str]) -> tuple[dict[str, object], str]:
        raise AssertionError("no run is asked for here")

    ops = ChatOps(
        runner,
        store,
        settings,
        client,
        runner.playbooks,
        lambda: pytest.fail("no evaluation here"),
        list,
        no_context,
    )
    app = SlackApp(settings, client, ops.on_click, ops.on_command)
    app.start()
    emulator.wait_connected()
    try:
        yield emulator
    finally:
        app.stop()


@pytest.fixture
def emulator() -> Iterator[SlackEmulator]:
    with SlackEmulator(groups={"S_SRE": ["U_CAROL"]}) as running:
        yield running


def _root(emu: SlackEmulator) -> Any:
    [root] = [m for m in emu.messages.values() if m.thread_ts is None and m.blocks]
    return root


def _undo_button(emu: SlackEmulator) -> dict[str, Any]:
    buttons = [e for b in _root(emu).blocks if b["type"] == "actions" for e in b["elements"]]
    [undo] = [b for b in buttons if b["action_id"] == UNDO]
    return undo


def test_a_click_on_undo_undoes_once_and_a_stranger_is_refused(
    store: Store, runner: Runner, kube: FakeKube, slack: SlackEmulator
) -> None:
    emu = slack
    execution = _halted(runner)
    root = _root(emu)
    assert "awaiting approval" in root.text
    value = _undo_button(emu)["value"]

    emu.click(UNDO, value, "U_MALLORY", CHANNEL, root.ts)
    emu.wait_for(lambda: len(emu.responses) == 1)
    assert emu.responses[-1]["text"] == "U_MALLORY may not undo from Slack (not an operator)"
    assert store.get(execution).state == "awaiting_approval" and kube.paused[API] is True

    emu.click(UNDO, value, "U_CAROL", CHANNEL, root.ts)  # an operator in group S_SRE
    emu.wait_for(lambda: store.get(execution).state == "undone")
    emu.wait_for(lambda: "undone by <@U_CAROL>: 1 changes restored" in _thread(emu, root.ts))
    assert kube.paused[API] is False
    final = _root(emu)
    assert "undone" in final.text
    assert not [b for b in final.blocks if b["type"] == "actions"], "no button once undone"
    assert "undone by <@U_CAROL>" in final.blocks[-1]["elements"][0]["text"]

    emu.click(UNDO, value, "U_BOB", CHANNEL, root.ts)  # a second click: nothing more
    emu.wait_for(lambda: len(emu.responses) == 2)
    assert emu.responses[-1]["text"] == (
        f"execution {execution} is already undone; nothing was done"
    )
    assert len(_undone_rows(store, execution)) == 1 and kube.patches == [(API, True), (API, False)]
    kinds = [(r.kind, r.actor) for r in store.history(execution)]
    assert ("undone", "U_CAROL") in kinds and ("refused", "U_BOB") in kinds
    assert next(r.actor for r in store.history() if r.kind == "refused") == "U_MALLORY"


def test_slash_undo_and_a_stale_undo_button(
    store: Store, runner: Runner, kube: FakeKube, slack: SlackEmulator
) -> None:
    emu = slack
    execution = _halted(runner)
    stale = _undo_button(emu)["value"].replace(":applied1", ":applied0")
    emu.click(UNDO, stale, "U_BOB", CHANNEL)
    emu.wait_for(lambda: len(emu.responses) == 1)
    assert emu.responses[-1]["text"] == (
        f"this message is out of date for execution {execution} (1 phases are applied now); "
        "nothing was undone: use the execution's current message"
    )
    assert kube.paused[API] is True
    usage = emu.slash("undo", "U_BOB", CHANNEL)["payload"]["text"]  # in the ack itself
    assert usage == "usage: /guardian undo ID (the execution whose applied steps to undo)"
    emu.slash(f"undo {execution[:6]}", "U_BOB", CHANNEL)
    emu.wait_for(lambda: len(emu.responses) == 2)
    assert emu.responses[-1]["text"] == (
        f"execution {execution} undone by U_BOB (slack): 1 changes restored; "
        "the approval of step 2 (pause-worker) is cancelled"
    )
    assert kube.paused[API] is False


def _thread(emu: SlackEmulator, ts: str) -> list[str]:
    return [m.text for m in emu.messages.values() if m.thread_ts == ts]


# the lab: a real API server ------------------------------------------------------------------

LAB_BOOK = """\
version: guardian/v1
name: halt-agent
trigger: {labels: {tier: control-plane}}
approvers: {users: [bob]}
steps:
  - name: halt
    action: halt-change
    params: {kind: DaemonSet, namespace: default, name: undo-agent, guard_window: 1800}
    approval: auto
  - name: freeze
    action: pause-rollout
    params: {kind: DaemonSet, namespace: default, name: undo-agent}
"""
LAB_DAEMONSETS = "/apis/apps/v1/namespaces/default/daemonsets"


@pytest.mark.lab
def test_an_auto_halt_of_a_daemonset_is_undone_on_the_lab_from_the_console(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = str(lab.directory / "kubeconfig")
    kube = Kube.from_kubeconfig(kubeconfig, qps=50, burst=100)
    books_dir = tmp_path / "lab-playbooks"
    books_dir.mkdir()
    (books_dir / "halt.yaml").write_text(LAB_BOOK)
    books = load_playbooks([books_dir], {n: a.params for n, a in CATALOGUE.items()})
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    monkeypatch.setenv("GUARDIAN_STORE_URL", url)
    config = store_config(tmp_path / "config")
    config.write_text(
        config.read_text().replace(
            "policy: {store: {url_env: GUARDIAN_STORE_URL}}",
            f"policy: {{store: {{url_env: GUARDIAN_STORE_URL}}, playbooks: ['{books_dir}']}}",
        )
    )
    template = {
        "metadata": {"labels": {"app": "undo-agent"}},
        "spec": {"containers": [{"name": "agent", "image": "registry.invalid/agent:1"}]},
    }
    selector = {"matchLabels": {"app": "undo-agent"}}
    body = {
        "metadata": {"name": "undo-agent"},
        "spec": {"selector": selector, "template": template},
    }
    kube.create(LAB_DAEMONSETS, body)
    path = f"{LAB_DAEMONSETS}/undo-agent"
    store = Store.open(url)
    try:
        runner = Runner(store, books, lambda context: kube, NoSignals(), owner="undo-test")
        ex = runner.propose("halt-agent", {}, "guardian", "change-guard")
        assert runner.advance(ex.id).state == "awaiting_approval"
        assert "nodeSelector" in kube.get(path)["spec"]["template"]["spec"], "quarantined"

        argv = ["approvals", "undo", ex.id[:6], "-c", str(config), "--kubeconfig", kubeconfig]
        assert cli.main([*argv, "--as", "bob"]) == 0
        assert capsys.readouterr().out == (
            f"execution {ex.id} undone by bob (console): 1 changes restored; "
            "the approval of step 2 (freeze) is cancelled\n"
        )
        assert "nodeSelector" not in kube.get(path)["spec"]["template"]["spec"]
        assert store.get(ex.id).state == "undone"
        assert cli.main([*argv, "--as", "bob"]) == 2
        assert capsys.readouterr().err == (
            f"guardian: execution {ex.id} is already undone; nothing was done\n"
        )
    finally:
        store.close()
        kube.delete(path)

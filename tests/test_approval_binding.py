"""An approval binds to the step, phase and request it was shown for (SQLite and PostgreSQL).

The runner and the chat layer decide on the store alone here: nothing reaches an API server,
and the Slack side talks to the loopback emulator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk import WebClient

from guardian.actions import CATALOGUE
from guardian.actions.base import KubeAPI
from guardian.app import cli
from guardian.app.chat_text import HELP
from guardian.app.chatops import ChatOps
from guardian.approval.blocks import APPROVE, DENY, button_value
from guardian.audit.records import Execution
from guardian.clients.slack import Click, Command, SlackClient
from guardian.clients.store import Store
from guardian.clients.store.schema import executions
from guardian.config.model import SlackSettings
from guardian.errors import DataUnavailable
from guardian.executor.runner import Decision, Runner
from guardian.playbooks import Playbook, load_playbooks
from guardian.testing.slack import SlackEmulator
from tests.signals import NoSignals
from tests.store_fixture import store_config

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CHANNEL = "C_SRE"

TWO_STEPS = """\
version: guardian/v1
name: throttle-then-pause
trigger: {labels: {tier: control-plane}}
approvers: {users: [U_BOB, U_CAROL]}
steps:
  - name: throttle
    action: throttle-client
    params: {subject: serviceaccount, namespace: telemetry, name: agent}
  - name: pause
    action: pause-rollout
    params: {kind: DaemonSet, namespace: telemetry, name: agent}
"""


def _no_cluster(context: str | None) -> KubeAPI:
    raise DataUnavailable("no API server in this test")


@pytest.fixture
def books(tmp_path: Path) -> dict[str, Playbook]:
    directory = tmp_path / "playbooks"
    directory.mkdir()
    (directory / "book.yaml").write_text(TWO_STEPS)
    return load_playbooks([directory], {n: a.params for n, a in CATALOGUE.items()})


@pytest.fixture
def runner(store: Store, books: dict[str, Playbook]) -> Runner:
    return Runner(store, books, _no_cluster, NoSignals(), clock=lambda: NOW)


def _awaiting(store: Store, step: int = 0) -> tuple[Execution, str]:
    """An execution of the two-step playbook awaiting approval of ``step``."""
    ex = store.create("throttle-then-pause", "", "", "proposed", "U_ALICE", "slack", {}, NOW)
    if step:
        store.transition(ex.id, "proposed", NOW, step=step)
    nonce = store.ask(ex.id, step, 0, NOW, NOW + timedelta(minutes=15))
    assert nonce is not None
    return store.get(ex.id), nonce


def _step_done(store: Store, ex: Execution) -> str:
    """Step 1 was approved and ran; step 2 now awaits approval. Returns step 2's nonce."""
    assert store.transition(ex.id, "approved", NOW, at=(0, 0), state="proposed", step=1)
    nonce = store.ask(ex.id, 1, 0, NOW, NOW + timedelta(minutes=15))
    assert nonce is not None
    return nonce


def test_a_replayed_approval_of_step_1_does_not_approve_step_2(
    store: Store, runner: Runner
) -> None:
    ex, first = _awaiting(store)
    assert runner.approve(ex.id, "U_BOB", "slack", step=0, phase=0, nonce=first).ok
    second = _step_done(store, ex)
    assert second != first

    replay = runner.approve(ex.id, "U_BOB", "slack", step=0, phase=0, nonce=first)
    assert not replay.ok
    assert replay.message == (
        f"step 1 of execution {ex.id} is not awaiting approval: the execution is awaiting "
        "approval at step 2; nothing was decided"
    )
    assert store.get(ex.id).state == "awaiting_approval"
    refused = store.history(ex.id)[-1]
    assert (refused.kind, refused.actor, refused.via) == ("refused", "U_BOB", "slack")
    assert refused.detail == {
        "action": "approve",
        "reason": replay.message,
        "step": 0,
        "request": first,
    }

    wrong = runner.approve(ex.id, "U_BOB", "slack", step=1, phase=0, nonce=first)
    assert wrong.message == (
        f"this message is out of date for step 2 of execution {ex.id}; nothing was decided: "
        "use the execution's current message"
    )
    assert store.get(ex.id).state == "awaiting_approval"
    ok = runner.approve(ex.id, "U_CAROL", "slack", step=1, phase=0, nonce=second)
    assert ok.ok and ok.message == f"step 2 (pause) of execution {ex.id} approved by U_CAROL"
    approved = [r for r in store.history(ex.id) if r.kind == "approved"]
    assert [(r.actor, r.detail["step"], r.detail["request"]) for r in approved] == [
        ("U_BOB", 0, first),
        ("U_CAROL", 1, second),
    ]


def test_a_late_second_console_approve_is_refused_and_audited(store: Store, runner: Runner) -> None:
    ex, _ = _awaiting(store)
    assert runner.approve(ex.id[:6], "U_BOB", "console", step=0).ok
    late = runner.approve(ex.id[:6], "U_CAROL", "console", step=0)
    assert late.message == (
        f"step 1 of execution {ex.id} is not awaiting approval: the execution is approved at "
        "step 1; nothing was decided"
    )
    _step_done(store, ex)
    later = runner.deny(ex.id, "U_CAROL", "console", step=0)
    assert not later.ok and "the execution is awaiting approval at step 2" in later.message
    assert store.get(ex.id).state == "awaiting_approval"
    rows = [(r.kind, r.actor, r.detail.get("reason")) for r in store.history(ex.id)]
    assert rows[-2:] == [
        ("refused", "U_CAROL", late.message),
        ("refused", "U_CAROL", later.message),
    ]


def test_two_decisions_on_one_request_apply_once(store: Store, runner: Runner) -> None:
    ex, nonce = _awaiting(store)
    assert store.decide(ex.id, 0, 0, nonce, "approved", "U_BOB", NOW)
    assert not store.decide(ex.id, 0, 0, nonce, "denied", "U_CAROL", NOW)
    other, other_nonce = _awaiting(store)
    assert not store.decide(other.id, 0, 1, other_nonce, "approved", "U_BOB", NOW), "phase"
    assert not store.decide(other.id, 0, 0, nonce, "approved", "U_BOB", NOW), "nonce"
    assert store.get(other.id).state == "awaiting_approval"
    request = store.request(ex.id, 0)
    assert request is not None and (request.decision, request.decided_by) == ("approved", "U_BOB")


def test_a_pending_approval_from_before_requests_existed_can_be_decided_by_step(
    store: Store, runner: Runner
) -> None:
    ex = store.create("throttle-then-pause", "", "", "awaiting_approval", "U_ALICE", "t", {}, NOW)
    assert store.request(ex.id, 0) is None
    assert not runner.approve(ex.id, "U_BOB", "slack", step=0, phase=0, nonce="0" * 16).ok
    assert runner.approve(ex.id, "U_BOB", "console", step=0).ok
    assert store.get(ex.id).state == "approved"


def test_unknown_and_short_ids_are_refused_and_audited(store: Store, runner: Runner) -> None:
    _awaiting(store)
    cases = [
        ("zzzzzz", "no execution 'zzzzzz' (give its ID or a unique prefix of 4 or more)"),
        ("ab", "no execution 'ab' (give its ID or a unique prefix of 4 or more)"),
    ]
    for given, message in cases:
        decision = runner.approve(given, "U_BOB", "slack", step=0)
        assert (decision.ok, decision.message) == (False, message)
        row = store.history()[-1]
        assert (row.kind, row.execution_id, row.actor) == ("refused", None, "U_BOB")
        assert row.detail == {"action": "approve", "reason": message, "given": given, "step": 0}


def test_an_ambiguous_prefix_is_refused_and_audited(store: Store, runner: Runner) -> None:
    with store.engine.begin() as conn:
        for suffix in ("1", "2"):
            conn.execute(
                executions.insert().values(
                    id=f"abcdef000{suffix}", playbook="throttle-then-pause", slo="", target="",
                    state="awaiting_approval", step=0, phase=0, requested_by="U_ALICE",
                    requested_via="t", context={}, message="", created_at=NOW, updated_at=NOW,
                )
            )  # fmt: skip
    decision = runner.deny("abcdef", "U_BOB", "console", step=0)
    message = "execution ID prefix 'abcdef' matches more than one execution; give more of it"
    assert decision.message == message
    row = store.history()[-1]
    assert (row.kind, row.execution_id, row.via) == ("refused", None, "console")
    assert row.detail == {"action": "deny", "reason": message, "given": "abcdef", "step": 0}
    assert runner.deny("abcdef0001", "U_BOB", "console", step=0).ok


def test_history_tells_an_ambiguous_prefix_from_an_unknown_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'guardian.db'}"
    store = Store.open(url)
    with store.engine.begin() as conn:
        for suffix in ("1", "2"):
            conn.execute(
                executions.insert().values(
                    id=f"abcdef000{suffix}", playbook="p", slo="", target="", state="denied",
                    step=0, phase=0, requested_by="U_ALICE", requested_via="t", context={},
                    message="", created_at=NOW, updated_at=NOW,
                )
            )  # fmt: skip
    store.close()
    monkeypatch.setenv("GUARDIAN_STORE_URL", url)
    config = str(store_config(tmp_path / "config"))
    assert cli.main(["history", "-c", config, "--execution", "abcdef"]) == 2
    assert capsys.readouterr().err == (
        "guardian: --execution abcdef: more than one execution starts with it; "
        "give more of the ID\n"
    )
    assert cli.main(["history", "-c", config, "--execution", "fedcba"]) == 2
    assert capsys.readouterr().err == (
        "guardian: --execution fedcba: no such execution "
        "(give its ID or a unique prefix of 4 or more)\n"
    )
    assert cli.main(["history", "-c", config, "--execution", "abcdef0002"]) == 0


# Slack: the button values ----------------------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[SlackEmulator]:
    with SlackEmulator() as running:
        yield running


@pytest.fixture
def ops(
    store: Store, runner: Runner, books: dict[str, Playbook], emulator: SlackEmulator
) -> ChatOps:
    settings = SlackSettings(channel=CHANNEL, allowed_channels=(CHANNEL,))
    client = SlackClient(WebClient(token=emulator.bot_token, base_url=emulator.base_url))

    def no_context(book: Playbook, params: dict[str, str]) -> tuple[dict[str, object], str]:
        raise AssertionError("no run is asked for here")

    return ChatOps(
        runner,
        store,
        settings,
        client,
        books,
        lambda: pytest.fail("no evaluation here"),
        list,
        no_context,
        leading=lambda: False,
    )


def _click(value: str, user: str = "U_BOB", action: str = APPROVE) -> Click:
    return Click(action, value, user, CHANNEL, "1.000001")


def test_a_replayed_signed_click_is_refused_in_slack_and_audited(
    store: Store, ops: ChatOps
) -> None:
    ex, first = _awaiting(store)
    click = _click(button_value(ex.id, 0, 0, first))
    assert ops.on_click(click) is None
    second = _step_done(store, ex)
    assert ops.on_click(click) == (
        f"step 1 of execution {ex.id} is not awaiting approval: the execution is awaiting "
        "approval at step 2; nothing was decided"
    )
    assert store.get(ex.id).state == "awaiting_approval"
    assert ops.on_click(_click(button_value(ex.id, 1, 0, second), "U_CAROL", DENY)) is None
    assert store.get(ex.id).state == "denied"


@pytest.mark.parametrize(
    ("value", "answer"),
    [
        (
            "EXECUTION",
            "this button names no step (a message from an older guardian); nothing was "
            "decided: use the execution's current message, or /guardian approve ID STEP",
        ),
        ("EXECUTION:0:0", "this button's value is not one guardian gave; nothing was decided"),
        ("EXECUTION:x:0:n", "this button's value is not one guardian gave; nothing was decided"),
        ("EXECUTION:0:0:", "this button's value is not one guardian gave; nothing was decided"),
    ],
)
def test_a_button_value_without_a_request_is_refused(
    store: Store, ops: ChatOps, value: str, answer: str
) -> None:
    ex, _ = _awaiting(store)
    assert ops.on_click(_click(value.replace("EXECUTION", ex.id))) == answer
    assert store.get(ex.id).state == "awaiting_approval"
    row = store.history()[-1]
    assert (row.kind, row.actor, row.detail["reason"]) == ("refused", "U_BOB", answer)


USAGE = (
    "usage: /guardian approve ID STEP (the step number the message or /guardian status "
    "shows: a decision binds to that step)"
)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("approve abcdef", USAGE),
        ("approve abcdef 0", USAGE),
        ("approve abcdef two", USAGE),
        ("approve abcdef 1 2", USAGE),
        ("slo", "usage: /guardian slo NAME"),
        ("run --dry-run", "usage: /guardian run PLAYBOOK [k=v ...] [--dry-run]"),
        ("run '<!channel>", "cannot read that command (No closing quotation); "
                            "/guardian help lists the commands"),
        ("<!channel>", "unknown command '&lt;!channel&gt;'\n" + HELP),
        ("help " + "a" * 1996, "/guardian text of 2001 characters; at most 2000: nothing was done"),
    ],
)  # fmt: skip
def test_quick_answers_to_commands(ops: ChatOps, text: str, answer: str) -> None:
    assert ops.on_command(Command(text, "U_BOB", CHANNEL)) == answer


def test_ten_megabytes_of_command_text_are_refused_unread(ops: ChatOps) -> None:
    started = time.monotonic()
    answer = ops.on_command(Command("help " + "a" * 10_000_000, "U_BOB", CHANNEL))
    elapsed = time.monotonic() - started
    assert answer == "/guardian text of 10000005 characters; at most 2000: nothing was done"
    assert elapsed < 2, f"took {elapsed:.2f}s"


def test_a_slash_decision_binds_to_the_step_it_names(store: Store, ops: ChatOps) -> None:
    ex, _ = _awaiting(store)
    work = ops.on_command(Command(f"approve {ex.id} 2", "U_BOB", CHANNEL))
    assert callable(work)
    assert work() == (
        f"step 2 of execution {ex.id} is not awaiting approval: the execution is awaiting "
        "approval at step 1; nothing was decided"
    )
    assert store.history(ex.id)[-1].kind == "refused"
    work = ops.on_command(Command(f"approve {ex.id[:6]} 1", "U_BOB", CHANNEL))
    assert callable(work) and work() == f"approved step 1 of {ex.id[:6]}"
    assert store.get(ex.id).state == "approved"


def test_five_simultaneous_clicks_on_one_button_approve_once(store: Store, runner: Runner) -> None:
    ex, nonce = _awaiting(store)
    start = threading.Barrier(5)
    decisions: list[Decision] = []

    def click(user: str) -> None:
        start.wait()
        decisions.append(runner.approve(ex.id, user, "slack", step=0, phase=0, nonce=nonce))

    threads = [threading.Thread(target=click, args=(u,)) for u in ["U_BOB", "U_CAROL"] * 2]
    threads.append(threading.Thread(target=click, args=("U_BOB",)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(d.ok for d in decisions) == [False, False, False, False, True]
    assert [r.kind for r in store.history(ex.id)].count("approved") == 1
    request = store.request(ex.id, 0)
    assert request is not None and request.decision == "approved"

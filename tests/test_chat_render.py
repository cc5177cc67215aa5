"""Approval messages stay within Block Kit's limits, however large the plan, and show what
anyone can write as literal text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from slack_sdk import WebClient

from guardian.actions import CATALOGUE
from guardian.approval.blocks import escape, render
from guardian.approval.notify import SlackNotifier
from guardian.clients.slack import SlackClient
from guardian.clients.store import Store
from guardian.playbooks import load_playbooks
from guardian.testing.slack import SlackEmulator, block_problems

ROOT = Path(__file__).resolve().parent.parent
BOOKS = load_playbooks([ROOT / "playbooks"], {n: a.params for n, a in CATALOGUE.items()})


def _windows() -> list[dict[str, object]]:
    return [
        {"severity": "page", "long": 3600, "short": 300, "long_burn": 20.5, "short_burn": 31.0,
         "factor": 14.4, "firing": True},
        {"severity": "ticket", "long": 86400, "short": 7200, "long_burn": 1.2,
         "short_burn": 2.0, "factor": 3.0, "firing": False},
    ]  # fmt: skip


def test_a_plan_of_600_changes_renders_within_the_limits(store: Store) -> None:
    now = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    context = {
        "slo": {"name": "apiserver-latency-" + "x" * 200, "windows": _windows()},
        "suspects": [
            {"kind": "DaemonSet", "namespace": "telemetry", "name": f"agent-{i}", "touches": i}
            for i in range(40)
        ],
    }
    ex = store.create(
        "pause-suspect-rollout", "apiserver-latency", "", "proposed", "U1", "slack", context, now
    )
    nonce = store.ask(ex.id, 0, 0, now, now)
    ex = store.get(ex.id)
    changes = [
        {"op": "patch", "path": f"/api/v1/nodes/node-{i:04d}", "description": "cordon " * 5}
        for i in range(600)
    ]
    plan = {"target": "600 nodes", "changes": changes}
    text, blocks = render(ex, BOOKS["pause-suspect-rollout"], {"plan": plan}, store, "x")
    assert block_problems(blocks) == []
    assert [b["type"] for b in blocks] == ["header", "section", "section", "section", "actions",
                                           "context"]  # fmt: skip
    assert "(600 changes in all)" in blocks[3]["text"]["text"]
    assert [b["value"] for b in blocks[4]["elements"]] == [f"{ex.id}:0:0:{nonce}"] * 2
    assert (
        text
        == f"pause-suspect-rollout for apiserver-latency: awaiting approval (execution {ex.id})"
    )


def test_the_checker_rejects_what_slack_rejects() -> None:
    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    button = {"type": "button", "text": {"type": "plain_text", "text": "ok"}, "value": "v"}
    assert block_problems([header, {"type": "actions", "elements": [button]}]) == [
        "[0] header text of 151 characters",
        "[1] button action_id missing or too long",
    ]
    assert block_problems([{"type": "divider"}] * 51) == ["51 blocks; at most 50"]


def test_operator_supplied_text_stays_literal_in_mrkdwn(store: Store) -> None:
    now = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    evil = "<!channel> & <https://evil.example|click> ```"
    context = {
        "slo": {"name": "lat<!here>", "windows": _windows()},
        "suspects": [{"kind": "DaemonSet", "namespace": "t", "name": evil, "touches": 1}],
    }
    ex = store.create(
        "pause-suspect-rollout", "apiserver-latency", "", "proposed", evil, "console", context, now
    )
    store.ask(ex.id, 0, 0, now, now)
    store.transition(ex.id, "awaiting_approval", now, message=f"failed: {evil}")
    ex = store.get(ex.id)
    plan = {
        "target": f"DaemonSet t/{evil}",
        "changes": [{"op": "patch", "path": "/x", "description": f"name = {evil}\n```\n<!here>"}],
    }
    text, blocks = render(ex, BOOKS["pause-suspect-rollout"], {"plan": plan}, store, "x")
    shown = [text] + [
        t["text"]
        for b in blocks
        for t in [b.get("text") or {}, *b.get("elements", [])]
        if t.get("type") == "mrkdwn"
    ]
    for one in shown:
        assert "<!" not in one and "<https" not in one, one
        assert one.count("```") % 2 == 0, one
    plan_text = blocks[3]["text"]["text"]
    assert plan_text.endswith(
        "name = &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt; ˋˋˋ\nˋˋˋ\n"
        "&lt;!here&gt;```"
    )
    context_text = blocks[-1]["elements"][0]["text"]
    assert f"asked by {escape(evil)} (console)" in context_text
    assert f"failed: {escape(evil)}" in context_text
    assert escape("<@U1>") == "&lt;@U1&gt;"


def test_thread_lines_and_announcements_are_escaped_too(store: Store) -> None:
    now = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    with SlackEmulator() as emulator:
        client = SlackClient(WebClient(token=emulator.bot_token, base_url=emulator.base_url))
        notifier = SlackNotifier(client, "C_SRE", store, BOOKS)
        ex = store.create("shed-nodes", "", "", "failed", "U_A", "slack", {}, now)
        notifier.notify("failed", ex, {"message": "shed: <!channel> said `no`"})
        notifier.announce("lat<!here>", "blind: <https://evil.example|look>")
        texts = sorted(m.text for m in emulator.messages.values())
    assert "failed: shed: &lt;!channel&gt; said ˋnoˋ" in texts
    assert "lat&lt;!here&gt;: blind: &lt;https://evil.example|look&gt;" in texts
    assert [r.kind for r in store.history(ex.id)] == ["proposed"], "no notify_failed"


def test_a_halt_applied_without_approval_is_said_plainly_with_undo_until_undone(
    store: Store,
) -> None:
    now = datetime(2026, 12, 1, 15, 20, tzinfo=UTC)
    book = BOOKS["halt-change"]
    ex = store.create("halt-change", "apiserver-read", "", "running", "guardian", "t", {}, now)
    target = "DaemonSet telemetry/telemetry-agent"
    store.record("planned", now, ex.id, "guardian", "runner", step=0, target=target)
    store.record("applied", now, ex.id, "guardian", "runner", step=0, phase=0)
    _, running = render(store.get(ex.id), book, {}, store, "applied")
    said = f"Halted {target}: applied without approval (approval: auto)"
    assert f"{said}; Undo restores it" in repr(running)
    [undo] = [b for b in running if b["type"] == "actions"]  # while verified: the undo stops it
    assert [(e["text"]["text"], e["value"]) for e in undo["elements"]] == [
        ("Undo", f"{ex.id}:0:0:applied1")
    ]

    assert store.transition(ex.id, "running", now, state="proposed", step=1)
    nonce = store.ask(ex.id, 1, 0, now, now)
    _, blocks = render(store.get(ex.id), book, {"plan": {"changes": []}}, store, "x")
    assert block_problems(blocks) == []
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert f"{said}; Undo restores it" in sections
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert [(e["text"]["text"], e["value"]) for e in actions["elements"]] == [
        ("Approve", f"{ex.id}:1:0:{nonce}"),
        ("Deny", f"{ex.id}:1:0:{nonce}"),
        ("Undo", f"{ex.id}:1:0:applied1"),
    ]
    assert store.transition(ex.id, "awaiting_approval", now, state="undone")
    store.record("undone", now, ex.id, "U_CAROL", "slack", changes=["x"])
    _, undone = render(store.get(ex.id), book, {}, store, "undone")
    assert f"{said}; since undone" in repr(undone)
    assert not [b for b in undone if b["type"] == "actions"]
    assert "undone by <@U_CAROL> at 15:20:00 UTC" in undone[-1]["elements"][0]["text"]

"""Approval messages stay within Block Kit's limits, however large the plan."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from guardian.actions import CATALOGUE
from guardian.chat import render
from guardian.playbooks import load_playbooks
from guardian.store import Store
from guardian.testing.slack import block_problems

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
    store.transition(ex.id, "proposed", now, state="awaiting_approval")
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

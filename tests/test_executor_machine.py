"""The executor's state machine alone: (execution, facts) → move, with no store and no cluster."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from guardian.actions import CATALOGUE
from guardian.actions.base import Change, Plan
from guardian.audit.records import Execution, StepRecord
from guardian.executor.machine import next_move
from guardian.executor.moves import (
    Boundary,
    Checked,
    Facts,
    Notify,
    Planned,
    Previewed,
    Sent,
    Undid,
)
from guardian.playbooks import Playbook, load_playbooks

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

BOOK = """\
version: guardian/v1
name: two
trigger: {labels: {tier: control-plane}}
steps:
  - name: throttle
    action: throttle-client
    params: {subject: serviceaccount, namespace: telemetry, name: agent}
    approval: auto
  - name: pause
    action: pause-rollout
    params: {kind: Deployment, namespace: web, name: api}
    on_failure: undo
"""

PLAN = Plan(
    "pause-rollout",
    "Deployment web/api",
    (Change("patch", "/apis/apps/v1/namespaces/web/deployments/api", {}, "pause"),),
)


@pytest.fixture
def book(tmp_path: Path) -> Playbook:
    (tmp_path / "book.yaml").write_text(BOOK)
    return load_playbooks([tmp_path], {n: a.params for n, a in CATALOGUE.items()})["two"]


def _ex(state: str, step: int = 0, phase: int = 0) -> Execution:
    return Execution(
        "abcdef1234", "two", "", "", state, step, phase, "alice", "console", {}, "", NOW, NOW
    )


def _facts(book: Playbook | None, **changes: object) -> Facts:
    facts = Facts(book, (), (), NOW, "me", 900, 200)
    return replace(facts, **changes)  # type: ignore[arg-type]


def _planned(step: int) -> StepRecord:
    record = {**PLAN.to_record(), "started": NOW.isoformat()}
    return StepRecord("abcdef1234", step, "pause", "planned", record, 0, None)


def test_an_auto_step_is_approved_in_one_write(book: Playbook) -> None:
    move = next_move(_ex("proposed"), _facts(book))
    assert move.write is not None and move.go_on
    assert (move.write.expected, move.write.at, dict(move.write.moves)) == (
        "proposed",
        (0, 0),
        {"state": "approved"},
    )
    assert [(a.kind, a.via) for a in move.write.audit] == [("approved", "auto")]


def test_a_step_that_needs_a_human_is_previewed_then_asked_for(book: Playbook) -> None:
    ex = _ex("proposed", step=1)
    assert next_move(ex, _facts(book)).need is not None
    move = next_move(ex, _facts(book, outcome=Previewed({"changes": []})))
    assert move.ask is not None and move.write is None and not move.go_on
    assert move.ask.expires_at == NOW + timedelta(seconds=900)
    assert move.tell == (
        Notify(
            "awaiting_approval",
            {"step": "pause", "action": "pause-rollout", "plan": {"changes": []}},
        ),
    )


def test_a_plan_is_a_boundary_of_its_own_before_running(book: Playbook) -> None:
    ex = _ex("approved", step=1)
    need = next_move(ex, _facts(book)).need
    assert need is not None and need.what == "plan"
    move = next_move(ex, _facts(book, outcome=Planned(PLAN)))
    assert move.write is not None and move.write.moves == {} and move.write.step is not None
    assert move.tell == (Boundary("planned 1"),)
    again = next_move(ex, _facts(book, records=(_planned(1),)))
    assert again.write is not None and again.write.moves == {"state": "running", "phase": 0}


def test_a_phase_is_applied_recorded_once_then_verified(book: Playbook) -> None:
    ex = _ex("running", step=1)
    facts = _facts(book, records=(_planned(1),))
    need = next_move(ex, facts).need
    assert need is not None and need.what == "apply"
    sent = next_move(ex, replace(facts, outcome=Sent()))
    assert sent.write is not None and sent.write.applied == (1, 0, "me")
    assert sent.need is not None and sent.need.what == "verify"
    done = next_move(ex, replace(facts, applied=((1, 0),), outcome=Checked()))
    assert done.write is not None and done.write.moves["state"] == "proposed"
    assert done.write.step is not None and done.write.step.status == "succeeded"
    assert Boundary("done 1") in done.tell


def test_a_failed_step_with_undo_undoes_then_ends_in_one_write(book: Playbook) -> None:
    ex = _ex("running", step=1)
    facts = _facts(book, records=(_planned(1),), applied=((1, 0),))
    failed = next_move(ex, replace(facts, outcome=Checked(("paused: want True",))))
    assert failed.need is not None and failed.need.what == "undo" and failed.write is None
    assert failed.need.failure is not None
    undid = next_move(ex, replace(facts, outcome=Undid(failed.need.failure, ("resume",))))
    assert undid.write is not None
    assert [a.kind for a in undid.write.audit] == ["step_failed", "undone", "undone"]
    assert undid.write.moves == {
        "state": "undone",
        "message": "pause: verify: paused: want True; undid 1 changes",
    }


def test_a_run_whose_playbook_is_gone_fails() -> None:
    move = next_move(_ex("approved"), _facts(None))
    assert move.write is not None and move.write.moves["state"] == "failed"
    assert not move.go_on

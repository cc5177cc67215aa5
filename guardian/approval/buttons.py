"""The buttons of an execution's Slack message: their action ids and values, read back.

Input: an execution's ID, step and phase, and what a button binds to (an approval request's
nonce, or for Undo the phases applied). Output: the ``action_id`` of each button, a button's
Block Kit dict and value, and a value read back (``parse_button`` → ``Shown``;
``undo_count``). Pure, no I/O. Used by ``guardian.approval.blocks`` (which renders the
buttons and re-exports these names for its callers), ``guardian.app.chatops`` (a click read
back) and ``guardian.clients.slack`` (the action ids it routes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

APPROVE = "guardian_approve"
DENY = "guardian_deny"
UNDO = "guardian_undo"
"""The ``action_id`` of the Approve, Deny and Undo buttons (``guardian.clients.slack`` routes
them)."""


def button_value(execution_id: str, step: int, phase: int, nonce: str) -> str:
    """What an Approve/Deny button carries: the execution, step, phase and request nonce
    it was shown for (``ID:STEP:PHASE:NONCE``, step and phase from 0)."""
    return f"{execution_id}:{step}:{phase}:{nonce}"


@dataclass(frozen=True)
class Shown:
    """What a button press names: the approval request its message was shown for."""

    execution: str
    step: int
    phase: int
    nonce: str


def parse_button(value: str) -> Shown | str:
    """The request a button value names, or why it names none."""
    if ":" not in value:
        return (
            "this button names no step (a message from an older guardian); nothing was "
            "decided: use the execution's current message, or /guardian approve ID STEP"
        )
    parts = value.split(":")
    if (
        len(parts) != 4
        or not all(parts)
        or not (parts[1].isdigit() and parts[2].isdigit())
        or max(len(p) for p in parts) > 32
    ):
        return "this button's value is not one guardian gave; nothing was decided"
    return Shown(parts[0], int(parts[1]), int(parts[2]), parts[3])


def undo_count(shown: Shown) -> int | None:
    """The applied phases an Undo button's value counted (None: not an Undo button's)."""
    count = shown.nonce.removeprefix("applied")
    return int(count) if shown.nonce.startswith("applied") and count.isdigit() else None


def button(label: str, action: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action,
        "value": value,
        "style": style,
    }

"""Who may decide an approval, and why a decision is refused: pure rules, no I/O.

Input: the execution as stored, its playbook, who asks (user, groups), what they ask (approve
or deny, the step and phase they were shown) and the time. Output: the reason a decision is
refused ("" when it may go ahead), whether the refusal is because the approval expired, and
the texts of the other refusals (unknown ID, out-of-date message, already decided); and why an
undo is refused (``undo_refusal``). Called by ``guardian.executor.decisions``
(``Runner.approve``/``deny``) and ``guardian.executor.undoing`` (``Runner.undo``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from guardian.audit.records import OPEN_STATES, AmbiguousPrefix, Execution
from guardian.playbooks.model import Playbook


@dataclass(frozen=True)
class Refusal:
    """Why a decision may not be made ("" when it may), and whether the approval expired
    (the caller then expires the execution)."""

    reason: str = ""
    expired: bool = False


def refusal(
    ex: Execution,
    book: Playbook | None,
    actor: str,
    groups: tuple[str, ...],
    to: str,
    shown: tuple[int, int | None],
    now: datetime,
) -> Refusal:
    """Why ``actor`` may not move step ``shown[0]`` (at phase ``shown[1]``, if given) of
    ``ex`` to ``to`` (approved or denied) now."""
    step_index, phase = shown
    if (
        ex.state != "awaiting_approval"
        or ex.step != step_index
        or (phase is not None and ex.phase != phase)
    ):
        return Refusal(
            f"step {step_index + 1} of execution {ex.id} is not awaiting approval: "
            f"the execution is {where(ex)}; nothing was decided"
        )
    if book is None or ex.step >= len(book.steps):
        return Refusal(f"playbook {ex.playbook} of execution {ex.id} is not loaded")
    if ex.expires_at is not None and now >= ex.expires_at:
        return Refusal(
            f"the approval of execution {ex.id} expired at {ex.expires_at:%H:%M:%S} UTC", True
        )
    if not may_approve(book, actor, groups):
        return Refusal(f"{actor} is not an approver of playbook {book.name}")
    if to == "approved" and actor == ex.requested_by:
        return Refusal(f"{actor} asked for execution {ex.id} and cannot also approve it")
    return Refusal()


def may_approve(book: Playbook, actor: str, groups: tuple[str, ...]) -> bool:
    """True when ``actor`` (or one of their ``groups``) approves ``book``'s steps; anyone
    does when the playbook names no approvers."""
    if not book.approver_users and not book.approver_groups:
        return True
    return actor in book.approver_users or any(g in book.approver_groups for g in groups)


def out_of_date(ex: Execution, step_index: int) -> str:
    """The refusal of a button shown for an approval request that is no longer the open one."""
    return (
        f"this message is out of date for step {step_index + 1} of execution "
        f"{ex.id}; nothing was decided: use the execution's current message"
    )


def already_decided(ex: Execution, step_index: int) -> str:
    """The refusal of a decision that lost the compare-and-set."""
    return f"step {step_index + 1} of execution {ex.id} was already decided"


def where(ex: Execution) -> str:
    """Where an execution stands, for a refusal: its state, and its step while open."""
    state = ex.state.replace("_", " ")
    return f"{state} at step {ex.step + 1}" if ex.state in OPEN_STATES else state


def not_found(given: str, exc: KeyError) -> str:
    """The refusal of a decision on an execution ID that names none, or more than one."""
    if isinstance(exc, AmbiguousPrefix):
        return (
            f"execution ID prefix {given[:64]!r} matches more than one execution; give more of it"
        )
    return f"no execution {given[:64]!r} (give its ID or a unique prefix of 4 or more)"


def undo_refusal(
    ex: Execution,
    book: Playbook | None,
    actor: str,
    groups: tuple[str, ...],
    applied: list[tuple[int, int]],
) -> str:
    """Why ``actor`` may not undo ``ex`` ("" when they may): it is already undone, nothing
    was applied, ``actor`` is not an approver of the playbook, or ``actor`` asked for it and a
    step they would undo needed an approval (the two-person rule; a step with
    ``approval: auto`` had nobody asked, so it does not apply). Any other state may be undone:
    the undo holds the execution's lease, so nothing moves it meanwhile."""
    if ex.state == "undone":
        return f"execution {ex.id} is already undone; nothing was done"
    if not applied:
        return f"nothing of execution {ex.id} was applied; nothing to undo"
    if book is None:
        return f"playbook {ex.playbook} of execution {ex.id} is not loaded"
    if not may_approve(book, actor, groups):
        return f"{actor} may not undo execution {ex.id}: not an approver of playbook {book.name}"
    approved = {s for s, _ in applied if s < len(book.steps) and book.steps[s].approval != "auto"}
    if actor == ex.requested_by and approved:
        return f"{actor} asked for execution {ex.id} and cannot also undo its approved steps"
    return ""

"""The kinds of audit row guardian writes: a closed type, so a misspelt kind fails mypy.

Input: nothing. Output: ``AuditKind`` (a ``Literal`` of every kind, for the type checker) and
``AUDIT_KINDS`` (the same strings as a frozenset, for the check at run time). The store
(``guardian.clients.store``) refuses to append a row of any other kind; the writers are the
executor (``guardian.executor``), the approval stage (``guardian.approval``), the kill switch
(``guardian.audit.switch``), the pipeline (``guardian.pipeline``) and the front ends
(``guardian.app``). The strings are the ones stored in the audit table: never rename one.
"""

from __future__ import annotations

from typing import Literal, get_args

AuditKind = Literal[
    # an execution's life (the executor; ``proposed`` is written with the execution itself)
    "proposed",
    "skipped",
    "awaiting_approval",
    "approved",
    "denied",
    "expired",
    "planned",
    "applied",
    "verified",
    "step_succeeded",
    "step_failed",
    "undone",
    "undo_failed",
    "succeeded",
    "failed",
    # what a person asked for and was refused, and chat messages that could not be sent
    "refused",
    "notify_failed",
    # the kill switch
    "pause",
    "resume",
    # the pipeline: an SLO's status changed, a decision changed
    "evaluation",
    "decision",
]

AUDIT_KINDS: frozenset[str] = frozenset(get_args(AuditKind))
"""Every ``AuditKind``, for the check at run time."""


def audit_kind(kind: str) -> AuditKind:
    """``kind`` as an ``AuditKind``; ``ValueError`` when guardian does not write that kind."""
    if kind not in AUDIT_KINDS:
        raise ValueError(f"audit kind {kind!r} is not one guardian writes (guardian.audit.kinds)")
    return kind  # type: ignore[return-value]

"""The words of the executor's state machine: facts, outcomes, needs and moves.

Input: nothing (frozen values). Output: ``Facts`` (what the shell read for one execution, and
the outcome of the I/O it just did: ``Previewed``, ``Planned``, ``Sent``, ``Checked``,
``Undid``) and ``Move`` (what ``guardian.executor.machine.next_move`` answers: a ``Write`` or an
``Ask``, then ``Notify``/``Boundary``, then a ``Need``). Used by ``guardian.executor.machine``
and ``guardian.executor.shell``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from guardian.actions import Plan
from guardian.audit.records import StepRecord
from guardian.executor.ports import AuditWrite, Write
from guardian.playbooks.model import Playbook, Step

Final = Literal["succeeded", "failed", "undone"]
"""The states an execution ends in by itself (denied and expired are decided)."""

# the outcomes of the shell's I/O, fed back as facts ------------------------------------------


@dataclass(frozen=True)
class Previewed:
    """The plan shown to the approver (or its error), or why nobody may be asked."""

    plan: dict[str, Any] | None = None
    refused: str = ""


@dataclass(frozen=True)
class Planned:
    """The step's plan, or the error that ended planning."""

    plan: Plan | None = None
    error: str = ""


@dataclass(frozen=True)
class Sent:
    """A phase sent to the API server ("" error: every change of it went out)."""

    error: str = ""


@dataclass(frozen=True)
class Checked:
    """A phase verified: the problems left (none: verified), or why it could not be."""

    problems: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class Failure:
    """A step that failed: which, why, and when."""

    step: int
    name: str
    problem: str
    at: datetime


@dataclass(frozen=True)
class Undid:
    """The changes undone after ``failure``."""

    failure: Failure
    changes: tuple[str, ...]


Outcome = Previewed | Planned | Sent | Checked | Undid


@dataclass(frozen=True)
class Facts:
    """What the shell read for one execution, and the outcome of what it just did."""

    book: Playbook | None
    records: tuple[StepRecord, ...]
    applied: tuple[tuple[int, int], ...]
    now: datetime
    owner: str
    approval_timeout: int
    max_changes: int
    outcome: Outcome | None = None


# what the machine asks of the shell ----------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """I/O the shell does next for the execution, then asks the machine again with its
    outcome: ``preview``, ``plan``, ``apply``, ``verify`` (a phase) or ``undo``."""

    what: str
    step: Step | None = None
    plan: Plan | None = None
    failure: Failure | None = None


@dataclass(frozen=True)
class Notify:
    """Tell the notifier ``event``; ``prior``: with the execution as it was before the write."""

    event: str
    detail: dict[str, Any] = field(default_factory=dict)
    prior: bool = False


@dataclass(frozen=True)
class Boundary:
    """A persisted boundary reached (``"applied 0/1"``): the ``on_boundary`` hook hears it."""

    where: str


@dataclass(frozen=True)
class Ask:
    """Ask for approval of the current step (``store.ask``: the move, the request, its
    audit rows, at once) at ``now``, until ``expires_at``."""

    now: datetime
    expires_at: datetime
    audit: tuple[AuditWrite, ...]


@dataclass(frozen=True)
class Move:
    """The machine's answer: write (or ask), then tell, then do ``need``; ``go_on``: the
    execution may move again at once (False: it waits, or is over)."""

    write: Write | None = None
    ask: Ask | None = None
    tell: tuple[Notify | Boundary, ...] = ()
    need: Need | None = None
    go_on: bool = False

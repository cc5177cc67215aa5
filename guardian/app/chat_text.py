"""The text of ``/guardian`` answers: pure functions from what guardian knows to lines.

Input: an evaluation, executions, suspects, playbooks, dry-run checks, audit rows. Output:
the plain text ``ChatOps`` escapes and sends (``HELP``, usage lines, status, an SLO's
windows, suspects, playbooks, a dry run, the history). Called by ``guardian.app.chatops``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from guardian.approval.blocks import duration_text, number_text
from guardian.audit.records import AuditRow, Execution
from guardian.evaluation.results import Evaluation, WindowResult
from guardian.executor.runner import StepCheck
from guardian.playbooks import Playbook

HELP = """\
/guardian status                      SLOs and open executions
/guardian slo NAME                    one SLO's burn rates per window pair
/guardian suspects                    recent rollouts, ranked
/guardian playbooks                   the loaded playbooks
/guardian run PLAYBOOK [k=v ...] [--dry-run]
/guardian approve ID STEP | deny ID STEP   decide the step awaiting approval
/guardian undo ID                     undo every applied step of an execution
/guardian pause | resume              kill switch
/guardian history                     the last audit rows
/guardian help"""


def usage(verb: str, args: list[str]) -> str:
    """The usage line when ``args`` cannot be what ``verb`` takes ("" when they can)."""
    if verb in ("approve", "deny") and (
        len(args) != 2 or not args[1].isdigit() or not 1 <= int(args[1]) <= 999
    ):
        return (
            f"usage: /guardian {verb} ID STEP (the step number the message or "
            "/guardian status shows: a decision binds to that step)"
        )
    if verb == "undo" and len(args) != 1:
        return "usage: /guardian undo ID (the execution whose applied steps to undo)"
    if verb == "slo" and len(args) != 1:
        return "usage: /guardian slo NAME"
    if verb == "run" and not [a for a in args if a != "--dry-run"]:
        return "usage: /guardian run PLAYBOOK [k=v ...] [--dry-run]"
    return ""


def status(evaluation: Evaluation, open_runs: Iterable[Execution], paused: bool) -> str:
    """Each SLO's status, each open execution's state and step, and the kill switch."""
    lines = [
        f"{s.name}: {s.status}" + (f" ({s.reason})" if s.reason else "") for s in evaluation.slos
    ]
    lines += [
        f"execution {e.id} {e.playbook}: {e.state.replace('_', ' ')} at step {e.step + 1}"
        for e in open_runs
    ]
    lines.append("guardian is PAUSED (kill switch)" if paused else "guardian is active")
    return "\n".join(lines)


def _burn_row(w: WindowResult) -> str:
    pair = f"{duration_text(w.long)}/{duration_text(w.short)}"
    burns = f"{number_text(w.long_burn)} / {number_text(w.short_burn)}"
    firing = ", firing" if w.firing else ""
    return f"{w.severity} {pair}: burn {burns}, factor {number_text(w.factor)}{firing}"


def slo(evaluation: Evaluation, name: str) -> str:
    """One SLO's status and burn rates per window pair."""
    for s in evaluation.slos:
        if s.name == name:
            rows = [_burn_row(w) for w in s.windows]
            return "\n".join([f"{s.name}: {s.status}", *rows])
    return f"no SLO called {name!r}"


def suspects(found: Sequence[Mapping[str, Any]]) -> str:
    """The first ten suspects, ranked."""
    if not found:
        return "no rollout started recently"
    return "\n".join(
        f"{i}. {s['kind']} {s['namespace']}/{s['name']} started {s['started']}"
        for i, s in enumerate(found[:10], 1)
    )


def playbooks(books: Mapping[str, Playbook]) -> str:
    """Each playbook and its steps."""
    lines = [f"{b.name}: {', '.join(s.name for s in b.steps)}" for b in books.values()]
    return "\n".join(lines) or "no playbooks loaded"


def dry_run(book: str, checks: Iterable[StepCheck]) -> str:
    """What a dry run of ``book`` found, step by step."""
    lines = [f"dry run of {book}: nothing changed"]
    for c in checks:
        state = (
            (c.skipped and f"skipped ({c.skipped})")
            or (c.unchecked and f"not checked ({c.unchecked})")
        ) or (
            "WOULD FAIL: " + "; ".join(c.problems)
            if c.problems
            else f"{len(c.plan.changes) if c.plan else 0} changes accepted"
        )
        warning = f"; but {c.warning}" if c.warning else ""
        lines.append(f"- {c.step} ({c.action}, approval {c.approval}): {state}{warning}")
    return "\n".join(lines)


def history(rows: Iterable[AuditRow]) -> str:
    """The audit rows, one a line."""
    lines = [
        f"{r.at:%H:%M:%S} {r.kind} {r.execution_id or '-'} {r.actor} via {r.via}" for r in rows
    ]
    return "\n".join(lines) or "nothing yet"

"""Executions as Slack messages: Block Kit rendering.

Input: an execution, its playbook, an event's detail and the store's approval requests and
decisions (read through ``MessageStore``, a port the store satisfies). Output: the message's
fallback text and blocks (what burns and how fast, suspects, APF's top talkers when the context has
them: user, share, flow schema; a step applied without approval said plainly, with an Undo button
while it may be undone, ``tests/test_chat_render.py``; the exact planned changes, Approve / Deny
buttons whose value binds them to the step's approval request), the thread line of an event,
everything anyone can write escaped as literal mrkdwn. The buttons' ids and values are
``guardian.approval.buttons`` (``APPROVE``, ``DENY``, ``Shown`` and ``parse_button`` are
re-exported here for the tests and older importers). No SDK: the Block Kit is plain dicts, and the
store is read only through ``MessageStore`` (``request``, ``history``). Called by
``guardian.approval.notify`` (the ``SlackNotifier`` renders with it), ``guardian.app.chatops``
(``escape``) and ``guardian.app.chat_text`` (durations and numbers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from guardian.approval.buttons import (
    APPROVE,
    DENY,
    UNDO,
    Shown,
    button,
    button_value,
    parse_button,
)
from guardian.audit.ports import AuditReader
from guardian.audit.records import ApprovalRequest, Execution
from guardian.playbooks import Playbook

__all__ = [
    "APPROVE",
    "DENY",
    "MessageStore",
    "Shown",
    "button_value",
    "duration_text",
    "escape",
    "number_text",
    "parse_button",
    "render",
    "thread_line",
]

DIFF_LIMIT = 2800
"""Characters of a diff shown in a message block (Slack allows 3000 per text object)."""
TALKERS_SHOWN = 5
"""Top talkers listed in a message."""


class MessageStore(AuditReader, Protocol):
    """What rendering reads from the store: approval requests and the audit log."""

    def request(self, execution_id: str, step: int) -> ApprovalRequest | None: ...


def render(
    ex: Execution,
    book: Playbook | None,
    detail: Mapping[str, Any],
    store: MessageStore,
    event: str,
    as_of: datetime | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The execution's message: fallback text and Block Kit blocks (with the decisions
    recorded until ``as_of``, default all)."""
    title = f"{ex.playbook} for {ex.slo or 'a manual run'}: {ex.state.replace('_', ' ')}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
    ]
    blocks += _burn_blocks(ex) + _suspect_blocks(ex) + _talker_blocks(ex)
    auto, undo = _auto_blocks(ex, book, store)
    blocks += auto
    if book is not None and ex.state == "awaiting_approval" and ex.step < len(book.steps):
        blocks += _decision_blocks(ex, book, detail, store, undo)
    elif undo:
        blocks.append({"type": "actions", "block_id": "undo", "elements": undo})
    blocks.append(_context_block(ex, store, as_of))
    return escape(f"{title} (execution {ex.id})"), blocks


def _burn_row(w: Mapping[str, Any]) -> str:
    pair = f"{duration_text(w['long'])}/{duration_text(w['short'])}"
    burns = f"{number_text(w['long_burn'])} / {number_text(w['short_burn'])}"
    firing = "  FIRING" if w["firing"] else ""
    return f"{w['severity']:<6} {pair}  burn {burns}  factor {number_text(w['factor'])}{firing}"


def _burn_blocks(ex: Execution) -> list[dict[str, Any]]:
    slo = ex.context.get("slo") or {}
    if not slo.get("windows"):
        return []
    rows = [_burn_row(w) for w in slo["windows"]]
    name = escape(str(slo.get("name")))
    return [_section(f"*{name}* burns:\n```" + escape("\n".join(rows)) + "```")]


def _suspect_blocks(ex: Execution) -> list[dict[str, Any]]:
    suspects = ex.context.get("suspects") or []
    if not suspects:
        return []
    lines = [
        escape(
            f"{i}. {s['kind']} {s['namespace']}/{s['name']} "
            f"(revision {s.get('revision', '?')}, {s.get('touches', 0)} touched)"
        )
        for i, s in enumerate(suspects[:3], 1)
    ]
    return [_section("*Suspects*\n" + "\n".join(lines))]


def _talker_blocks(ex: Execution) -> list[dict[str, Any]]:
    """APF's top talkers (``context["talkers"]``, ``guardian.planning.talkers``), when known."""
    talkers = ex.context.get("talkers") or []
    if not talkers:
        return []
    lines = [_talker_line(i, t) for i, t in enumerate(talkers[:TALKERS_SHOWN], 1)]
    return [
        _section("*Top talkers* (requests held by API Priority and Fairness)\n" + "\n".join(lines))
    ]


def _talker_line(index: int, talker: Mapping[str, Any]) -> str:
    share = float(talker.get("share") or 0.0)
    rejected = talker.get("rejected")
    shed = f", {float(rejected):.1f} rejected/s" if rejected else ""
    guard = ""
    if talker.get("protected"):
        guard = f", protected: {talker.get('why') or 'never throttled'}"
    schema = talker.get("flow_schema")
    return escape(f"{index}. {talker.get('user')}: {share:.0%} (flow schema {schema}{shed}){guard}")


def _auto_blocks(
    ex: Execution, book: Playbook | None, store: MessageStore
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The steps applied without approval (``approval: auto``), said plainly, and the Undo
    button (bound to the execution's place and the phases applied) until it is undone (while
    a step runs too: the undo stops it first)."""
    if book is None:
        return [], []
    rows = store.history(ex.id)
    applied = [r for r in rows if r.kind == "applied"]
    targets = {r.detail.get("step"): r.detail.get("target") for r in rows if r.kind == "planned"}
    auto = sorted(
        {
            int(r.detail.get("step", -1))
            for r in applied
            if 0 <= int(r.detail.get("step", -1)) < len(book.steps)
            and book.steps[int(r.detail["step"])].approval == "auto"
        }
    )
    if not auto:
        return [], []
    after = "; since undone" if ex.state == "undone" else "; Undo restores it"
    lines = [_auto_line(i, book.steps[i].name, book.steps[i].action, targets.get(i)) for i in auto]
    text = "\n".join(f"{line}: applied without approval (approval: auto){after}" for line in lines)
    if ex.state == "undone":
        return [_section(escape(text))], []
    value = button_value(ex.id, ex.step, ex.phase, f"applied{len(applied)}")
    return [_section(escape(text))], [button("Undo", UNDO, value, "danger")]


def _auto_line(index: int, name: str, action: str, target: Any) -> str:
    if action == "halt-change" and target:
        return f"Halted {target}"
    return f"Step {index + 1} ({name}, {action}) on {target or 'its target'}"


def _decision_blocks(
    ex: Execution,
    book: Playbook,
    detail: Mapping[str, Any],
    store: MessageStore,
    undo: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The step awaiting approval: its plan, and the buttons bound to its open request
    (with ``undo``, the Undo button, beside them)."""
    step = book.steps[ex.step]
    plan = detail.get("plan") or {}
    blocks = [_section(_plan_text(ex.step, len(book.steps), step.name, step.action, plan))]
    request = store.request(ex.id, ex.step)
    if request is None or request.decision is not None or request.phase != ex.phase:
        blocks.append(_section(f"decide with `/guardian approve {ex.id} {ex.step + 1}`"))
        if undo:
            blocks.append({"type": "actions", "block_id": "undo", "elements": undo})
        return blocks
    value = button_value(ex.id, ex.step, ex.phase, request.nonce)
    buttons = [
        button("Approve", APPROVE, value, "primary"),
        button("Deny", DENY, value, "danger"),
        *undo,
    ]
    return [*blocks, {"type": "actions", "block_id": "decision", "elements": buttons}]


def _context_block(ex: Execution, store: MessageStore, as_of: datetime | None) -> dict[str, Any]:
    """Who asked for the execution, the decisions recorded until ``as_of``, its message."""
    decisions = []
    for r in store.history(ex.id):
        if as_of is not None and r.at > as_of:
            continue
        when = f"by {_who(r.actor, r.via)} at {r.at:%H:%M:%S} UTC"
        if r.kind in ("approved", "denied"):
            step = escape(str(r.detail.get("step_name", r.detail.get("step"))))
            decisions.append(f"step {step} {r.kind} {when}")
        elif r.kind == "undone" and r.via != "runner":  # a person's undo
            decisions.append(f"undone {when}")
    context = [f"execution `{ex.id}` asked by {_who(ex.requested_by, ex.requested_via)}"]
    context += decisions
    if ex.message:
        context.append(escape(ex.message))
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": "\n".join(context)[:2900]}]}


def escape(text: str) -> str:
    """``text`` as literal mrkdwn: Slack's three control characters escaped, so
    ``<!channel>`` or ``<https://x|y>`` written by anyone stays text, and backticks shown
    as ``ˋ`` so that no text opens or closes a code span or a ``` block."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("`", "\u02cb")


def _plan_text(index: int, count: int, name: str, action: str, plan: Mapping[str, Any]) -> str:
    head = f"*Step {index + 1} of {count}: {escape(name)}* ({escape(action)}) needs approval"
    if "error" in plan:
        return f"{head}\nplanning failed: {escape(str(plan['error']))}"
    changes = plan.get("changes") or []
    diff = "\n".join(f"{c['op']} {c['path']}: {c['description']}" for c in changes)
    if len(diff) > DIFF_LIMIT:
        diff = diff[:DIFF_LIMIT] + f"\n… ({len(changes)} changes in all)"
    target = escape(str(plan.get("target", "")))
    return f"{head}\n{target}, {len(changes)} changes:\n```{escape(diff) or 'nothing to change'}```"


def thread_line(event: str, detail: Mapping[str, Any]) -> str:
    """The thread line an event adds under the execution's message ("" for none)."""
    if event in ("approved", "denied"):
        return f"{event} by {_who(str(detail.get('by', '')), str(detail.get('via', '')))}"
    if event == "undone" and detail.get("by"):
        restored = f"{len(detail.get('changes') or [])} changes restored"
        return f"undone by {_who(str(detail['by']), str(detail.get('via', '')))}: {restored}"
    return escape(_thread_text(event, detail))


def _thread_text(event: str, detail: Mapping[str, Any]) -> str:
    if event == "applied":
        phase = int(detail.get("phase", 0)) + 1
        return f"applied {detail.get('step')} phase {phase} of {detail.get('of')}"
    if event == "step_succeeded":
        return f"{detail.get('step')}: verified"
    if event in ("succeeded", "failed", "undone", "expired"):
        return f"{event}{': ' + str(detail['message']) if detail.get('message') else ''}"
    return ""


def _who(actor: str, via: str) -> str:
    """A Slack user as a mention (Slack user IDs only), anyone else as escaped text."""
    if via == "slack" and re.fullmatch(r"[A-Za-z0-9_]{1,64}", actor):
        return f"<@{actor}>"
    return escape(f"{actor} ({via})")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def duration_text(seconds: Any) -> str:
    from guardian.durations import format_duration

    return format_duration(int(seconds))


def number_text(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"

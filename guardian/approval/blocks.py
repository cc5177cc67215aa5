"""Executions shown in Slack: one Block Kit message per execution, a thread of details.

Input: runner events (``SlackNotifier.notify``: the execution, the event, its detail) and the
store's approval requests and decisions. Output: the execution's message posted or updated (what
burns and how fast, suspects, the exact planned changes, Approve / Deny buttons whose value
binds them to the step's approval request), a thread line per event and the burn-rate chart,
everything anyone can write escaped as literal mrkdwn. A failed post is logged and audited,
never raised. Also reads back a button's value (``parse_button``). Called by
``guardian.app.chatops`` (escaping, button values) and the wiring in
``guardian.app.commands.playbooks`` (the notifier); talks to Slack only through
``guardian.clients.slack``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from guardian.audit.records import Execution
from guardian.clients.slack import APPROVE, DENY, SlackClient
from guardian.clients.store import Store
from guardian.errors import GuardianError
from guardian.playbooks import Playbook

log = logging.getLogger("guardian.app.chatops")
DIFF_LIMIT = 2800
"""Characters of a diff shown in a message block (Slack allows 3000 per text object)."""


@dataclass
class SlackNotifier:
    """The runner's ``Notifier`` for Slack: one message per execution, a thread of details."""

    client: SlackClient
    channel: str
    store: Store
    playbooks: Mapping[str, Playbook]
    chart: Callable[[str], bytes | None] = field(default=lambda slo: None)
    """PNG of the SLO's recent burn rates, or None."""

    def notify(self, event: str, execution: Execution, detail: Mapping[str, Any]) -> None:
        """Post or update the execution's message; never raises: a notification that fails
        is logged and audited, and the execution moves on."""
        try:
            self._notify(event, execution, detail)
        except Exception as exc:
            error = exc.message if isinstance(exc, GuardianError) else f"internal error: {exc!r}"
            if isinstance(exc, GuardianError):
                log.warning("slack: %s for execution %s: %s", event, execution.id, error)
            else:
                log.exception("slack: %s for execution %s failed", event, execution.id)
            self.store.record(
                "notify_failed",
                datetime.now(UTC),
                execution.id,
                "guardian",
                "slack",
                event=event,
                error=error,
            )

    def announce(self, slo: str, text: str) -> None:
        """A message without an execution (blind mode, a ticket); never raises."""
        try:
            self.client.post(self.channel, escape(f"{slo}: {text}"))
        except Exception as exc:
            error = exc.message if isinstance(exc, GuardianError) else repr(exc)
            log.warning("slack: announcement for %s failed: %s", slo, error)

    def _notify(self, event: str, ex: Execution, detail: Mapping[str, Any]) -> None:
        text, blocks = render(ex, self.playbooks.get(ex.playbook), detail, self.store, event)
        where = self.store.message(ex.id)
        if where is None:
            ts = self.client.post(self.channel, text, blocks)
            self.store.save_message(ex.id, self.channel, ts)
            where = (self.channel, ts)
            png = self.chart(ex.slo) if ex.slo else None
            if png:
                self.client.upload(
                    self.channel, ts, png, f"{ex.slo}-burn.png", f"{ex.slo}: burn rates"
                )
        else:
            self.client.update(where[0], where[1], text, blocks)
        line = _thread_line(event, detail)
        if line:
            self.client.post(where[0], line, thread_ts=where[1])


def render(
    ex: Execution,
    book: Playbook | None,
    detail: Mapping[str, Any],
    store: Store,
    event: str,
    as_of: datetime | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The execution's message: fallback text and Block Kit blocks (with the decisions
    recorded until ``as_of``, default all)."""
    title = f"{ex.playbook} for {ex.slo or 'a manual run'}: {ex.state.replace('_', ' ')}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
    ]
    blocks += _burn_blocks(ex) + _suspect_blocks(ex)
    if book is not None and ex.state == "awaiting_approval" and ex.step < len(book.steps):
        blocks += _decision_blocks(ex, book, detail, store)
    blocks.append(_context_block(ex, store, as_of))
    return escape(f"{title} (execution {ex.id})"), blocks


def _burn_blocks(ex: Execution) -> list[dict[str, Any]]:
    slo = ex.context.get("slo") or {}
    if not slo.get("windows"):
        return []
    rows = [
        f"{w['severity']:<6} {_d(w['long'])}/{_d(w['short'])}  burn {_f(w['long_burn'])} / "
        f"{_f(w['short_burn'])}  factor {_f(w['factor'])}{'  FIRING' if w['firing'] else ''}"
        for w in slo["windows"]
    ]
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


def _decision_blocks(
    ex: Execution, book: Playbook, detail: Mapping[str, Any], store: Store
) -> list[dict[str, Any]]:
    """The step awaiting approval: its plan, and the buttons bound to its open request."""
    step = book.steps[ex.step]
    plan = detail.get("plan") or {}
    blocks = [_section(_plan_text(ex.step, len(book.steps), step.name, step.action, plan))]
    request = store.request(ex.id, ex.step)
    if request is None or request.decision is not None or request.phase != ex.phase:
        return [*blocks, _section(f"decide with `/guardian approve {ex.id} {ex.step + 1}`")]
    value = button_value(ex.id, ex.step, ex.phase, request.nonce)
    buttons = [
        _button("Approve", APPROVE, value, "primary"),
        _button("Deny", DENY, value, "danger"),
    ]
    return [*blocks, {"type": "actions", "block_id": "decision", "elements": buttons}]


def _context_block(ex: Execution, store: Store, as_of: datetime | None) -> dict[str, Any]:
    """Who asked for the execution, the decisions recorded until ``as_of``, its message."""
    decisions = [
        f"step {escape(str(r.detail.get('step_name', r.detail.get('step'))))} {r.kind} by "
        f"{_who(r.actor, r.via)} at {r.at:%H:%M:%S} UTC"
        for r in store.history(ex.id)
        if r.kind in ("approved", "denied") and (as_of is None or r.at <= as_of)
    ]
    context = [f"execution `{ex.id}` asked by {_who(ex.requested_by, ex.requested_via)}"]
    context += decisions
    if ex.message:
        context.append(escape(ex.message))
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": "\n".join(context)[:2900]}]}


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


def _thread_line(event: str, detail: Mapping[str, Any]) -> str:
    if event in ("approved", "denied"):
        return f"{event} by {_who(str(detail.get('by', '')), str(detail.get('via', '')))}"
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


def _button(label: str, action: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action,
        "value": value,
        "style": style,
    }


def _d(seconds: Any) -> str:
    from guardian.durations import format_duration

    return format_duration(int(seconds))


def _f(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"

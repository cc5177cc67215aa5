"""Chat operations: executions shown in Slack, and what Slack users may ask of guardian.

Input: runner events (``SlackNotifier.notify``), button presses and ``/guardian`` commands
(``ChatOps.on_click``, ``ChatOps.on_command``). Output: one Block Kit message per execution
(what burns and how fast, suspects, the exact planned changes, Approve / Deny buttons bound
to the step's approval request), updated as the execution moves, with a thread holding the
details and the burn-rate chart, everything anyone can write escaped as literal mrkdwn;
answers to commands (quick ones at once, the others once the work is done); refusals
written to the audit log. Slack being down never blocks guardian: a
failed post is audited and the console path (``guardian approvals``) keeps working.
Called by the wiring in ``guardian.commands``; talks to Slack only through
``guardian.clients.slack``.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from guardian.clients.slack import APPROVE, DENY, Click, Command, SlackClient
from guardian.config.model import SlackSettings
from guardian.errors import GuardianError
from guardian.evaluation import Evaluation
from guardian.playbooks import Playbook
from guardian.runner import Runner
from guardian.store import Execution, Store

log = logging.getLogger("guardian.chat")
DIFF_LIMIT = 2800
"""Characters of a diff shown in a message block (Slack allows 3000 per text object)."""
MAX_COMMAND = 2000
"""Characters of ``/guardian`` text guardian reads; longer text is refused unread."""

HELP = """\
/guardian status                      SLOs and open executions
/guardian slo NAME                    one SLO's burn rates per window pair
/guardian suspects                    recent rollouts, ranked
/guardian playbooks                   the loaded playbooks
/guardian run PLAYBOOK [k=v ...] [--dry-run]
/guardian approve ID STEP | deny ID STEP   decide the step awaiting approval
/guardian pause | resume              kill switch
/guardian history                     the last audit rows
/guardian help"""


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
    slo = ex.context.get("slo") or {}
    if slo.get("windows"):
        rows = [
            f"{w['severity']:<6} {_d(w['long'])}/{_d(w['short'])}  burn {_f(w['long_burn'])} / "
            f"{_f(w['short_burn'])}  factor {_f(w['factor'])}{'  FIRING' if w['firing'] else ''}"
            for w in slo["windows"]
        ]
        name = escape(str(slo.get("name")))
        blocks.append(_section(f"*{name}* burns:\n```" + escape("\n".join(rows)) + "```"))
    suspects = ex.context.get("suspects") or []
    if suspects:
        lines = [
            escape(
                f"{i}. {s['kind']} {s['namespace']}/{s['name']} "
                f"(revision {s.get('revision', '?')}, {s.get('touches', 0)} touched)"
            )
            for i, s in enumerate(suspects[:3], 1)
        ]
        blocks.append(_section("*Suspects*\n" + "\n".join(lines)))
    if book is not None and ex.state == "awaiting_approval" and ex.step < len(book.steps):
        step = book.steps[ex.step]
        plan = detail.get("plan") or {}
        blocks.append(_section(_plan_text(ex.step, len(book.steps), step.name, step.action, plan)))
        request = store.request(ex.id, ex.step)
        if request is not None and request.decision is None and request.phase == ex.phase:
            value = button_value(ex.id, ex.step, ex.phase, request.nonce)
            blocks.append(
                {
                    "type": "actions",
                    "block_id": "decision",
                    "elements": [
                        _button("Approve", APPROVE, value, "primary"),
                        _button("Deny", DENY, value, "danger"),
                    ],
                }
            )
        else:
            blocks.append(_section(f"decide with `/guardian approve {ex.id} {ex.step + 1}`"))
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
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "\n".join(context)[:2900]}]}
    )
    return escape(f"{title} (execution {ex.id})"), blocks


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


def _help(user: str, args: list[str]) -> str:
    return HELP


def _usage(verb: str, args: list[str]) -> str:
    """The usage line when ``args`` cannot be what ``verb`` takes ("" when they can)."""
    if verb in ("approve", "deny") and (
        len(args) != 2 or not args[1].isdigit() or not 1 <= int(args[1]) <= 999
    ):
        return (
            f"usage: /guardian {verb} ID STEP (the step number the message or "
            "/guardian status shows: a decision binds to that step)"
        )
    if verb == "slo" and len(args) != 1:
        return "usage: /guardian slo NAME"
    if verb == "run" and not [a for a in args if a != "--dry-run"]:
        return "usage: /guardian run PLAYBOOK [k=v ...] [--dry-run]"
    return ""


def _d(seconds: Any) -> str:
    from guardian.durations import format_duration

    return format_duration(int(seconds))


def _f(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


@dataclass
class ChatOps:
    """What Slack users may ask: decisions on buttons, and ``/guardian`` commands."""

    runner: Runner
    store: Store
    settings: SlackSettings
    client: SlackClient
    playbooks: Mapping[str, Playbook]
    evaluate: Callable[[], Evaluation]
    suspects: Callable[[], Sequence[Mapping[str, Any]]]
    context_for: Callable[[Playbook, dict[str, str]], tuple[dict[str, Any], str]]
    """The trigger context of a run asked for by hand, and its SLO."""
    leading: Callable[[], bool] = field(default=lambda: True)
    """False on a daemon that is not the leader: decisions are recorded, the leader acts."""

    def on_click(self, click: Click) -> str | None:
        """Approve or deny from a button; returns what only the clicking user should see.

        The button names the request it was shown for (execution, step, phase, nonce): a
        press for any step but the one awaiting approval now is refused and audited."""
        verb = "approve" if click.action == APPROVE else "deny"
        shown = parse_button(click.value)
        named = shown.execution if isinstance(shown, Shown) else click.value.split(":")[0]
        refusal = self._channel_refusal(click.channel, click.user, verb, named)
        if refusal:
            return escape(refusal)
        if not isinstance(shown, Shown):
            execution = self._known(named)
            self.runner.refuse(execution, click.user, "slack", verb, shown, given=click.value[:64])
            return escape(shown)
        try:
            answer = self._decide(verb, shown.execution, click.user, shown.step, shown)
        except GuardianError as exc:
            answer = f"{verb}: {exc.message}"
        except Exception:
            log.exception("slack: %s of %s by %s failed", verb, shown.execution, click.user)
            answer = f"{verb}: internal error (guardian's log has the details)"
        return escape(answer) if answer else None

    def _decide(
        self, verb: str, execution_id: str, user: str, step: int, shown: Shown | None = None
    ) -> str | None:
        try:
            book = self.playbooks.get(self.store.find(execution_id).playbook)
        except KeyError:
            book = None  # the runner refuses it, and audits the refusal
        groups = self._groups(user, book)
        decide = self.runner.approve if verb == "approve" else self.runner.deny
        decision = decide(
            execution_id,
            user,
            "slack",
            groups,
            step=step,
            phase=shown.phase if shown else None,
            nonce=shown.nonce if shown else None,
        )
        if not decision.ok:
            return decision.message
        if verb == "approve" and self.leading():
            self.runner.advance(self.store.find(execution_id).id)
        return None

    def _groups(self, user: str, book: Playbook | None) -> tuple[str, ...]:
        if book is None:
            return ()
        return tuple(g for g in book.approver_groups if user in self.client.members(g))

    def _channel_refusal(
        self, channel: str, user: str, action: str, target: str | None = None
    ) -> str:
        if channel in self.settings.allowed_channels:
            return ""
        reason = f"guardian does not take commands in channel {channel}"
        execution = self._known(target) if target else None
        self.store.record(
            "refused",
            datetime.now(UTC),
            execution,
            user,
            "slack",
            action=action[:32],
            reason=reason,
        )
        return reason

    def _known(self, prefix: str) -> str | None:
        """The ID of the execution ``prefix`` names, if it names exactly one."""
        try:
            return self.store.find(prefix).id
        except KeyError:
            return None

    def on_command(self, command: Command) -> str | Callable[[], str]:
        """Answer ``/guardian <text>``: a quick answer at once (help, usage, refusals, the
        playbooks, the kill switch, the history), or the work whose answer follows (status,
        an SLO, suspects, runs and decisions: they reach Prometheus or the API server)."""
        if len(command.text) > MAX_COMMAND:
            return (
                f"/guardian text of {len(command.text)} characters; at most {MAX_COMMAND}: "
                "nothing was done"
            )
        try:
            words = shlex.split(command.text)
        except ValueError as exc:
            return escape(f"cannot read that command ({exc}); /guardian help lists the commands")
        verb = words[0] if words else "help"
        refusal = self._channel_refusal(command.channel, command.user, verb)
        if refusal:
            return escape(refusal)
        quick: dict[str, Callable[[str, list[str]], str]] = {
            "playbooks": self._playbooks,
            "pause": self._pause,
            "resume": self._resume,
            "history": self._history,
            "help": _help,
        }
        work: dict[str, Callable[[str, list[str]], str]] = {
            "status": self._status,
            "slo": self._slo,
            "suspects": self._suspects,
            "run": self._run,
            "approve": self._approve,
            "deny": self._deny,
        }
        if verb in quick:
            return self._answer(quick[verb], verb, command.user, words[1:])
        if verb in work:
            usage = _usage(verb, words[1:])
            if usage:
                return usage
            handler = work[verb]
            return lambda: self._answer(handler, verb, command.user, words[1:])
        return escape(f"unknown command {verb!r}\n{HELP}")

    def _answer(
        self, handler: Callable[[str, list[str]], str], verb: str, user: str, args: list[str]
    ) -> str:
        try:
            return escape(handler(user, args))
        except GuardianError as exc:
            return escape(f"{verb}: {exc.message}")
        except Exception:
            log.exception("slack: /guardian %s by %s failed", verb, user)
            return f"{verb}: internal error (guardian's log has the details)"

    def _status(self, user: str, args: list[str]) -> str:
        evaluation = self.evaluate()
        lines = [
            f"{s.name}: {s.status}" + (f" ({s.reason})" if s.reason else "")
            for s in evaluation.slos
        ]
        open_runs = self.store.executions(("proposed", "awaiting_approval", "approved", "running"))
        lines += [
            f"execution {e.id} {e.playbook}: {e.state.replace('_', ' ')} at step {e.step + 1}"
            for e in open_runs
        ]
        paused = self.store.setting("paused", "false") == "true"
        lines.append("guardian is PAUSED (kill switch)" if paused else "guardian is active")
        return "\n".join(lines)

    def _slo(self, user: str, args: list[str]) -> str:
        for s in self.evaluate().slos:
            if s.name == args[0]:
                rows = [
                    f"{w.severity} {_d(w.long)}/{_d(w.short)}: burn {_f(w.long_burn)} / "
                    f"{_f(w.short_burn)}, factor {_f(w.factor)}{', firing' if w.firing else ''}"
                    for w in s.windows
                ]
                return "\n".join([f"{s.name}: {s.status}", *rows])
        return f"no SLO called {args[0]!r}"

    def _suspects(self, user: str, args: list[str]) -> str:
        found = self.suspects()
        if not found:
            return "no rollout started recently"
        return "\n".join(
            f"{i}. {s['kind']} {s['namespace']}/{s['name']} started {s['started']}"
            for i, s in enumerate(found[:10], 1)
        )

    def _playbooks(self, user: str, args: list[str]) -> str:
        return (
            "\n".join(
                f"{b.name}: {', '.join(s.name for s in b.steps)}" for b in self.playbooks.values()
            )
            or "no playbooks loaded"
        )

    def _operator(self, user: str, verb: str) -> str:
        if not self.settings.operators or user in self.settings.operators:
            return ""
        reason = f"{user} may not {verb} from Slack (not an operator)"
        self.store.record(
            "refused", datetime.now(UTC), None, user, "slack", action=verb, reason=reason
        )
        return reason

    def _run(self, user: str, args: list[str]) -> str:
        dry = "--dry-run" in args
        words = [a for a in args if a != "--dry-run"]
        refusal = "" if dry else self._operator(user, "run")
        if refusal:
            return refusal
        book = self.playbooks.get(words[0])
        if book is None:
            return f"no playbook {words[0]!r}; /guardian playbooks lists them"
        params = dict(w.partition("=")[::2] for w in words[1:] if "=" in w)
        context, slo = self.context_for(book, params)
        if dry:
            checks = self.runner.dry_run(book.name, context)
            lines = [f"dry run of {book.name}: nothing changed"]
            for c in checks:
                state = (c.skipped and f"skipped ({c.skipped})") or (
                    "WOULD FAIL: " + "; ".join(c.problems)
                    if c.problems
                    else f"{len(c.plan.changes) if c.plan else 0} changes accepted"
                )
                lines.append(f"- {c.step} ({c.action}, approval {c.approval}): {state}")
            return "\n".join(lines)
        if self.store.setting("paused", "false") == "true":
            return "guardian is paused (kill switch): /guardian resume first"
        ex = self.runner.propose(book.name, context, user, "slack", slo)
        if self.leading():
            ex = self.runner.advance(ex.id)
        return f"execution {ex.id} of {book.name}: {ex.state.replace('_', ' ')}"

    def _approve(self, user: str, args: list[str]) -> str:
        step = int(args[1]) - 1
        return (
            self._decide("approve", args[0], user, step) or f"approved step {args[1]} of {args[0]}"
        )

    def _deny(self, user: str, args: list[str]) -> str:
        step = int(args[1]) - 1
        return self._decide("deny", args[0], user, step) or f"denied step {args[1]} of {args[0]}"

    def _pause(self, user: str, args: list[str]) -> str:
        now = datetime.now(UTC)
        self.store.set_setting("paused", "true", now)
        self.store.record("pause", now, None, user, "slack")
        return "guardian paused: nothing is proposed or run until /guardian resume"

    def _resume(self, user: str, args: list[str]) -> str:
        refusal = self._operator(user, "resume")
        if refusal:
            return refusal
        now = datetime.now(UTC)
        self.store.set_setting("paused", "false", now)
        self.store.record("resume", now, None, user, "slack")
        return "guardian resumed"

    def _history(self, user: str, args: list[str]) -> str:
        rows = self.store.history(limit=15)
        return (
            "\n".join(
                f"{r.at:%H:%M:%S} {r.kind} {r.execution_id or '-'} {r.actor} via {r.via}"
                for r in rows
            )
            or "nothing yet"
        )

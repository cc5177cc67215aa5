"""Chat operations: what Slack users may ask of guardian.

Input: button presses and ``/guardian`` commands (``ChatOps.on_click``, ``ChatOps.on_command``).
Output: decisions handed to ``guardian.executor.runner`` (a press binds to the approval request its
button was shown for; Undo and ``/guardian undo`` to ``Runner.undo``, for operators), answers to
commands (quick ones at once, the others once the work is done), escaped as literal mrkdwn;
refusals written to the audit log; the kill switch set through
``guardian.audit.switch.KillSwitch``. The answers' text is ``guardian.app.chat_text``; how
executions are shown in Slack (the messages, the buttons' values, the notifier) is
``guardian.approval.blocks`` and ``guardian.approval.notify``. Built by
``guardian.app.wiring.chat_ops`` for the daemon (``guardian run``, ``guardian slack``); talks to
Slack only through ``guardian.clients.slack``.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from guardian.app import chat_text as text
from guardian.approval.blocks import escape
from guardian.approval.buttons import APPROVE, UNDO, Shown, parse_button, undo_count
from guardian.audit.records import OPEN_STATES
from guardian.audit.switch import KillSwitch
from guardian.clients.slack import Click, Command, SlackClient
from guardian.clients.store import Store
from guardian.config.model import SlackSettings
from guardian.errors import GuardianError
from guardian.evaluation.results import Evaluation
from guardian.executor.runner import Runner
from guardian.playbooks import Playbook

log = logging.getLogger("guardian.app.chatops")
MAX_COMMAND = 2000
"""Characters of ``/guardian`` text guardian reads; longer text is refused unread."""


def _help(user: str, args: list[str]) -> str:
    return text.HELP


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
        """Approve, deny or undo from a button; returns what only the clicking user sees.

        The button names the request it was shown for (execution, step, phase, nonce): a
        press for any step but the one awaiting approval now is refused and audited. Undo's
        button names the phases applied when it was shown (``Runner.undo``)."""
        verb = {APPROVE: "approve", UNDO: "undo"}.get(click.action, "deny")
        shown = parse_button(click.value)
        if verb == "undo" and isinstance(shown, Shown) and undo_count(shown) is None:
            shown = "this button's value is not one guardian gave; nothing was undone"
        named = shown.execution if isinstance(shown, Shown) else click.value.split(":")[0]
        refusal = self._channel_refusal(click.channel, click.user, verb, named)
        if refusal:
            return escape(refusal)
        if not isinstance(shown, Shown):
            execution = self._known(named)
            self.runner.refuse(execution, click.user, "slack", verb, shown, given=click.value[:64])
            return escape(shown)
        try:
            if verb == "undo":
                answer = self._undo(shown.execution, click.user, undo_count(shown))
            else:
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

    def _undo(self, execution_id: str, user: str, shown: int | None = None) -> str | None:
        """Undo the execution (an operator, and an approver of its playbook); the answer
        (None after a click that undid it: the message and its thread say so)."""
        refusal = self._operator(user, "undo")
        if refusal:
            return refusal
        try:
            book = self.playbooks.get(self.store.find(execution_id).playbook)
        except KeyError:
            book = None  # the runner refuses it, and audits the refusal
        groups = self._groups(user, book)
        decision = self.runner.undo(execution_id, user, "slack", groups, shown=shown)
        return None if decision.ok and shown is not None else decision.message

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
            "undo": lambda user, args: self._undo(args[0], user) or "",
        }
        if verb in quick:
            return self._answer(quick[verb], verb, command.user, words[1:])
        if verb in work:
            usage = text.usage(verb, words[1:])
            if usage:
                return usage
            handler = work[verb]
            return lambda: self._answer(handler, verb, command.user, words[1:])
        return escape(f"unknown command {verb!r}\n{text.HELP}")

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
        open_runs = self.store.executions(OPEN_STATES)
        return text.status(evaluation, open_runs, KillSwitch(self.store).engaged())

    def _slo(self, user: str, args: list[str]) -> str:
        return text.slo(self.evaluate(), args[0])

    def _suspects(self, user: str, args: list[str]) -> str:
        return text.suspects(self.suspects())

    def _playbooks(self, user: str, args: list[str]) -> str:
        return text.playbooks(self.playbooks)

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
            return text.dry_run(book.name, self.runner.dry_run(book.name, context))
        if KillSwitch(self.store).engaged():
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
        KillSwitch(self.store).pause(user, "slack", datetime.now(UTC))
        return "guardian paused: nothing is proposed or run until /guardian resume"

    def _resume(self, user: str, args: list[str]) -> str:
        refusal = self._operator(user, "resume")
        if refusal:
            return refusal
        KillSwitch(self.store).resume(user, "slack", datetime.now(UTC))
        return "guardian resumed"

    def _history(self, user: str, args: list[str]) -> str:
        return text.history(self.store.history(limit=15))

"""Where people hear about executions: the ``Notifier`` port, the log, and Slack.

Input: executor events (``notify``: the event, the execution, its detail) and announcements without
an execution (``announce``). Output: nothing but the log (``Silent``), or for Slack
(``SlackNotifier``) one Block Kit message per execution posted or updated (rendered by
``guardian.approval.blocks``), a thread line per event and the burn-rate chart. Nothing is raised:
a failed ``notify`` is logged and audited (``notify_failed``), a failed ``announce`` only logged.
Slack is reached only through ``ChatClient`` and the store through ``NotifierStore`` (ports that
``guardian.clients.slack.SlackClient`` and ``guardian.clients.store.Store`` satisfy). The executor
(``guardian.executor.shell``, ``guardian.executor.decisions``, ``guardian.executor.undoing``) calls
``notify``, the pipeline (``guardian.pipeline``, through ``Runner.notifier``) calls ``announce``;
``guardian.app.wiring`` builds the notifier.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from guardian.approval.blocks import MessageStore, escape, render, thread_line
from guardian.audit.ports import AuditWriter, MessageRefs
from guardian.audit.records import Execution
from guardian.errors import GuardianError
from guardian.playbooks import Playbook

log = logging.getLogger("guardian.approval.notify")


class Notifier(Protocol):
    """Where people hear about executions (Slack, or the log)."""

    def notify(self, event: str, execution: Execution, detail: Mapping[str, Any]) -> None:
        """``event`` happened to ``execution`` (proposed, awaiting_approval, step, final)."""

    def announce(self, slo: str, text: str) -> None:
        """A notification without an execution (blind mode, a ticket)."""


class Silent:
    """A notifier that tells no one but the log (console use: the CLI prints instead)."""

    def notify(self, event: str, execution: Execution, detail: Mapping[str, Any]) -> None:
        del event, execution, detail

    def announce(self, slo: str, text: str) -> None:
        logging.getLogger("guardian.approval.notify").warning("%s: %s", slo, text)


class ChatClient(Protocol):
    """What the Slack notifier needs of a chat client."""

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[Any] | None = None,
        thread_ts: str | None = None,
    ) -> str: ...

    def update(self, channel: str, ts: str, text: str, blocks: list[Any]) -> None: ...

    def upload(
        self, channel: str, thread_ts: str, content: bytes, filename: str, title: str
    ) -> None: ...


class NotifierStore(MessageStore, MessageRefs, AuditWriter, Protocol):
    """What the Slack notifier reads and writes in the store (``guardian.audit.ports``)."""


@dataclass
class SlackNotifier:
    """The executor's ``Notifier`` for Slack: one message per execution, a thread of details."""

    client: ChatClient
    channel: str
    store: NotifierStore
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
        line = thread_line(event, detail)
        if line:
            self.client.post(where[0], line, thread_ts=where[1])

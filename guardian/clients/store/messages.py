"""Where an execution's chat message is (channel and timestamp).

Input: an execution's ID (and the channel and ``ts`` Slack gave its message). Output: the
(channel, ts) saved, or None. A part of ``Store`` (``MessageRefs`` of ``guardian.audit.ports``),
called through it by the Slack notifier (``guardian.approval.notify``: post once, then update).
"""

from __future__ import annotations

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from guardian.clients.store.schema import messages


class MessageRefs:
    """MessageRefs: a part of ``Store`` (``guardian.clients.store.store``)."""

    engine: Engine

    def message(self, execution_id: str) -> tuple[str, str] | None:
        """(channel, ts) of the execution's chat message, if one was posted."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(messages.c.channel, messages.c.ts).where(
                    messages.c.execution_id == execution_id
                )
            ).first()
        return (str(row.channel), str(row.ts)) if row is not None else None

    def save_message(self, execution_id: str, channel: str, ts: str) -> None:
        """Remember where the execution's chat message is (first one wins)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(messages).values(execution_id=execution_id, channel=channel, ts=ts)
                )
        except IntegrityError:
            pass

"""The store: executions, their step progress, pending approvals, and the append-only audit.

Input: records from the executor, the approval stage, the pipeline and the front ends.
Output: the same records (``guardian.audit.records``) read back, on SQLite (one file, the
default) or PostgreSQL, through one SQLAlchemy Core schema (``schema``). Every state change
of an execution is a compare-and-set (``UPDATE ... WHERE state = expected``), so two
processes, or a double click, can never move one execution twice. Built by the front ends
in ``guardian.app``; each concept is a part of its own (``executions``, ``steps``,
``approvals``, ``audit``, ``messages``, ``settings``, ``pipeline_state``); together they
implement the ports of ``guardian.audit.ports`` and those the executor and the approval
stage declare.

The store URL's password reaches only ``open``, which hands it to ``guardian.clients.database``
and never shows it. Otherwise callers pass only what they mean to keep.
"""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from guardian.clients.database import open_engine
from guardian.clients.store.approvals import Approvals
from guardian.clients.store.audit import AuditLog
from guardian.clients.store.executions import Executions
from guardian.clients.store.messages import MessageRefs
from guardian.clients.store.pipeline_state import PipelineState, adopt_settings
from guardian.clients.store.schema import metadata
from guardian.clients.store.settings import Settings
from guardian.clients.store.steps import Steps
from guardian.errors import DataUnavailable


class Store(Executions, Steps, Approvals, AuditLog, MessageRefs, Settings, PipelineState):
    """Executions, steps, approvals, audit, message refs, settings and the pipeline's state
    behind one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, source: str = "the URL", busy_timeout: float | None = None) -> Store:
        """Connect to ``url``, check that it is guardian's database (or an empty one), and
        create the tables that are missing (the pipeline's state, kept in ``settings`` by
        earlier versions, moves to its own table). ``source`` names where the URL came from, for
        the fix in messages. Any fault, now or in a later call, is a one-line
        ``StoreUnavailable`` naming the store with its password masked; a file or database
        that is not guardian's is left exactly as it is. A SQLite writer waits
        ``busy_timeout`` seconds for another one (default: the URL's ``?timeout=``, else
        ``guardian.clients.database.BUSY_TIMEOUT``)."""
        engine = open_engine(url, metadata, source, busy_timeout)
        try:
            adopt_settings(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def ping(self) -> None:
        """Raise ``DataUnavailable`` unless the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except SQLAlchemyError as exc:
            raise DataUnavailable(f"store: {type(exc).__name__}") from None

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

"""The daemon's change log: the API server's watch, with kube-state-metrics as its fallback.

Input: a started ``WatchChangeLog`` (``guardian.clients.change_watch``) and a
``PrometheusChangeLog`` (``guardian.evaluation.change_log``) over the daemon's Prometheus.
Output: a ``ChangeLog`` that answers from the watch once it has listed every resource, and
from kube-state-metrics before that or when the watch cannot answer (the API server did not
let it list), so the change guard keeps working while the control plane does not
(``tests/test_change_sources.py``). Built by ``guardian.app.wiring``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from guardian.errors import DataUnavailable
from guardian.evaluation.changes import ChangeLog, WorkloadChange

log = logging.getLogger(__name__)


class Synced(ChangeLog, Protocol):
    """A change log that knows whether it has everything (``WatchChangeLog``)."""

    @property
    def synced(self) -> bool: ...


class FallbackChangeLog:
    """The watch's changes once it synced; kube-state-metrics' otherwise."""

    def __init__(self, watch: Synced | None, fallback: ChangeLog | None) -> None:
        self.watch = watch
        self.fallback = fallback
        self.answered_by = ""
        """Which log answered last: ``watch``, ``kube-state-metrics`` or empty."""

    def changes(self, since: datetime, until: datetime) -> list[WorkloadChange]:
        """Changes that started in ``[since, until]``, from the first log that can tell."""
        if self.watch is not None and self.watch.synced:
            self.answered_by = "watch"
            return self.watch.changes(since, until)
        if self.fallback is None:
            raise DataUnavailable("change log: the watch has not listed every resource yet")
        if self.answered_by != "kube-state-metrics":
            log.warning("change log: the watch has not synced; reading kube-state-metrics")
        self.answered_by = "kube-state-metrics"
        return self.fallback.changes(since, until)

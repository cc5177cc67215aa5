"""The daemon's change log answers from the watch once it synced, from kube-state-metrics
before that, and says so when neither can."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from guardian.clients.change_sources import FallbackChangeLog
from guardian.errors import DataUnavailable
from guardian.evaluation.changes import WorkloadChange

NOW = datetime(2024, 12, 11, 23, 30, tzinfo=UTC)


def _change(name: str) -> WorkloadChange:
    return WorkloadChange("DaemonSet", "observability", name, NOW, True, 1, 10, 3)


class Log:
    def __init__(self, name: str, synced: bool = True) -> None:
        self.name, self.synced, self.asked = name, synced, 0

    def changes(self, since: datetime, until: datetime) -> list[WorkloadChange]:
        self.asked += 1
        return [_change(self.name)]


def test_the_watch_answers_once_synced_and_kube_state_metrics_before() -> None:
    watch, ksm = Log("from-watch", synced=False), Log("from-ksm")
    log = FallbackChangeLog(watch, ksm)
    since = NOW - timedelta(minutes=30)
    assert [c.name for c in log.changes(since, NOW)] == ["from-ksm"]
    assert (log.answered_by, watch.asked) == ("kube-state-metrics", 0)
    watch.synced = True
    assert [c.name for c in log.changes(since, NOW)] == ["from-watch"]
    assert (log.answered_by, ksm.asked) == ("watch", 1)


def test_without_a_synced_watch_or_a_fallback_the_log_is_unavailable() -> None:
    with pytest.raises(DataUnavailable, match="has not listed every resource"):
        FallbackChangeLog(Log("w", synced=False), None).changes(NOW, NOW)

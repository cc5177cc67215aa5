"""The watch protocol of ``guardian.clients.watch_loop``, against a scripted API server.

The scripted source stands for the API server's answers only (the port ``WatchSource``);
every event goes through ``guardian.clients.kube_watch.event`` as a real stream's would. The
same protocol against the lab's real API server: ``tests/test_change_watch.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from guardian.clients.change_track import ChangeTracker
from guardian.clients.change_watch import RESOURCES, WatchChangeLog
from guardian.clients.kube_watch import event
from guardian.clients.watch_loop import Resource, ResourceWatcher
from guardian.errors import PermanentKubernetesError, TransientKubernetesError
from tests.lab_fixture import eventually

JSON = dict[str, Any]
DAEMONSETS = Resource("DaemonSet", "/apis/apps/v1/daemonsets")
BLOCK = "block"


def obj(name: str, version: str) -> JSON:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "generation": 1,
            "resourceVersion": version,
            "creationTimestamp": datetime.now(UTC).isoformat(),
        },
        "spec": {"template": {"spec": {"serviceAccountName": "agent"}}},
    }


class Blocking:
    """A watch that stays open, with no event, until closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[JSON]:
        self.closed.wait(30)
        return iter(())

    def close(self) -> None:
        self.closed.set()


class Finite:
    """A watch that sends ``events`` (decoded as a real stream does) and ends."""

    def __init__(self, path: str, events: list[JSON]) -> None:
        self.path, self.events = path, events

    def __iter__(self) -> Iterator[JSON]:
        return (event(self.path, e) for e in self.events)

    def close(self) -> None:
        pass


class Scripted:
    """An API server that answers LISTs with ``lists`` and WATCHes with ``watches``."""

    def __init__(self, lists: list[JSON], watches: list[Any]) -> None:
        self.lists, self.watches = lists, watches
        self.gets: list[tuple[str, dict[str, str]]] = []
        self.watched: list[dict[str, str]] = []
        self.retries = 0

    def note_retry(self) -> None:
        self.retries += 1

    def get(self, path: str, query: dict[str, str] | None = None) -> JSON:
        self.gets.append((path, dict(query or {})))
        if path == "/apis/argoproj.io/v1alpha1":
            raise PermanentKubernetesError(f"GET {path}: HTTP 404 not found")
        return self.lists.pop(0)

    def watch(
        self, path: str, query: dict[str, str] | None = None, read_timeout: float = 330.0
    ) -> Any:
        self.watched.append(dict(query or {}))
        step: Any = self.watches.pop(0) if self.watches else BLOCK
        if isinstance(step, Exception):
            raise step
        return Blocking() if step == BLOCK else Finite(path, step)


def page(version: str, items: list[JSON], token: str = "") -> JSON:
    return {"metadata": {"resourceVersion": version, "continue": token}, "items": items}


def run(source: Scripted, watches: int) -> ResourceWatcher:
    watcher = ResourceWatcher(source, DAEMONSETS, ChangeTracker(), watch_timeout=300)
    watcher.start()
    eventually(lambda: len(source.watched) >= watches, 20, f"{watches} watches")
    watcher.stop()
    assert watcher.join(2)
    return watcher


def test_a_paginated_list_then_watches_from_the_last_resource_version_without_listing() -> None:
    first = page("10", [obj("a", "9")], token="next")
    added = {"type": "ADDED", "object": obj("c", "11")}
    bookmark = {"type": "BOOKMARK", "object": obj("", "15")}
    source = Scripted([first, page("10", [obj("b", "8")])], [[added, bookmark], []])
    watcher = run(source, 3)
    assert [q.get("continue", "") for _, q in source.gets] == ["", "next"]
    assert [q["resourceVersion"] for q in source.watched] == ["10", "15", "15"]
    assert all(q["allowWatchBookmarks"] == "true" for q in source.watched)
    assert all(270 <= int(q["timeoutSeconds"]) <= 330 for q in source.watched)
    assert (watcher.stats.lists, watcher.stats.bookmarks, watcher.stats.events) == (1, 1, 1)
    assert {c.name for c in watcher.tracker.changes(*_all())} == {"a", "b", "c"}


def test_a_410_gone_event_lists_exactly_once_again() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    source = Scripted([page("10", []), page("42", [])], [[gone]])
    watcher = run(source, 2)
    assert (watcher.stats.lists, watcher.stats.gone) == (2, 1)
    assert [q["resourceVersion"] for q in source.watched] == ["10", "42"]


def test_a_connection_failure_backs_off_and_watches_again_from_the_same_version() -> None:
    down = TransientKubernetesError("WATCH /apis/apps/v1/daemonsets: MaxRetryError")
    source = Scripted([page("10", [])], [down, down, down])
    began = time.monotonic()
    watcher = run(source, 4)
    assert time.monotonic() - began >= 0.25 + 0.5 + 1.0  # the least jittered backoffs
    assert (watcher.stats.lists, watcher.stats.errors) == (1, 3)
    assert [q["resourceVersion"] for q in source.watched] == ["10"] * 4
    assert source.retries == 3, "each watch opened again after a failure counts as a retry"


def test_a_refused_watch_is_not_counted_as_a_retry() -> None:
    refused = PermanentKubernetesError("WATCH /apis/apps/v1/daemonsets: HTTP 403 forbidden")
    source = Scripted([page("10", [])], [refused])
    watcher = run(source, 2)
    assert watcher.stats.errors == 1 and source.retries == 0


def test_a_missing_crd_is_not_listed_and_stop_ends_open_watches_at_once() -> None:
    lists = [page("1", []) for _ in range(3)]
    log = WatchChangeLog(Scripted(lists, []), resources=RESOURCES).start()
    eventually(lambda: log.synced, 20, "every resource listed or found missing")
    eventually(lambda: log.totals()["watches"] == 3, 20, "three watches open")
    assert log.stats["Rollout"].lists == 0 and not log.stats["Rollout"].available
    began = time.monotonic()
    assert log.stop()
    assert time.monotonic() - began < 2


def _all() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(days=3), now + timedelta(days=3)


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    watcher = ResourceWatcher(Scripted([], []), DAEMONSETS, ChangeTracker())
    first = [watcher._backoff(1) for _ in range(50)]
    assert all(0.25 <= d <= 0.5 for d in first) and len(set(first)) > 1
    assert all(15 <= watcher._backoff(30) <= 30 for _ in range(50))
    assert all(150 <= watcher._backoff(30, cap=300) <= 300 for _ in range(50))

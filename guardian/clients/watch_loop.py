"""One watched resource kept in step with the API server: LIST once, then WATCH for ever.

Input: a ``WatchSource`` (``guardian.clients.kube.Kube``: every ``get`` and every ``watch``
takes a token of its bucket first), a ``Resource`` and the ``ChangeTracker`` to feed. Output:
the tracker kept current and ``WatchStats`` (lists, watches, 410s, errors, events,
bookmarks). Built by ``guardian.clients.change_watch.WatchChangeLog``, one daemon thread per
resource. Tests: ``tests/test_watch_loop.py`` (a scripted API server),
``tests/test_change_watch.py`` (the lab's).

The protocol, as client-go's reflector: a paginated LIST (``limit``/``continue``) whose
``metadata.resourceVersion`` is remembered; then WATCH with ``resourceVersion``,
``allowWatchBookmarks=true`` and ``timeoutSeconds`` of 270-330 s (spread, so that watches of
many guardians do not end together). A BOOKMARK only advances the resourceVersion. A watch
the server ends is opened again from the last resourceVersion, without a LIST. Only
``410 Gone`` (HTTP 410 or an ERROR event with code 410) makes it LIST again, at once the
first time, after a backoff when a 410 follows a 410. A connection error (API server down or
restarting), any other refusal, or a watch that ends at once with nothing in it, backs off
(0.5 s doubling to 30 s, times a random 0.5-1; to 5 minutes for a refusal such as 403)
and WATCHes again from the last resourceVersion (LISTs, when none was listed yet). A
resource behind a discovery path (Argo Rollouts' CRD) is watched only once discovery lists
it, checked again every ``rediscover`` seconds (10 min) until then.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from guardian.clients.change_track import ChangeTracker
from guardian.clients.kube_watch import Gone
from guardian.errors import KubernetesError, PermanentKubernetesError, TransientKubernetesError
from guardian.evaluation.changes import ChangeKind

JSON = dict[str, Any]
log = logging.getLogger(__name__)


class Stream(Protocol):
    """An open WATCH: its events, and a ``close`` another thread may call."""

    def __iter__(self) -> Iterator[JSON]: ...

    def close(self) -> None: ...


class WatchSource(Protocol):
    """What a watcher needs from the API server (``Kube``)."""

    def get(self, path: str, query: dict[str, str] | None = None) -> JSON: ...

    def watch(
        self, path: str, query: dict[str, str] | None = None, read_timeout: float = 330.0
    ) -> Stream: ...

    def note_retry(self) -> None:
        """Count one request sent again after a transient failure (429, 5xx, no answer)."""


@dataclass(frozen=True)
class Resource:
    """A collection to watch; ``discovery`` names the API group version that must list it."""

    kind: ChangeKind
    path: str
    discovery: str = ""

    @property
    def plural(self) -> str:
        return self.path.rsplit("/", 1)[1]


@dataclass
class WatchStats:
    """What one watcher did since it started."""

    lists: int = 0
    """Complete LISTs begun (each of one or more pages)."""
    watches: int = 0
    """WATCH requests sent (a refused or failed one included)."""
    gone: int = 0
    errors: int = 0
    events: int = 0
    bookmarks: int = 0
    resource_version: str = ""
    available: bool = False
    """True once discovery found the resource (always, for one without discovery)."""
    checked: bool = False
    """True once discovery answered (always, for one without discovery)."""
    synced: bool = False
    """True once a LIST completed."""
    last_error: str = ""


class ResourceWatcher:
    """LIST then WATCH one resource on a daemon thread, until ``stop``."""

    def __init__(
        self,
        source: WatchSource,
        resource: Resource,
        tracker: ChangeTracker,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        watch_timeout: float = 300.0,
        rediscover: float = 600.0,
        page: int = 500,
    ) -> None:
        self.source, self.resource, self.tracker = source, resource, tracker
        self.clock, self.watch_timeout, self.rediscover, self.page = (
            clock,
            watch_timeout,
            rediscover,
            page,
        )
        self.stats = WatchStats(available=not resource.discovery, checked=not resource.discovery)
        self._stopping = threading.Event()
        self._stream: Stream | None = None
        self._random = random.Random()
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{resource.kind}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; an open watch is closed at once."""
        self._stopping.set()
        stream = self._stream
        if stream is not None:
            stream.close()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread; True when it ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        failures = gone_streak = 0
        while not self._stopping.is_set():
            delay = 0.0
            try:
                if not self._available():
                    self._stopping.wait(self.rediscover)
                    continue
                if not self.stats.resource_version:
                    self._list()
                quick = self._watch()
                failures, gone_streak = (failures + 1, gone_streak) if quick else (0, 0)
                delay = self._backoff(failures) if quick else 0.0
            except Gone as exc:
                self._note(exc, gone=True)
                gone_streak += 1
                delay = self._backoff(gone_streak - 1) if gone_streak > 1 else 0.0
            except KubernetesError as exc:
                self._note(exc, gone=False)
                failures += 1
                if isinstance(exc, TransientKubernetesError):
                    self.source.note_retry()  # the loop sends it again after the backoff
                refused = isinstance(exc, PermanentKubernetesError)  # 403: RBAC lacks a verb
                delay = self._backoff(failures, cap=300.0 if refused else 30.0)
            except Exception as exc:  # the thread must outlive any surprise; it is logged
                log.exception("watch of %s", self.resource.path)
                self._note(KubernetesError(f"{type(exc).__name__}: {exc}"), gone=False)
                failures += 1
                delay = self._backoff(failures)
            self._stopping.wait(delay)

    def _available(self) -> bool:
        if self.stats.available:
            return True
        try:
            doc = self.source.get(self.resource.discovery)
        except KubernetesError as exc:
            self.stats.checked = "404" in exc.message
            self.stats.last_error = exc.message
            return False
        names = {r.get("name") for r in doc.get("resources") or []}
        self.stats.checked = True
        self.stats.available = self.resource.plural in names
        return self.stats.available

    def _list(self) -> None:
        self.stats.lists += 1
        at = self.clock()
        items: list[JSON] = []
        query = {"limit": str(self.page)}
        while True:
            try:
                answer = self.source.get(self.resource.path, query)
            except PermanentKubernetesError:
                self.stats.available = not self.resource.discovery  # a CRD gone: rediscover
                raise
            items += answer.get("items") or []
            meta = answer.get("metadata") or {}
            if not meta.get("continue"):
                break
            query = {**query, "continue": str(meta["continue"])}
        self.tracker.listed(self.resource.kind, items, at)
        self.stats.resource_version = str(meta.get("resourceVersion") or "")
        self.stats.synced = True

    def _watch(self) -> bool:
        """One WATCH to its end; True when it ended at once with nothing in it."""
        query = {
            "resourceVersion": self.stats.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(int(self.watch_timeout * self._random.uniform(0.9, 1.1))),
        }
        began, seen = time.monotonic(), 0
        self.stats.watches += 1
        stream = self.source.watch(self.resource.path, query, self.watch_timeout * 1.1 + 30)
        self._stream = stream
        try:
            if self._stopping.is_set():
                return False
            for event in stream:
                seen += 1
                self._apply(event)
        finally:
            stream.close()
            self._stream = None
        return seen == 0 and time.monotonic() - began < 1.0

    def _apply(self, event: JSON) -> None:
        kind, obj = str(event.get("type", "")), event.get("object") or {}
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind == "BOOKMARK":
            self.stats.bookmarks += 1
        else:
            self.stats.events += 1
            self.tracker.observe(self.resource.kind, kind, obj, self.clock())
        if version:
            self.stats.resource_version = version

    def _note(self, error: KubernetesError, gone: bool) -> None:
        if gone:
            self.stats.gone += 1
            self.stats.resource_version = ""
        else:
            self.stats.errors += 1
        self.stats.last_error = error.message
        if not self._stopping.is_set():
            log.info("watch of %s: %s", self.resource.path, error.message)

    def _backoff(self, failures: int, cap: float = 30.0) -> float:
        base = min(0.5 * 2 ** max(failures - 1, 0), cap)
        return float(base * self._random.uniform(0.5, 1.0))

"""Leader election with a Kubernetes Lease, on the kubernetes client's ``LeaseLock``.

Input: the API client of a ``Kube``, the Lease's name and namespace, this candidate's
identity and the timings (duration > renew deadline > 1.2 × retry period). Output:
``leading`` (a ``threading.Event``) set while this process holds the Lease, and callbacks on
every change. ``release`` stops trying and deletes the Lease if this process still holds it
(a precondition on its resourceVersion), so another candidate takes over at its next retry
instead of after a whole lease duration. Called by ``guardian.app.daemon.run`` (``guardian
run``; ``guardian slack`` runs without a Lease).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

log = logging.getLogger("guardian.clients.lease")
logging.getLogger("leaderelection").setLevel(logging.WARNING)


class _StoppableLock(LeaseLock):
    """A LeaseLock on a given API client that refuses to take or renew once stopped.

    ``writing`` is held across every create and update, so ``Leadership.release`` can stop
    the lock and know that no renewal is still on its way to the API server (a renewal that
    landed after the release read the Lease would change its resourceVersion and fail the
    preconditioned delete)."""

    def __init__(self, api_client: Any, name: str, namespace: str, identity: str) -> None:
        super().__init__(name, namespace, identity)  # type: ignore[no-untyped-call]
        self.api_instance = k8s.CoordinationV1Api(api_client)
        self.stopped = False
        self.writing = threading.Lock()

    def get(self, name: str, namespace: str) -> tuple[bool, Any]:
        if self.stopped:
            return False, SimpleNamespace(reason="released", body="")
        return super().get(name, namespace)  # type: ignore[no-untyped-call,no-any-return]

    def create(self, name: str, namespace: str, election_record: Any) -> bool:
        with self.writing:
            return not self.stopped and bool(super().create(name, namespace, election_record))  # type: ignore[no-untyped-call]

    def update(self, name: str, namespace: str, updated_record: Any) -> bool:
        with self.writing:
            return not self.stopped and bool(super().update(name, namespace, updated_record))  # type: ignore[no-untyped-call]


class Leadership:
    """One candidate in the election for ``namespace/name``."""

    def __init__(
        self,
        api_client: Any,
        name: str,
        namespace: str,
        identity: str,
        duration: int = 15,
        renew_deadline: int = 10,
        retry_period: int = 2,
        on_change: Callable[[bool], None] = lambda leading: None,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.leading = threading.Event()
        self._on_change = on_change
        self._lock = _StoppableLock(api_client, name, namespace, identity)
        self._api = k8s.CoordinationV1Api(api_client)
        self._timings = (duration, renew_deadline, retry_period)
        self._thread = threading.Thread(target=self._campaign, name="lease", daemon=True)

    def start(self) -> None:
        """Start campaigning in the background."""
        self._thread.start()

    def _campaign(self) -> None:
        duration, renew, retry = self._timings
        failure = ""
        while not self._lock.stopped:
            config = electionconfig.Config(  # type: ignore[no-untyped-call]
                self._lock, duration, renew, retry, self._started, self._stopped
            )
            try:
                election = leaderelection.LeaderElection(config)  # type: ignore[no-untyped-call]
                election.run()  # type: ignore[no-untyped-call]
                failure = ""
            except Exception as exc:  # the election outlives one bad answer
                text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if text != failure:  # once per kind of failure, not every retry
                    log.warning(
                        "lease %s/%s: election failed (%s); retrying every %ds",
                        self.namespace,
                        self.name,
                        text[:300],
                        retry,
                    )
                failure = text
            self.leading.clear()
            if not self._lock.stopped:
                threading.Event().wait(retry)

    def _started(self) -> None:
        with self._lock.writing:  # a release between the check and the set would be undone
            if self._lock.stopped:
                return
            self.leading.set()
        log.info("lease %s/%s: %s is the leader", self.namespace, self.name, self.identity)
        self._on_change(True)

    def _stopped(self) -> None:
        was = self.leading.is_set()
        self.leading.clear()
        if was:
            log.warning("lease %s/%s: %s lost the lease", self.namespace, self.name, self.identity)
            self._on_change(False)

    def holder(self) -> str | None:
        """Who holds the Lease now, as the API server says (None: nobody, or no Lease)."""
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
        except ApiException:
            return None
        return lease.spec.holder_identity if lease.spec else None

    def _stop_renewing(self, where: str) -> None:
        waited = self._lock.writing.acquire(timeout=self._timings[1])
        self._lock.stopped = True
        if waited:
            self._lock.writing.release()
        else:  # a renewal stuck on an unanswering API server: the delete may then be refused
            log.warning("%s: a renewal still unanswered after %ds", where, self._timings[1])
        was = self.leading.is_set()
        self.leading.clear()
        if was:
            self._on_change(False)

    def release(self) -> bool:
        """Stop campaigning; delete the Lease if this process holds it. True if it did.

        A renewal in flight finishes first (the lock's ``writing``, waited for at most the
        renew deadline), so the resourceVersion read here is the last one this process wrote;
        every way of not releasing is logged."""
        where = f"lease {self.namespace}/{self.name}"
        self._stop_renewing(where)
        for attempt in (1, 2):
            try:
                lease = self._api.read_namespaced_lease(self.name, self.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    log.info("%s: not released: there is no Lease", where)
                else:
                    log.warning("%s: not released: reading it failed: %s", where, exc.reason)
                return False
            except Exception as exc:  # no answer: the Lease expires by itself
                log.warning("%s: not released: reading it failed: %s", where, exc)
                return False
            holder = lease.spec.holder_identity if lease.spec else None
            if holder != self.identity:
                log.info("%s: not released: held by %s, not %s", where, holder, self.identity)
                return False
            version = lease.metadata.resource_version if lease.metadata else None
            try:
                self._api.delete_namespaced_lease(
                    self.name,
                    self.namespace,
                    body=k8s.V1DeleteOptions(
                        preconditions=k8s.V1Preconditions(resource_version=version)
                    ),
                )
            except ApiException as exc:
                if exc.status == 409 and attempt == 1:  # changed since read: read it again
                    continue
                log.warning("%s: not released: %s", where, exc.reason)
                return False
            except Exception as exc:
                log.warning("%s: not released: %s", where, exc)
                return False
            log.info("%s: released by %s", where, self.identity)
            return True
        return False

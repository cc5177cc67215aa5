"""The Lease of ``guardian run`` (``guardian.clients.lease.Leadership``) against the lab's API
server: a release races no renewal, and every way of not releasing says why."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from kubernetes import client as k8s

from guardian.clients.kube import Kube
from guardian.clients.lease import Leadership
from tests.lab_fixture import Lab, eventually

pytestmark = pytest.mark.lab

LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


class SlowNetwork(k8s.ApiClient):  # type: ignore[misc]
    """An API client on a slow link: once ``slow`` is set, a Lease renewal (PUT) waits
    ``put_delay`` before it is sent and a DELETE waits ``delete_delay``; ``renewing`` is set
    while a PUT is on its way."""

    def __init__(self, configuration: Any, put_delay: float, delete_delay: float) -> None:
        super().__init__(configuration)
        self.slow = threading.Event()
        self.renewing = threading.Event()
        self.delays = {"PUT": put_delay, "DELETE": delete_delay}
        self.deletes = 0

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if self.slow.is_set() and "/leases/" in url and method in self.delays:
            if method == "PUT":
                self.renewing.set()
            else:
                self.deletes += 1
            time.sleep(self.delays[method])
            try:
                return super().call_api(method, url, *args, **kwargs)
            finally:
                if method == "PUT":
                    self.renewing.clear()
        return super().call_api(method, url, *args, **kwargs)


def _configuration(lab: Lab) -> Any:
    return Kube.from_kubeconfig(str(lab.directory / "kubeconfig")).api_client.configuration


def test_a_release_during_a_renewal_in_flight_still_deletes_the_lease(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    # The renewal reaches the API server 1 s after it starts, the release's DELETE 2 s after
    # it starts: a release that read the Lease while the renewal was on its way would delete
    # with a resourceVersion the renewal has replaced, and be refused (409).
    api = SlowNetwork(_configuration(lab), put_delay=1.0, delete_delay=2.0)
    kube = Kube.from_kubeconfig(str(lab.directory / "kubeconfig"))
    leadership = Leadership(api, "lease-race", "default", "racer", 6, 4, 1)
    leadership.start()
    eventually(leadership.leading.is_set, 30, "the only candidate leads")
    api.slow.set()
    eventually(api.renewing.is_set, 10, "a renewal is on its way")
    with caplog.at_level(logging.INFO, logger="guardian.clients.lease"):
        assert leadership.release() is True, caplog.text
    assert "lease default/lease-race: released by racer" in caplog.text
    assert api.deletes == 1, "the release read the Lease after the renewal, not before it"
    assert kube.exists(f"{LEASES}/lease-race") is False
    assert not leadership.leading.is_set()
    time.sleep(2.5)  # the campaign has stopped: nothing takes the Lease again
    assert kube.exists(f"{LEASES}/lease-race") is False


def test_a_release_that_does_not_release_says_why(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    kube = Kube.from_kubeconfig(str(lab.directory / "kubeconfig"))
    holder = Leadership(kube.api_client, "lease-held", "default", "holder", 6, 4, 1)
    holder.start()
    eventually(holder.leading.is_set, 30, "the first candidate leads")
    other = Leadership(kube.api_client, "lease-held", "default", "other", 6, 4, 1)
    other.start()
    time.sleep(2.5)
    assert not other.leading.is_set(), "one leader at a time"
    with caplog.at_level(logging.INFO, logger="guardian.clients.lease"):
        assert other.release() is False
        assert "lease default/lease-held: not released: held by holder, not other" in caplog.text
        assert kube.exists(f"{LEASES}/lease-held") is True, "the holder's Lease stays"
        assert holder.release() is True
        assert holder.release() is False
    assert "lease default/lease-held: not released: there is no Lease" in caplog.text

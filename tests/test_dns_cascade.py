"""The DNS cascade on the lab, read from Prometheus: storm → API-server SLO pages → a CoreDNS
restarted during the storm cannot sync and answers SERVFAIL → the DNS SLO pages later → the
storm stops → CoreDNS syncs and both SLOs recover.

One scenario on a lab of its own (module-scoped: the storm and the shared APF flow must not
reach other modules' lab); its timeline is guardian's own replay of the lab's SLOs
(``guardian.yaml``: ``apiserver-rejections``, the 429 ratio, and ``dns-errors``, the SERVFAIL
ratio of ``coredns_dns_responses_total`` as in ``config/slos.yaml``) over Prometheus' series,
not the times the test acted at. The clients are ``lab dns start``'s (node-local caches, TTL
10 s); CoreDNS shares the storm's APF flow (``--shared-flow``): in a flow of its own, fair
queuing serves it beside the storm and it syncs at once (see ``lab/dns.py``). Even in the
storm's flow a retry of CoreDNS sometimes finds room in its queues: a restart whose first
sync got through is followed by another, up to five, as a crash-looping CoreDNS does.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from guardian.clients.prometheus import PrometheusClient
from guardian.config import load_config
from guardian.config.model import Config
from guardian.evaluation.backtest import Episode, episodes
from guardian.evaluation.run import evaluate, replay
from tests.lab_fixture import Lab, _lab, eventually, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NODES = 10
API_SLO = "apiserver-rejections"
DNS_SLO = "dns-errors"
STEP = 2
FLOW_SCHEMA = "lab-storm-and-coredns"


@dataclass(frozen=True)
class Cascade:
    """What the test did (wall-clock times) and the page episodes Prometheus' series give."""

    lab: Lab
    storm: float
    restart: float
    restarted: float
    stop: float
    end: float
    restart_said: str
    synced_at_stop: bool
    api: list[Episode]
    dns: list[Episode]


@pytest.fixture(scope="module")
def cascade(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cascade]:
    with running_lab(tmp_path_factory.mktemp("dns-lab"), NODES) as lab:
        yield _run(lab)


def _status(config: Config, client: PrometheusClient, name: str) -> str:
    evaluation, _ = evaluate([s for s in config.slos if s.name == name], client)
    return str(evaluation.slos[0].status)


def _ready(lab: Lab) -> bool:
    answer = requests.get(f"http://127.0.0.1:{lab.ports['coredns-ready']}/ready", timeout=5)
    return answer.status_code == 200


def _run(lab: Lab) -> Cascade:
    env = {**os.environ, "GUARDIAN_LAB_DIR": str(lab.directory)}
    config = load_config(lab.directory / "guardian.yaml")
    client = PrometheusClient(config.prometheus)
    started = _lab("dns", "start", "--qps", "40", "--ttl", "10", "--shared-flow", env=env)
    assert started.returncode == 0, started.stderr

    def status(name: str) -> str:
        return _status(config, client, name)

    for name in (API_SLO, DNS_SLO):
        eventually(lambda n=name: status(n) == "ok", what=f"{name} is ok")  # type: ignore[misc]
    storm = time.time()
    loaded = _lab("load", "--filler-pods", "300", "--per-pod-qps", "60", env=env)
    assert loaded.returncode == 0, loaded.stderr
    try:
        eventually(lambda: status(API_SLO) == "page", 120, "the API-server SLO pages")
        restart = time.time()
        for _ in range(5):  # crash-looping: a restart whose first sync got through the storm
            restarted = _lab("dns", "restart-coredns", env=env)  # is followed by another
            assert restarted.returncode == 0, restarted.stderr
            if "NOT synced" in restarted.stderr:
                break
        after = time.time()
        eventually(lambda: status(DNS_SLO) == "page", 60, "the DNS SLO pages")
        synced_at_stop = _ready(lab)
    finally:
        stop = time.time()
        assert _lab("load", "--stop", env=env).returncode == 0
    for name in (DNS_SLO, API_SLO):
        eventually(
            lambda n=name: status(n) not in ("page", "no_data"),  # type: ignore[misc]
            150,
            f"{name} stops paging once the storm is over",
        )
    assert _ready(lab), "the DNS SLO recovered but CoreDNS is not synced"
    pages: list[Episode] = []

    def replayed() -> bool:  # until Prometheus' steps reach the recovery the SLOs saw
        found = replay(config.slos, client, _at(storm - 30), _at(time.time()), STEP)
        assert found.error == "", found.error
        pages[:] = [e for e in episodes(found.steps) if e.severity == "page"]
        return bool(pages) and all(e.end is not None for e in pages)

    eventually(replayed, 30, "the replay's page episodes end")
    end = time.time()
    cascade = Cascade(
        lab,
        storm,
        restart,
        after,
        stop,
        end,
        restarted.stderr,
        synced_at_stop,
        [e for e in pages if e.slo == API_SLO],
        [e for e in pages if e.slo == DNS_SLO],
    )
    print(_timeline(cascade), file=sys.stderr)
    return cascade


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _timeline(c: Cascade) -> str:
    def rel(moment: datetime | float | None) -> str:
        if moment is None:
            return "never"
        at = moment.timestamp() if isinstance(moment, datetime) else moment
        return f"+{at - c.storm:.0f}s"

    return (
        f"storm {rel(c.storm)}, API-server SLO page {rel(c.api[0].start if c.api else None)}, "
        f"CoreDNS restart {rel(c.restart)}, DNS SLO page {rel(c.dns[0].start if c.dns else None)}, "
        f"storm stopped {rel(c.stop)} (CoreDNS {'synced' if c.synced_at_stop else 'unsynced'}), "
        f"API recovered {rel(c.api[-1].end if c.api else None)}, "
        f"DNS recovered {rel(c.dns[-1].end if c.dns else None)}"
    )


def _range(lab: Lab, query: str, start: float, end: float) -> list[dict[str, Any]]:
    answer = requests.get(
        f"http://127.0.0.1:{lab.ports['prometheus']}/api/v1/query_range",
        params={"query": query, "start": str(start), "end": str(end), "step": "1"},
        timeout=10,
    )
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def test_the_api_server_slo_pages_after_the_storm_starts(cascade: Cascade) -> None:
    assert cascade.api, _timeline(cascade)
    first = cascade.api[0].start.timestamp()
    # the replay's steps and the live evaluation that timed the restart differ by up to a step
    assert cascade.storm - STEP <= first <= cascade.restart + 2 * STEP, _timeline(cascade)


def test_coredns_serves_through_the_storm_until_it_must_sync_again(cascade: Cascade) -> None:
    """Before the restart the storm sheds in CoreDNS's own flow, yet not one SERVFAIL: a
    synced CoreDNS answers from its informers' store whatever the API server says."""
    lab, before = cascade.lab, cascade.restart
    rejected = f'sum(apiserver_flowcontrol_rejected_requests_total{{flow_schema="{FLOW_SCHEMA}"}})'
    shed = [float(v) for s in _range(lab, rejected, cascade.storm, before) for _, v in s["values"]]
    assert shed and max(shed) > 100, shed  # the counter appeared with the storm's first 429
    servfail = 'sum(coredns_dns_responses_total{job="coredns",rcode="SERVFAIL"})'
    assert _range(lab, servfail, cascade.storm, before) == []
    assert _range(lab, servfail, cascade.restarted, cascade.end), "no SERVFAIL after the restart"
    assert "NOT synced" in cascade.restart_said, cascade.restart_said


def test_the_dns_slo_pages_after_the_api_server_slo(cascade: Cascade) -> None:
    assert cascade.api and cascade.dns, _timeline(cascade)
    dns = cascade.dns[0].start.timestamp()
    assert dns > cascade.api[0].start.timestamp(), _timeline(cascade)
    assert dns >= cascade.restart, _timeline(cascade)


def test_both_recover_once_the_storm_stops(cascade: Cascade) -> None:
    """The API-server SLO pages until the storm stops; the DNS SLO stops paging once CoreDNS
    has synced: after the storm when it was still unsynced then (it may get a request through
    the storm's queues earlier: see ``lab/dns.py``)."""
    assert cascade.api and cascade.dns, _timeline(cascade)
    for found in (cascade.api, cascade.dns):
        assert all(e.end is not None for e in found), _timeline(cascade)
    assert cascade.api[-1].end and cascade.api[-1].end.timestamp() > cascade.stop
    last = cascade.dns[-1].end
    assert last and (cascade.synced_at_stop or last.timestamp() > cascade.stop), _timeline(cascade)
